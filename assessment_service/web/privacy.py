"""Right of access (GDPR art. 15) on the assessment side: everything the assessment service holds
about one student, as a readable page and as a JSON download.

Each service answers for its own store. The intake service's "My data" covers what the student
recorded and their account; this covers the assessment database: the projected copies (students,
activities, reports, review_queue rows), the decisions about the student's reports (assignment
and conflicts of interest, as read-model rows and as the events on `assessment-report-<id>`) and
who of the staff viewed the student's data here (`PersonalDataViewed` on `audit-<student_id>`).

Access: `student_record(write=False)`: the student themself, or a coordinator of the student's
department; anyone else gets the same 404 as for an unknown id. A coordinator's look is recorded
(`PersonalDataViewed(what="my_data")`) before anything is shown; the student's own is not.

Other people appear only as opaque account ids (`account:<id>` as actor, the bare id in the
decisions' data), never by name. Conflict-of-interest reason codes are included: the code says
how the assessor stands to this student, so it is data about the student too, and it is a code
from a short list, never free text, so it discloses nothing else about the assessor.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, render_template
from flask_babel import lazy_gettext as _l

from assessment_service import queries, services
from assessment_service.assessment_held import assessment_held
from assessment_service.bootstrap import AssessmentContext
from assessment_service.events import audit_stream, report_stream
from assessment_service.web.privacy_held import held_labels
from shared.config import Settings
from shared.errors import NotFound
from shared.events import RecordedEvent
from shared.validation import is_uuid
from shared.web.access import access, current_caller
from shared.web.errors import correlation_id
from shared.web.labels import STUDENT_FIELD_NAMES
from shared.web.privacy import STUDENT_READ, actor_name, json_download, staff_viewer

bp = Blueprint("privacy", __name__)

#: Columns nulled when the student is erased (StudentErased): shown as "erased", not "(none)".
ERASABLE = frozenset({"name", "email", "description", "answers"})
#: Technical columns kept in the JSON file but not shown on the page (feed positions, ranks).
NOT_ON_PAGE = frozenset({"student_id", "position", "status_rank", "status_position"})
DECISION_TYPES = frozenset({"AssessorAssigned", "AssessorUnassigned", "ConflictOfInterestDeclared"})

FIELD_NAMES: dict[str, Any] = {
    **STUDENT_FIELD_NAMES,
    "registered_at": _l("Registered"),
    "status": _l("Status"),
    "status_changed_at": _l("Status changed"),
    "studies_completed_on": _l("Studies completed on"),
    "reports_submitted": _l("Reports submitted"),
    "logged_at": _l("Logged"),
    "withdrawn": _l("Withdrawn"),
    "submitted_at": _l("Submitted"),
    "correlation_id": _l("Request id"),
    "assessor_account_id": _l("Assessor (account id)"),
    "assigned_at": _l("Assigned"),
    "reason_code": _l("Reason"),
    "declared_at": _l("Declared"),
    "round": _l("Round"),
}

STATUS_NAMES: dict[str, Any] = {
    "registered": _l("Registered"),
    "studies completed": _l("Studies completed"),
    "report submitted": _l("Report submitted"),
    "withdrawn": _l("Registration withdrawn"),
}

DECISION_NAMES: dict[str, Any] = {
    "AssessorAssigned": _l("An assessor was assigned"),
    "AssessorUnassigned": _l("An assessor was unassigned"),
    "ConflictOfInterestDeclared": _l("An assessor declared a conflict of interest"),
}

#: The reason codes, worded for the student (the assessor's form words them for the assessor).
REASON_NAMES: dict[str, Any] = {
    "personal_relationship": _l("A personal relationship with you"),
    "professional_relationship": _l("A professional relationship with you"),
    "supervised_student": _l("The assessor supervises or has supervised you"),
    "other": _l("Another reason"),
    "coordinator_decision": _l("The coordinator's decision"),
    "conflict_of_interest": _l("A declared conflict of interest"),
}

WHAT_NAMES: dict[str, Any] = {
    "report": _l("A report page"),
    "review_queue": _l("The review queue"),
    "student_overview": _l("Your overview (API)"),
    "my_data": _l("This data page"),
    "accounts": _l("The administrators' account pages"),
}


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def _settings() -> Settings:
    return current_app.config["CIM_SETTINGS"]


def record_staff_view(student_id: str) -> None:
    """Before anything is shown: a coordinator's look is recorded (a failure to record answers
    503 and shows nothing); the student's own look is not staff access."""
    viewer = staff_viewer(student_id)
    if viewer is None:
        return
    req = services.RequestContext(actor=current_caller().actor, correlation_id=correlation_id())
    services.record_views(_context(), [student_id], viewer, "my_data", req)


def _event(e: RecordedEvent) -> dict[str, Any]:
    return {
        "type": e.type,
        "occurred_at": e.occurred_at.isoformat(),
        "recorded_by": e.metadata.get("actor"),
        "data": dict(e.data),
    }


def everything_held(ctx: AssessmentContext, student_id: str) -> dict[str, Any]:
    """The assessment database's rows about the student, the decisions about their reports and
    the staff views of their data recorded here. Only this student's: report streams are read
    for the student's own reports, and each event is checked to name the student."""
    if not is_uuid(student_id):
        raise NotFound("No such student.")
    with ctx.reader.connect() as conn:
        held = queries.held_about(conn, student_id)
    decisions = []
    for report in held["reports"]:
        for e in ctx.store.read_stream(report_stream(report["report_id"])):
            if e.type in DECISION_TYPES and e.data.get("student_id") == student_id:
                decisions.append(_event(e))
    decisions.sort(key=lambda d: d["occurred_at"])
    views = [
        {
            "viewer_account_id": e.data.get("viewer_account_id"),
            "what": e.data.get("what"),
            "occurred_at": e.occurred_at.isoformat(),
        }
        for e in ctx.store.read_stream(audit_stream(student_id))
        if e.type == "PersonalDataViewed" and e.data.get("student_id") == student_id
    ]
    student = held["student"]
    return {
        "service": "assessment",
        "student_id": student_id,
        "exported_at": ctx.clock.now().isoformat(),
        # A registered student always has a name: none left means StudentErased was projected.
        "personal_data_erased": student is not None and student.get("name") is None,
        **held,
        # The reviews (comments opened), decisions (summaries opened), presentation and rulings.
        **assessment_held(ctx, student_id, dict.fromkeys(r["report_id"] for r in held["reports"])),
        "decisions": decisions,
        "staff_access": views,
        "not_included": {
            "intake": "What you recorded yourself (registration, activities, reports, files) and your "
            "account are in the intake service's own export (My data); the rows above are the "
            "assessment service's copies of part of it, erased together with it.",
            "other_people": "Staff appear only as opaque account ids (account:<id>) or, in the reviews, "
            "decisions and rulings, by their role, never by name.",
        },
    }


def _body(student_id: str) -> dict[str, Any]:
    if not is_uuid(student_id):
        raise NotFound("No such student.")
    record_staff_view(student_id)
    return everything_held(_context(), student_id)


@bp.get("/students/<student_id>/my-data")
@access(STUDENT_READ)
def my_data(student_id: str) -> str:
    data = _body(student_id)
    waiting = {row["report_id"]: row for row in data["review_queue"]}
    return render_template(
        "my_data.html",
        data=data,
        student_id=student_id,
        student=data["student"],
        department=(data["student"] or {}).get("department"),
        waiting=waiting,
        erased=data["personal_data_erased"],
        intake_url=_settings().intake_url.rstrip("/"),
        own_actor=(f"account:{current_caller().account_id}" if current_caller().student_id == student_id else None),
        who=lambda actor: actor_name(actor, student_id),
        shown=lambda row: [(k, v) for k, v in row.items() if k not in NOT_ON_PAGE],
        field_name=lambda f: FIELD_NAMES.get(f, f),
        status_name=lambda s: STATUS_NAMES.get(s, s),
        decision_name=lambda t: DECISION_NAMES.get(t, t),
        reason_name=lambda c: REASON_NAMES.get(c, c),
        what_name=lambda w: WHAT_NAMES.get(w, w),
        erasable=ERASABLE,
        **held_labels(),
    )


@bp.get("/students/<student_id>/my-data.json")
@access(STUDENT_READ)
def my_data_json(student_id: str) -> Response:
    data = _body(student_id)
    return json_download(data, f"cim-assessment-data-{student_id}.json")
