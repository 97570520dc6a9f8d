"""Intake use cases: load the student's stream -> decide -> append (expected version, key) -> wake-up."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Any

from intake_service import domain
from intake_service.events import REGISTRY, PersonalDataViewed, StudentRegistered
from intake_service.uploads import UploadStore, check_pdf
from shared.adapters.wakeup import WakeUp
from shared.application import Application, Outcome, RequestContext
from shared.catalogue import Catalogue, Department
from shared.clock import Clock
from shared.errors import NotFound, Reason, ValidationFailed
from shared.events import JSON, RecordedEvent
from shared.personal import CipherCache, PersonalDataCodec
from shared.store import EventStore
from shared.validation import is_uuid

if TYPE_CHECKING:
    from shared.identity.wiring import Identity

__all__ = ["IntakeServices", "Outcome", "RequestContext", "account_data", "erase_student_and_account"]


UNKNOWN_DEPARTMENT = Reason("unknown_department", "Unknown department.")
NOT_A_DEPARTMENT = Reason("not_a_department", "Not a CIM department.")


def stream_for(student_id: str) -> str:
    return f"student-{student_id}"


def audit_stream_for(student_id: str) -> str:
    """The staff-access log of one student: kept apart from their own stream."""
    return f"audit-{student_id}"


def subject_of(stream_id: str) -> str | None:
    """The student whose key seals a stream's personal data."""
    return stream_id.removeprefix("student-") if stream_id.startswith("student-") else None


class IntakeServices:
    def __init__(
        self,
        store: EventStore,
        catalogue: Catalogue,
        clock: Clock,
        wakeup: WakeUp,
        uploads: UploadStore,
        max_upload_bytes: int,
        codec: PersonalDataCodec,
    ) -> None:
        self.store = store
        self.codec = codec
        self.catalogue = catalogue
        self.clock = clock
        self.wakeup = wakeup
        self.uploads = uploads
        self.max_upload_bytes = max_upload_bytes
        self.app = Application(store, REGISTRY, clock, after_commit=wakeup.after_commit, seal=self._seal)
        #: Where each of a student's reports stands on the assessment side, as its events brought
        #: it to the intake ({report_id: {"round", "state", ...}}, `assessment_view.decisions_for`):
        #: the app factory wires it; without it nothing has been decided yet.
        self.report_steps: Callable[[str], Mapping[str, Mapping[str, Any]]] = lambda _student_id: {}
        #: Whether the assessment service deregistered the student (past their deadline, not
        #: reinstated), as delivered to the intake (`assessment_view.deadline_for`): the app
        #: factory wires it; without it nobody is deregistered.
        self.deregistered: Callable[[str], bool] = lambda _student_id: False

    # -- queries ---------------------------------------------------------------------------
    def history(self, student_id: str, *, personal: bool = True) -> list[RecordedEvent]:
        """The student's stream with personal fields opened and data upcast to the current
        schema version, or NotFound (unknown and malformed ids answer alike). With
        `personal=False` the personal fields read as None, as after erasure: no key is fetched
        and nothing is decrypted (what a decision that never looks at them needs)."""
        if not is_uuid(student_id):
            raise NotFound("No such student.")
        events = self.store.read_stream(stream_for(student_id))
        if not events:
            raise NotFound("No such student.")
        return self.open_events(events, personal=personal)

    def feed(self, after: int, limit: int) -> list[RecordedEvent]:
        """The global feed, opened and upcast, as the workers read it."""
        return self.open_events(self.store.read_all(after=after, limit=limit))

    def open_events(self, events: list[RecordedEvent], *, personal: bool = True) -> list[RecordedEvent]:
        """Unseal personal data (one key lookup per page, one cipher per subject per page) and
        upcast; an event needing neither is returned as it is. With `personal=False` sealed
        fields become None without a key lookup."""
        subjects = {subject_of(e.stream_id) for e in events} if personal else set()
        ciphers = CipherCache(self.codec.vault.keys_for(s for s in subjects if s))
        codec_open, upcast, current_version = self.codec.open_with, REGISTRY.upcast, REGISTRY.current_version
        out = []
        for event in events:
            stream_id = event.stream_id
            data = codec_open(event.data, partial(ciphers.get, subject_of(stream_id)))
            data = upcast(event.type, event.schema_version, data)  # as it was when current
            version = current_version(event.type)
            if data is event.data and event.schema_version == version:
                out.append(event)
                continue
            out.append(RecordedEvent(
                position=event.position, event_id=event.event_id, stream_id=stream_id,
                version=event.version, type=event.type, schema_version=version, data=data,
                metadata=event.metadata, occurred_at=event.occurred_at, recorded_at=event.recorded_at,
            ))
        return out

    def state(self, student_id: str, *, personal: bool = True) -> tuple[domain.StudentState, int, list[Any]]:
        """The student's folded state, stream version and decoded events. Decisions that never
        read a personal field pass `personal=False` and skip the key vault and decryption."""
        recorded = self.history(student_id, personal=personal)
        decoded = [REGISTRY.decode_recorded(e) for e in recorded]
        return domain.fold(decoded), len(recorded), decoded

    def export(self, student_id: str) -> dict[str, Any]:
        """Right of access (GDPR art. 15): everything the intake store holds about the student, in
        readable form: their events with personal fields opened, and their attachments. Other
        people appear only as the opaque actor ids events record (`account:<id>`, `token:<id>`);
        the staff-access log (`audit-<id>`) lists who of the staff looked, by account id."""
        events = self.history(student_id)
        attachments: dict[str, dict[str, Any]] = {}
        for e in events:
            if e.type == "AttachmentUploaded":
                attachment_id = str(e.data["attachment_id"])
                attachments[attachment_id] = {
                    "attachment_id": attachment_id,
                    "filename": e.data.get("filename"),
                    "size": e.data.get("size"),
                    "pages": e.data.get("pages"),
                    "sha256": e.data.get("sha256"),
                    "uploaded_at": e.occurred_at.isoformat(),
                    "stored": self.uploads.path_for(attachment_id).exists(),
                }
        return {
            "student_id": student_id,
            "exported_at": self.clock.now().isoformat(),
            "events": [
                {
                    "type": e.type,
                    "version": e.version,
                    "occurred_at": e.occurred_at.isoformat(),
                    "recorded_at": e.recorded_at.isoformat(),
                    "data": e.data,
                    "actor": e.metadata.get("actor"),
                }
                for e in events
            ],
            "attachments": list(attachments.values()),
            "staff_access": [
                {
                    "viewer_account_id": e.data.get("viewer_account_id"),
                    "what": e.data.get("what"),
                    "occurred_at": e.occurred_at.isoformat(),
                }
                for e in self.store.read_stream(audit_stream_for(student_id))
                if e.type == "PersonalDataViewed"
            ],
        }

    def attachment(self, student_id: str, attachment_id: str) -> tuple[str, bytes]:
        """An attachment of the student's own stream: (display file name, bytes), or NotFound (an
        id of another student's attachment answers like an unknown one)."""
        if not is_uuid(attachment_id):
            raise NotFound("No such attachment.")
        for e in self.history(student_id):
            if e.type == "AttachmentUploaded" and e.data.get("attachment_id") == attachment_id:
                if not self.uploads.path_for(attachment_id).exists():
                    break
                return str(e.data.get("filename") or "attachment.pdf"), self.uploads.read(attachment_id)
        raise NotFound("No such attachment.")

    def record_staff_access(self, student_id: str, viewer_account_id: str, what: str, ctx: RequestContext) -> None:
        """Log that staff opened the student's personal data: `PersonalDataViewed` in the stream
        `audit-<student_id>` (ids only), so the student's own stream version does not move."""
        event = PersonalDataViewed(student_id=student_id, viewer_account_id=viewer_account_id, what=what)
        self.app.record(audit_stream_for(student_id), [event], ctx)

    def registration(self, student_id: str) -> StudentRegistered:
        _, _, decoded = self.state(student_id)
        return next(e for e in decoded if isinstance(e, StudentRegistered))

    def registered_department(self, student_id: str) -> str | None:
        """The department code a student registered in, None if unknown: read from the stored
        registration as it is (the department is not sealed), so no personal field is opened."""
        events = self.store.read_stream(stream_for(student_id))
        if not events or events[0].type != "StudentRegistered":
            return None
        return str(events[0].data.get("department") or "") or None

    def department_of(self, student_id: str) -> Department:
        state, _, _ = self.state(student_id)
        return self._department(state.department)

    def _department(self, code: str) -> Department:
        dept = self.catalogue.department(code)
        if dept is None:
            raise ValidationFailed(UNKNOWN_DEPARTMENT(), {"department": [NOT_A_DEPARTMENT()]})
        return dept

    # -- commands --------------------------------------------------------------------------
    def register_student(self, cmd: domain.RegisterStudent, ctx: RequestContext) -> Outcome:
        request = asdict(cmd)
        student_id = str(uuid.uuid4())

        def decide() -> list[Any]:
            dept = self._department(cmd.department)
            return domain.decide_register(domain.StudentState(), cmd, dept, student_id, self._today())

        return self.app.start(
            stream_for(student_id), ctx, scope="register", request=("register", request), decide=decide,
            result={"student_id": student_id}, subject=student_id,
        )

    def log_activity(self, student_id: str, details: domain.ActivityDetails, ctx: RequestContext) -> Outcome:
        command = domain.LogActivity(str(uuid.uuid4()), details)
        return self._execute(
            student_id,
            ctx,
            ("log_activity", details),
            lambda state, dept: domain.decide_log_activity(
                state, command, dept, self._today(), deregistered=self.deregistered(student_id)
            ),
            {"activity_id": command.activity_id},
        )

    def amend_activity(
        self, student_id: str, activity_id: str, details: domain.ActivityDetails, ctx: RequestContext
    ) -> Outcome:
        command = domain.AmendActivity(activity_id, details)
        return self._execute(
            student_id,
            ctx,
            ("amend_activity", activity_id, details),
            lambda state, dept: domain.decide_amend_activity(state, command, dept, self._today()),
            {"activity_id": activity_id},
            # "Nothing changed" compares the description too, which is sealed.
            personal=True,
        )

    def withdraw_activity(self, student_id: str, activity_id: str, reason: str, ctx: RequestContext) -> Outcome:
        command = domain.WithdrawActivity(activity_id, reason)
        return self._execute(
            student_id,
            ctx,
            ("withdraw_activity", activity_id, reason),
            lambda state, dept: domain.decide_withdraw_activity(state, command),
            {"activity_id": activity_id},
        )

    def upload_attachment(
        self, student_id: str, content: bytes, filename: str | None, ctx: RequestContext
    ) -> Outcome:
        checked = check_pdf(content, filename, self.max_upload_bytes)
        command = domain.UploadAttachment(
            attachment_id=str(uuid.uuid4()),
            filename=checked.filename,
            size=len(checked.content),
            sha256=checked.sha256,
            pages=checked.pages,
        )
        saved: list[bool] = []

        def decide(state: domain.StudentState, dept: Department) -> list[Any]:
            events = domain.decide_upload_attachment(state, command)
            if not saved:
                # Written before the event: an event never points at a missing file. A file
                # whose event failed to commit is an orphan that disposal can sweep.
                self.uploads.save(command.attachment_id, checked.content)
                saved.append(True)
            return events

        return self._execute(
            student_id,
            ctx,
            ("upload", checked.sha256, checked.filename),
            decide,
            {"attachment_id": command.attachment_id, "pages": checked.pages, "size": len(checked.content)},
        )

    def submit_report(
        self,
        student_id: str,
        answers: dict[str, str],
        activity_ids: list[str],
        attachment_id: str | None,
        ctx: RequestContext,
    ) -> Outcome:
        command = domain.SubmitReport(str(uuid.uuid4()), answers, activity_ids, attachment_id)
        return self._execute(
            student_id,
            ctx,
            ("submit_report", answers, activity_ids, attachment_id),
            lambda state, dept: domain.decide_submit_report(
                state, command, dept, self.assessment_steps(student_id), deregistered=self.deregistered(student_id)
            ),
            {"report_id": command.report_id},
        )

    def resubmit_report(
        self,
        student_id: str,
        report_id: str,
        answers: dict[str, str],
        activity_ids: list[str],
        attachment_id: str | None,
        ctx: RequestContext,
    ) -> Outcome:
        """A new round of a report whose revision the assessors requested (ReportResubmitted)."""
        if not is_uuid(report_id):
            raise NotFound(domain.NO_SUCH_REPORT())
        command = domain.ResubmitReport(report_id, answers, activity_ids, attachment_id)
        # The new round is known once decided; the answer (kept with the idempotency key, so a
        # replay answers the same) names it.
        result: dict[str, Any] = {"report_id": report_id}

        def decide(state: domain.StudentState, dept: Department) -> list[Any]:
            latest = self.assessment_steps(student_id).get(report_id)
            events = domain.decide_resubmit_report(
                state, command, dept, latest, deregistered=self.deregistered(student_id)
            )
            result["round"] = events[0].round
            return events

        return self._execute(
            student_id, ctx, ("resubmit_report", report_id, answers, activity_ids, attachment_id), decide, result
        )

    def assessment_steps(self, student_id: str) -> dict[str, domain.AssessmentStep]:
        """Each report's latest step on the assessment side, for the deciders."""
        return {
            report_id: domain.AssessmentStep(int(step["round"]), str(step["state"]))
            for report_id, step in self.report_steps(student_id).items()
        }

    def complete_studies(self, student_id: str, completed_on: date, term: str, ctx: RequestContext) -> Outcome:
        command = domain.CompleteStudies(completed_on, term)
        return self._execute(
            student_id,
            ctx,
            ("complete_studies", completed_on, term),
            lambda state, dept: domain.decide_complete_studies(state, command, self._today()),
            {},
        )

    def erase_student(self, student_id: str, reason: str, ctx: RequestContext) -> Outcome:
        """Erasure (GDPR art. 17): record StudentErased, destroy the key, delete the files.
        Safe to repeat: a retry after a crash finishes what the first attempt started."""
        state, _, _ = self.state(student_id)
        command = domain.EraseStudent(reason)
        outcome = self._execute(
            student_id,
            ctx,
            ("erase", reason),
            lambda state, dept: domain.decide_erase(state, command),
            {},
        )
        self.codec.vault.destroy(student_id)
        for attachment_id in state.attachments:
            self.uploads.delete(attachment_id)
        return outcome

    def withdraw_registration(self, student_id: str, reason: str, ctx: RequestContext) -> Outcome:
        command = domain.WithdrawRegistration(reason)
        return self._execute(
            student_id,
            ctx,
            ("withdraw_registration", reason),
            lambda state, dept: domain.decide_withdraw_registration(state, command),
            {},
        )

    # -- plumbing --------------------------------------------------------------------------
    def _execute(
        self,
        student_id: str,
        ctx: RequestContext,
        request: tuple[Any, ...],
        decide: Callable[[domain.StudentState, Department], list[Any]],
        result: dict[str, Any],
        *,
        personal: bool = False,
    ) -> Outcome:
        """One command on the student's stream, through the application layer."""

        def load() -> tuple[domain.StudentState, int]:
            state, version, _ = self.state(student_id, personal=personal)
            return state, version

        return self.app.execute(
            stream_for(student_id), ctx, scope=f"student:{student_id}", request=(student_id, *request),
            load=load, decide=lambda state: decide(state, self._department(state.department)),
            result=result, subject=student_id,
        )

    def _seal(self, type_name: str, data: JSON, subject: str | None) -> JSON:
        return data if subject is None else self.codec.seal(type_name, data, subject)

    def _today(self) -> date:
        return self.clock.now().date()


# -- the subject's account (identity store) and erasure across both ------------------------------
def account_data(identity: Identity, student_id: str) -> dict[str, Any] | None:
    """What the identity store holds about the student's account, for the access export: name,
    e-mail, the chosen language, roles, sign-in identities, API tokens by name. Secrets are never copied out: password
    hashes, TOTP secrets and token hashes are reported only as existing or not."""
    account = identity.accounts.account_for_student(student_id)
    if account is None:
        return None
    store = identity.store
    return {
        "account_id": account.id,
        "display_name": account.display_name or None,
        "email": account.email,
        "created_at": account.created_at.isoformat(),
        "disabled": account.disabled,
        "language": identity.accounts.locale_of(account.id),  # of the pages and e-mail; None: never chosen
        "roles": sorted(
            ({"role": g.role.value, "department": g.department} for g in store.grants_of(account.id)),
            key=lambda r: (r["role"], r["department"] or ""),
        ),
        "sign_in_identities": [
            {"issuer": i.issuer, "subject": i.subject} for i in store.identities_of(account.id)
        ],
        "password_set": store.password_hash(account.id) is not None,
        "totp_enrolled": store.totp_state(account.id) is not None,
        "api_tokens": [
            {
                "token_id": t.id,
                "name": t.name,
                "scopes": sorted(t.scopes),
                "created_at": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in store.api_tokens()
            if t.account_id == account.id
        ],
    }


@dataclass(frozen=True)
class Erasure:
    """What one erasure did, by id only (safe to print and log)."""

    student_id: str
    account_id: str | None
    tokens_revoked: int


def erase_student_and_account(
    services: IntakeServices, identity: Identity, student_id: str, reason: str, ctx: RequestContext
) -> Erasure:
    """Erase a student everywhere intake and the identity core hold them: StudentErased plus the
    destroyed key and deleted files (intake), then the account found by student id: name and
    e-mail blanked, credentials and SSO links dropped, sessions revoked, API tokens revoked.
    Then the SQLite files are checkpointed so no old page stays in a WAL. Safe to repeat.
    The outbox rows about the student or the account are blanked too (shared/outbox.py)."""
    services.erase_student(student_id, reason, ctx)
    account = identity.accounts.account_for_student(student_id)
    revoked = 0
    engine = getattr(identity.store, "engine", None)
    if engine is not None:
        from shared.outbox import erase_subject

        erase_subject(engine, [student_id, account.id if account else ""])
    if account is not None:
        identity.accounts.erase_account(account.id)
        for token in identity.store.api_tokens():
            if token.account_id == account.id and identity.api_tokens.revoke(token.id):
                revoked += 1
        identity.store.compact(vacuum=True)
    return Erasure(student_id, account.id if account else None, revoked)
