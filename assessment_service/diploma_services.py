"""Diploma use cases: the issuing sweep, a coordinator's issue by hand, revocation and re-issue,
rendering and storing the PDF, and deleting an erased student's PDF.

Every fact is decided on the department's stream `diplomas-<department>` (assessment_service/
diplomas.py) and appended with the version it was decided on: two sweeps at once conflict on
the second append, decide again on the moved stream and issue nothing more; a render task run
twice records `DiplomaRendered` once and writes the same bytes to the same file (atomically).
Reasons are sealed with the student's key (the seal reads `student_id` from each event).

The PDF renderer is a seam (`Renderer`): production imports `render_diploma` lazily from
`assessment_service.diploma_pdf` (built by another piece of work); tests pass a fake.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from assessment_service import diploma_queries, diplomas, presentation_queries
from assessment_service.bootstrap import AssessmentContext
from assessment_service.diploma_document import DiplomaDocument, Merit, Presentation, Signatory, Text
from assessment_service.diplomas import DepartmentDiplomas, IssueDiploma
from assessment_service.events import DIPLOMA_SYSTEM_ACTOR, REGISTRY, DiplomaEvent, diploma_stream
from assessment_service.presentation_services import may_manage
from assessment_service.projections.diplomas import pdf_path
from assessment_service.services import _project
from shared.application import Application, Outcome, RequestContext
from shared.catalogue import Department
from shared.errors import NotFound, RuleViolated
from shared.events import RecordedEvent
from shared.identity.models import Principal, Role
from shared.personal import KeyErased
from shared.validation import is_uuid

log = logging.getLogger(__name__)

LOCAL = ZoneInfo("Europe/Stockholm")
NO_SUCH_STUDENT = "No such student."
#: The diplomas one sweep issues per append (each batch one transaction on the department stream).
ISSUE_BATCH = 200

#: Turns a diploma's document into PDF bytes (deterministic: the same document, the same bytes).
Renderer = Callable[[DiplomaDocument], bytes]

#: The kinds of presentation occasion as a diploma names them (events.OCCASION_KINDS).
OCCASION_KIND_TEXT = {
    "international_cafe": Text("International Café", "Internationellt café"),
    "lecture": Text("Lecture", "Föreläsning"),
    "information_session": Text("Information session", "Informationsmöte"),
    "web_seminar": Text("Web seminar", "Webbseminarium"),
}
UNIVERSITY = Text("Lund University", "Lunds universitet")


def production_renderer() -> Renderer:
    """The WeasyPrint renderer, imported on first use so that the web processes and tests never
    load WeasyPrint. TODO(lead): `assessment_service/diploma_pdf.py` is built in parallel; once
    merged this import resolves (until then a render task fails and is retried by the next beat)."""
    from assessment_service.diploma_pdf import render_diploma  # type: ignore[import-not-found,unused-ignore]

    return render_diploma  # type: ignore[no-any-return,unused-ignore]


def today(ctx: AssessmentContext) -> date:
    return ctx.clock.now().astimezone(LOCAL).date()


def _seal(ctx: AssessmentContext) -> Callable[[str, dict[str, Any], str | None], dict[str, Any]]:
    def seal(type_name: str, data: dict[str, Any], subject: str | None) -> dict[str, Any]:
        return ctx.sealing.seal(type_name, data, subject or data["student_id"])

    return seal


def _app(ctx: AssessmentContext, *, project: bool = True) -> Application:
    after = (lambda _c: _project(ctx)) if project else (lambda _c: None)
    return Application(ctx.store, REGISTRY, ctx.clock, after_commit=after, seal=_seal(ctx))


def _decode(ctx: AssessmentContext, recorded: list[RecordedEvent]) -> list[DiplomaEvent]:
    """Deciding never reads a reason: the sealed fields are decoded as None, no key fetched."""
    opened = ctx.codec.open if ctx.codec else (lambda data, _key: data)
    return [REGISTRY.decode(e.type, e.schema_version, opened(e.data, None)) for e in recorded]


def load(ctx: AssessmentContext, department: str) -> tuple[DepartmentDiplomas, int]:
    recorded = ctx.store.read_stream(diploma_stream(department))
    return diplomas.fold(_decode(ctx, recorded)), recorded[-1].version if recorded else 0


def rule_set_of(ctx: AssessmentContext, ref: str, department: str) -> Department | None:
    return ctx.catalogue.rule_set(ref) or ctx.catalogue.department(department)


def _merits(ctx: AssessmentContext, conn: Any, student_id: str, rules: Department | None) -> tuple[str, ...]:
    """The activities the diploma lists: those that stand, of a kind the rule set lists."""
    known = {k.code for k in rules.activity_kinds} if rules is not None else set()
    return tuple(a["activity_id"] for a in diploma_queries.activities_of(conn, student_id)
                 if not known or a["kind"] in known)


def _command(ctx: AssessmentContext, conn: Any, student_id: str, department: str, rule_set: str, by: str,
             reason: str | None = None) -> IssueDiploma:
    rules = rule_set_of(ctx, rule_set, department)
    day = today(ctx)
    current = ctx.catalogue.department(department)  # signatories: the current configuration
    signatories = current.signatories_on(day) if current is not None else ()
    return IssueDiploma(
        diploma_id=str(uuid.uuid4()), student_id=student_id, department=department, issued_on=day,
        rule_set=rule_set, verification_code=diplomas.new_verification_code(),
        merits=_merits(ctx, conn, student_id, rules), signatories=signatories, issued_by=by, reason=reason,
    )


# -- the issuing sweep ------------------------------------------------------------------------------


def issue_due(ctx: AssessmentContext, correlation_id: str | None = None) -> int:
    """Issue a diploma to every eligible student of every department who never had one (not
    withdrawn, not erased). Safe to run twice, or twice at once: the department stream's version
    decides, and a student with a diploma is never issued another by the sweep. How many issued."""
    req = RequestContext(actor=DIPLOMA_SYSTEM_ACTOR, correlation_id=correlation_id or str(uuid.uuid4()))
    app, issued = _app(ctx, project=False), 0
    for department in sorted(ctx.catalogue.departments):
        with ctx.reader.connect() as conn:
            eligible = presentation_queries.eligible_students(conn, department)
        if not eligible:
            continue
        stream = diploma_stream(department)
        state, _version = load(ctx, department)
        todo = [e for e in eligible if not state.of_student.get(e["student_id"])]
        for start in range(0, len(todo), ISSUE_BATCH):
            batch = todo[start:start + ISSUE_BATCH]
            with ctx.reader.connect() as conn:
                commands = []
                for row in batch:
                    found = diploma_queries.student(conn, row["student_id"])
                    if found is None or found["erased"] or found["status"] == "withdrawn":
                        continue
                    commands.append(_command(ctx, conn, row["student_id"], department, row["rule_set"],
                                             DIPLOMA_SYSTEM_ACTOR))
            if not commands:
                continue
            if not ctx.catalogue.department(department) or not commands[0].signatories:
                log.error("no signatory configured for %s today: diplomas wait", department)
                break
            made: list[DiplomaEvent] = []

            def decide(state: DepartmentDiplomas, made: list[DiplomaEvent] = made,
                       commands: list[IssueDiploma] = commands) -> list[DiplomaEvent]:
                made[:] = diplomas.decide_issue_many(state, commands)
                return made

            app.execute(stream, req, scope=stream, request=("issue", start), load=partial(load, ctx, department),
                        decide=decide, result={})
            issued += len(made)
    if issued:
        _catch_up(ctx)
        log.info("diplomas issued", extra={"issued": issued})
    return issued


def _catch_up(ctx: AssessmentContext) -> None:
    try:
        ctx.own_runner.catch_up()
    except Exception:  # the events are stored; the beat's catch-up projects them
        log.exception("diplomas could not catch up after issuing; the next catch-up will")


# -- a coordinator's decisions ----------------------------------------------------------------------


def may_read(by: Principal | None, department: str) -> bool:
    """Staff of the department (coordinators and assessors) read its diplomas."""
    return by is not None and (by.has_role(Role.COORDINATOR, department) or by.has_role(Role.ASSESSOR, department))


def student_for(ctx: AssessmentContext, by: Principal | None, student_id: str) -> dict[str, Any]:
    """The student as the read side knows them, for staff of their department or the student
    themself; NotFound otherwise (unknown, foreign and malformed ids alike)."""
    found = None
    if is_uuid(student_id):
        with ctx.reader.connect() as conn:
            found = diploma_queries.student(conn, student_id)
    own = by is not None and by.account.student_id == student_id
    if found is None or not (own or may_read(by, found["department"])):
        raise NotFound(NO_SUCH_STUDENT)
    return found


def diploma_for(ctx: AssessmentContext, by: Principal | None, diploma_id: str) -> dict[str, Any]:
    """The diploma, for staff of its department or its holder; NotFound otherwise."""
    found = None
    if is_uuid(diploma_id):
        with ctx.reader.connect() as conn:
            found = diploma_queries.by_id(conn, diploma_id)
    own = by is not None and found is not None and by.account.student_id == found["student_id"]
    if found is None or not (own or may_read(by, found["department"])):
        raise NotFound(diplomas.NO_SUCH_DIPLOMA)
    return found


def _eligibility(ctx: AssessmentContext, student_id: str) -> dict[str, Any]:
    with ctx.reader.connect() as conn:
        return presentation_queries.student_presentation(conn, student_id)


def _run(ctx: AssessmentContext, department: str, req: RequestContext, request: tuple[Any, ...],
         decide: Callable[[DepartmentDiplomas], list[DiplomaEvent]], result: dict[str, Any]) -> Outcome:
    stream = diploma_stream(department)
    try:
        return _app(ctx).execute(stream, req, scope=stream, request=request, load=lambda: load(ctx, department),
                                 decide=decide, result=result)
    except KeyErased:  # the student was erased: nothing more is written about them
        raise RuleViolated(diplomas.STUDENT_ERASED()) from None


def issue_by_hand(ctx: AssessmentContext, by: Principal, student_id: str, reason: str | None,
                  req: RequestContext) -> Outcome:
    """A coordinator of the student's department issues a diploma to the eligible student (no
    valid diploma), with a reason."""
    student = student_for(ctx, by, student_id)
    department = student["department"]
    if not may_manage(by, department):
        raise NotFound(NO_SUCH_STUDENT)
    if student["erased"]:
        raise RuleViolated(diplomas.STUDENT_ERASED())
    facts = _eligibility(ctx, student_id)
    with ctx.reader.connect() as conn:
        current = ctx.catalogue.department(department)
        rule_set = _rule_set_of_student(conn, student_id) or (current.rules_ref if current else f"{department}@1")
        command = _command(ctx, conn, student_id, department, rule_set, by.account_id, reason)
    return _run(ctx, department, req, ("issue", student_id, reason or ""),
                lambda state: diplomas.decide_issue(state, command, eligible=bool(facts["eligible"])),
                {"diploma_id": command.diploma_id, "student_id": student_id})


def _rule_set_of_student(conn: Any, student_id: str) -> str | None:
    import sqlalchemy as sa

    from assessment_service.projections.presentations import diploma_eligibility

    return conn.execute(sa.select(diploma_eligibility.c.rule_set)
                        .where(diploma_eligibility.c.student_id == student_id)).scalar()


def revoke(ctx: AssessmentContext, by: Principal, diploma_id: str, reason: str | None, req: RequestContext) -> Outcome:
    """A coordinator of the diploma's department revokes it, with a reason."""
    found = diploma_for(ctx, by, diploma_id)
    department = found["department"]
    if not may_manage(by, department):
        raise NotFound(diplomas.NO_SUCH_DIPLOMA)
    return _run(ctx, department, req, ("revoke", diploma_id, reason or ""),
                lambda state: diplomas.decide_revoke(state, diploma_id, department, reason, by.account_id),
                {"diploma_id": diploma_id, "student_id": found["student_id"]})


def reissue(ctx: AssessmentContext, by: Principal, diploma_id: str, reason: str | None, req: RequestContext) -> Outcome:
    """A coordinator revokes the diploma (if still valid) and issues a corrected one replacing it,
    with a reason, in one append. Answers the new diploma's id."""
    found = diploma_for(ctx, by, diploma_id)
    department, student_id = found["department"], found["student_id"]
    if not may_manage(by, department):
        raise NotFound(diplomas.NO_SUCH_DIPLOMA)
    if found["erased"]:
        raise RuleViolated(diplomas.STUDENT_ERASED())
    facts = _eligibility(ctx, student_id)
    with ctx.reader.connect() as conn:
        command = _command(ctx, conn, student_id, department, found["rule_set"], by.account_id, reason)
    return _run(ctx, department, req, ("reissue", diploma_id, reason or ""),
                lambda state: diplomas.decide_reissue(state, diploma_id, command, eligible=bool(facts["eligible"])),
                {"diploma_id": command.diploma_id, "replaces": diploma_id, "student_id": student_id})


def reasons(ctx: AssessmentContext, diploma: dict[str, Any]) -> dict[str, str | None]:
    """The diploma's sealed reasons (issued by hand, revoked), opened with the student's key:
    None once the student is erased."""
    key = ctx.sealing.vault.keys_for([diploma["student_id"]]).get(diploma["student_id"])
    out: dict[str, str | None] = {"issue_reason": None, "revoke_reason": None}
    for e in ctx.store.read_stream(diploma_stream(diploma["department"])):
        if e.data.get("diploma_id") != diploma["diploma_id"] or e.type not in ("DiplomaIssued", "DiplomaRevoked"):
            continue
        data = ctx.sealing.open(e.data, key)
        out["issue_reason" if e.type == "DiplomaIssued" else "revoke_reason"] = data.get("reason")
    return out


# -- the document and the PDF -----------------------------------------------------------------------


def verify_url(ctx: AssessmentContext, code: str) -> str:
    return f"{ctx.settings.assessment_url.rstrip('/')}/verify/{code}"


def document(ctx: AssessmentContext, diploma: dict[str, Any]) -> DiplomaDocument:
    """The diploma's document from its row (the `diplomas` read model) and the read models: the
    holder's name, the merits it lists (as the activities read now), the presentation and the
    signatories recorded at issue. RuleViolated once the student is erased."""
    if diploma["erased"] or not diploma.get("holder_name"):
        raise RuleViolated(diplomas.STUDENT_ERASED())
    department = ctx.catalogue.department(diploma["department"])
    rules = rule_set_of(ctx, diploma["rule_set"], diploma["department"])
    kinds = {k.code: k.name for k in rules.activity_kinds} if rules is not None else {}
    listed = set(diploma["merits"])
    with ctx.reader.connect() as conn:
        merits = tuple(
            Merit(
                title=a["title"] or "", kind=_text(kinds.get(a["kind"]), a["kind"]), setting=a["setting"],
                country_code=a["country_code"], organiser=a["organiser"],
                start_date=date.fromisoformat(a["start_date"]), end_date=date.fromisoformat(a["end_date"]),
            )
            for a in diploma_queries.activities_of(conn, diploma["student_id"]) if a["activity_id"] in listed
        )
        held = diploma_queries.presentation_of(conn, diploma["student_id"])
    presentation = None
    if held is not None:
        presentation = Presentation(
            OCCASION_KIND_TEXT.get(held["kind"], Text(held["kind"], held["kind"])),
            _lund_date(held["starts_at"]), held["place"],
        )
    name = department.name if department is not None else None
    faculty = department.faculty if department is not None else None
    return DiplomaDocument(
        number=diploma["number"], verification_code=diploma["verification_code"],
        verify_url=verify_url(ctx, diploma["verification_code"]),
        issued_on=date.fromisoformat(diploma["issued_on"]), holder_name=diploma["holder_name"],
        university=UNIVERSITY, faculty=_text(faculty, ""), department=_text(name, diploma["department"]),
        department_code=diploma["department"], rule_set=diploma["rule_set"], merits=merits,
        presentation=presentation,
        signatories=tuple(Signatory(s["name"], Text(s["title_en"], s["title_sv"])) for s in diploma["signatories"]),
    )


def _text(value: Any, fallback: str) -> Text:
    if value is None:
        return Text(fallback, fallback)
    return Text(value.en, value.sv or value.en)


def _lund_date(iso: str) -> date:
    from datetime import datetime

    return datetime.fromisoformat(iso).astimezone(LOCAL).date()


def pdf_file(ctx: AssessmentContext, number: str) -> Path:
    return Path(ctx.settings.data_dir) / pdf_path(number)


def _write_atomically(path: Path, body: bytes) -> None:
    os.replace(_write_temporary(path, body), path)


def render(ctx: AssessmentContext, diploma_id: str, renderer: Renderer | None = None,
           correlation_id: str | None = None) -> str:
    """Render the diploma's PDF, store it under the data folder (atomically) and record
    `DiplomaRendered` with its SHA-256 once. Answers what happened: "rendered", "already"
    (rendered and stored before: nothing rendered again), "restored" (recorded, but the file was
    lost, e.g. a crash between the record and the rename: rendered again, byte-identical),
    "revoked", "erased" or "unknown" (not projected yet: the next run renders it)."""
    with ctx.reader.connect() as conn:
        found = diploma_queries.by_id(conn, diploma_id) if is_uuid(diploma_id) else None
    if found is None:
        return "unknown"
    state, _version = load(ctx, found["department"])
    record = state.by_id.get(diploma_id)
    if record is None:
        return "unknown"
    if found["erased"]:
        return "erased"
    final = pdf_file(ctx, found["number"])
    recorded = record.rendered_sha256
    if recorded is not None and _stored_digest(final) == recorded:
        return "already"
    if record.revoked and recorded is None:
        return "revoked"
    try:
        doc = document(ctx, found)
    except RuleViolated:
        return "erased"
    body = (renderer or production_renderer())(doc)
    digest = hashlib.sha256(body).hexdigest()
    if recorded is not None:  # the file was lost: put back only the very bytes recorded
        if digest != recorded:
            log.error("a re-render of a diploma differs from its recorded SHA-256; the file is not replaced",
                      extra={"diploma_id": diploma_id})
            return "mismatch"
        _write_atomically(final, body)
        return "restored"
    temporary = _write_temporary(final, body)
    made: list[DiplomaEvent] = []

    def decide(state: DepartmentDiplomas) -> list[DiplomaEvent]:
        made[:] = diplomas.decide_rendered(state, diploma_id, found["department"], digest, len(body))
        return made

    stream = diploma_stream(found["department"])
    req = RequestContext(actor=DIPLOMA_SYSTEM_ACTOR, correlation_id=correlation_id or str(uuid.uuid4()))
    try:
        _app(ctx).execute(stream, req, scope=stream, request=("render", diploma_id, digest),
                          load=lambda: load(ctx, found["department"]), decide=decide,
                          result={"diploma_id": diploma_id})
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if made:  # this render is the one recorded: its file goes into place
        os.replace(temporary, final)
        return "rendered"
    temporary.unlink(missing_ok=True)  # another render was recorded first; its file stands
    return "already"


def _stored_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _write_temporary(path: Path, body: bytes) -> Path:
    """`body` in a temporary file beside `path`, synced: renamed into place once recorded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".render-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


def purge_erased_files(ctx: AssessmentContext) -> int:
    """Delete the stored PDF of every diploma whose student is erased. How many files."""
    with ctx.reader.connect() as conn:
        rows = diploma_queries.stored_files_of_erased(conn)
    deleted = 0
    for row in rows:
        path = pdf_file(ctx, row["number"])
        if path.exists():
            path.unlink()
            deleted += 1
    if deleted:
        log.info("diploma files of erased students deleted", extra={"deleted": deleted})
    return deleted


def stored_pdf(ctx: AssessmentContext, diploma: dict[str, Any]) -> bytes | None:
    """The stored PDF's bytes, if rendered, the student not erased and the file matches its
    recorded SHA-256 (a tampered or half-written file is never served)."""
    if diploma["erased"] or diploma["pdf_sha256"] is None:
        return None
    path = pdf_file(ctx, diploma["number"])
    try:
        body = path.read_bytes()
    except OSError:
        return None
    return body if hashlib.sha256(body).hexdigest() == diploma["pdf_sha256"] else None


# -- what the registry pastes -----------------------------------------------------------------------


def supplement_line(diploma: dict[str, Any], ctx: AssessmentContext) -> dict[str, str]:
    """The Diploma Supplement's "additional information" line, in English and Swedish."""
    department = ctx.catalogue.department(diploma["department"])
    name_en = department.name.en if department else diploma["department"]
    name_sv = (department.name.sv or department.name.en) if department else diploma["department"]
    count = len(diploma["merits"])
    url = verify_url(ctx, diploma["verification_code"])
    return {
        "en": (f"Certificate of International Merits (CIM), {name_en}, Lund University, no. {diploma['number']}, "
               f"issued {diploma['issued_on']}: {count} international merit{'s' if count != 1 else ''} "
               f"and a presentation. Verify at {url}"),
        "sv": (f"Certificate of International Merits (CIM), {name_sv}, Lunds universitet, nr {diploma['number']}, "
               f"utfärdat {diploma['issued_on']}: {count} internationell{'a' if count != 1 else ''} "
               f"merit{'er' if count != 1 else ''} och en presentation. Kontrollera på {url}"),
    }
