"""Notifications: which event mails whom. Two policies, each a projection with its own checkpoint,
that turn an event into ONE outbox message keyed by the event (`event:<event id>`; a reminder
`event:<event id>:offset:<days>`), so a batch run twice (a crash between the enqueue and the
checkpoint's commit, or two workers at once) enqueues nothing twice: the outbox inserts or
ignores by key. They record nothing in the assessment database but their checkpoints: a rebuild
(checkpoint back to 0) enqueues the same keys again, which the outbox ignores.

- `OWN` (checkpoint "notifications") reads the assessment service's own store: reminders,
  deregistration, reinstatement, an extended deadline, the decisions on a report, a booked
  presentation, a booking cancelled by a coordinator or with its occasion, a ruling on an activity
  kind, a report assigned to an assessor (with its due date: the rule set's `review_days`), and a
  diploma issued (a re-issued one too: each `DiplomaIssued` is its own mail).

The staff mails no single event causes (overdue reviews, the coordinator's weekly digest) are in
`assessment_service/staff_mail.py`.
- `INTAKE` (checkpoint "notifications_intake") reads the intake feed: registration confirmed,
  report (re)submitted.

Recipients: a student's name and address come from the `students` read model (blanked when the
student is erased: an erased student gets no mail); an assessor's from their identity account.
Language: every notice is enqueued in the language the recipient chose (`Recipients.locale` by the
notice's subject: a student id finds the student's account, an account id the account; stored in
the identity database, shared.identity.sql_store.preferred_locale), else English. It is looked up
in `_send`, which every notice goes through, so a new policy gets it without asking.

The runners only read up to where the read models they consult have got (`CappedFeed`), so a
mail never looks for a student or an occasion that is not projected yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from assessment_service.projections.base import student_id_of
from assessment_service.projections.presentations import presentation_occasions
from shared.config import Settings
from shared.events import JSON, RecordedEvent
from shared.projection import EventFeed, Handler, Projection, ProjectionRunner

if TYPE_CHECKING:
    from assessment_service.bootstrap import AssessmentContext

log = logging.getLogger(__name__)

#: The languages the mail templates are written in (shared.mail_templates).
LOCALES = ("en", "sv")
OWN_CHECKPOINT = "notifications"
INTAKE_CHECKPOINT = "notifications_intake"
DEFAULT_LOCALE = "en"
_LOCAL = ZoneInfo("Europe/Stockholm")


@dataclass(frozen=True)
class Notice:
    """One mail to enqueue (the fields of shared.outbox.Message)."""

    key: str
    template: str
    to_address: str
    to_name: str | None
    #: Replaced in `_send` by the recipient's own language when they chose one.
    locale: str = DEFAULT_LOCALE
    context: Mapping[str, Any] = field(default_factory=dict)
    subject_id: str | None = None
    department: str | None = None


#: Enqueue one notice; False if its key was enqueued before (the outbox's insert-or-ignore).
Enqueue = Callable[[Notice], bool]


class Recipients(Protocol):
    """Who a mail goes to. `conn` is the runner's connection to the assessment database."""

    def student(self, conn: sa.Connection, student_id: str) -> tuple[str | None, str] | None:
        """(name, address), or None if the student is unknown or erased."""

    def account(self, account_id: str) -> tuple[str | None, str] | None:
        """(name, address) of an identity account, or None (unknown, erased, no address)."""

    def locale(self, subject_id: str | None) -> str | None:
        """The language the person chose (`subject_id`: a student id or an account id), or None."""


@dataclass(frozen=True)
class Links:
    """The absolute URLs the mails point to, from the settings."""

    intake_url: str
    assessment_url: str
    contact: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Links:
        contact = parseaddr(settings.smtp_from)[1] or "cim@example.org"
        return cls(settings.intake_url.rstrip("/"), settings.assessment_url.rstrip("/"), contact)

    @property
    def my_cim(self) -> str:
        return f"{self.intake_url}/my-cim"

    def presentation(self, student_id: str) -> str:
        return f"{self.assessment_url}/students/{student_id}/presentation"

    def report(self, report_id: str) -> str:
        return f"{self.assessment_url}/reports/{report_id}"

    def diploma(self, student_id: str) -> str:
        return f"{self.assessment_url}/students/{student_id}/diploma"


#: The coordinator's reason for an extension, as the student reads it (events.EXTENSION_REASONS).
EXTENSION_REASON_TEXT: dict[str, dict[str, str]] = {
    "by_agreement": {"en": "By agreement with the coordinator.", "sv": "Efter överenskommelse med koordinatorn."},
    "illness": {"en": "Illness.", "sv": "Sjukdom."},
    "parental_leave": {"en": "Parental leave.", "sv": "Föräldraledighet."},
    "studies_prolonged": {"en": "Your studies were prolonged.", "sv": "Dina studier har förlängts."},
    "other": {"en": "", "sv": ""},
}

#: (event data with personal fields opened, student id) -> the data; erased: the fields are None.
Opener = Callable[[JSON, str], JSON]


def _plain(data: JSON, _student_id: str) -> JSON:
    return data


def _no_review_days(_department: str) -> int | None:
    return None


#: A department's `review_days` (its rule set), or None if the department is unknown.
ReviewDays = Callable[[str], "int | None"]

#: Why a booking was cancelled, as the student reads it (events.BOOKING_CANCEL_REASONS; a student
#: who cancelled their own booking gets no mail).
BOOKING_CANCELLED_MAILED = ("coordinator_cancelled", "occasion_cancelled")


@dataclass
class _Policy:
    recipients: Recipients
    enqueue: Enqueue
    links: Links
    opener: Opener = _plain
    review_days: ReviewDays = _no_review_days
    #: How many notices this process enqueued (new keys only): the worker kicks the delivery.
    enqueued: int = 0

    def _to_student(
        self, conn: sa.Connection, event: RecordedEvent, student_id: str, template: str,
        context: Mapping[str, Any], *, key: str | None = None, department: str | None = None,
    ) -> None:
        found = self.recipients.student(conn, student_id)
        if found is None:
            log.info("notification skipped: no address", extra={"event_id": event.event_id, "template": template})
            return
        name, address = found
        self._send(Notice(
            key or f"event:{event.event_id}", template, address, name, DEFAULT_LOCALE,
            {"name": name or "", **context}, student_id, department or event.data.get("department"),
        ))

    def locale_for(self, subject_id: str | None) -> str:
        """The recipient's language: their choice (identity database), else English."""
        chosen = self.recipients.locale(subject_id)
        return chosen if chosen in LOCALES else DEFAULT_LOCALE

    def _send(self, notice: Notice) -> None:
        notice = replace(notice, locale=self.locale_for(notice.subject_id))
        try:
            added = self.enqueue(notice)
        except ValueError as exc:  # an address the outbox refuses: this mail cannot be sent, ever
            log.warning("notification refused: %s", exc, extra={"key": notice.key, "template": notice.template})
            return
        if added:
            self.enqueued += 1

    # -- the own store --------------------------------------------------------------------------
    def deadline_reminder(self, conn: sa.Connection, event: RecordedEvent) -> None:
        d = event.data
        offset = int(d["offset_days"])
        self._to_student(conn, event, d["student_id"], "deadline_reminder",
                         {"deadline": d["deadline"], "days_left": offset, "my_cim_url": self.links.my_cim},
                         key=f"event:{event.event_id}:offset:{offset}")

    def deregistered(self, conn: sa.Connection, event: RecordedEvent) -> None:
        d = event.data
        self._to_student(conn, event, d["student_id"], "deregistered",
                         {"deadline": d["deadline"], "contact": self.links.contact})

    def reinstated(self, conn: sa.Connection, event: RecordedEvent) -> None:
        d = event.data
        self._to_student(conn, event, d["student_id"], "reinstated",
                         {"deadline": d["deadline"], "my_cim_url": self.links.my_cim})

    def deadline_extended(self, conn: sa.Connection, event: RecordedEvent) -> None:
        d = event.data
        locale = self.locale_for(d["student_id"])  # the reason is worded here, in the mail's language
        reason = EXTENSION_REASON_TEXT.get(d.get("reason_code", ""), {}).get(locale, "")
        self._to_student(conn, event, d["student_id"], "deadline_extended",
                         {"deadline": d["deadline"], "reason": reason, "my_cim_url": self.links.my_cim})

    def revision_requested(self, conn: sa.Connection, event: RecordedEvent) -> None:
        d = self.opener(event.data, event.data["student_id"])
        if not isinstance(d.get("summary"), str):
            return  # erased: the summary's key is gone, and so is the student
        self._to_student(conn, event, d["student_id"], "revision_requested",
                         {"summary": d["summary"], "my_cim_url": self.links.my_cim})

    def report_rejected(self, conn: sa.Connection, event: RecordedEvent) -> None:
        d = self.opener(event.data, event.data["student_id"])
        if not isinstance(d.get("summary"), str):
            return
        self._to_student(conn, event, d["student_id"], "report_rejected",
                         {"reason": d["summary"], "my_cim_url": self.links.my_cim})

    def report_approved(self, conn: sa.Connection, event: RecordedEvent) -> None:
        sid = event.data["student_id"]
        self._to_student(conn, event, sid, "report_approved", {"presentations_url": self.links.presentation(sid)})

    def presentation_booked(self, conn: sa.Connection, event: RecordedEvent) -> None:
        d = event.data
        occasion = conn.execute(
            sa.select(presentation_occasions.c.starts_at, presentation_occasions.c.ends_at,
                      presentation_occasions.c.place)
            .where(presentation_occasions.c.occasion_id == d["occasion_id"])
        ).first()
        if occasion is None:
            log.warning("notification skipped: unknown occasion", extra={"event_id": event.event_id})
            return
        self._to_student(conn, event, d["student_id"], "presentation_booked", {
            "occasion_id": d["occasion_id"], "starts_at": occasion.starts_at, "ends_at": occasion.ends_at,
            "location": occasion.place, "my_cim_url": self.links.my_cim,
        })

    def booking_cancelled(self, conn: sa.Connection, event: RecordedEvent) -> None:
        """A coordinator cancelled the student's booking, or the occasion was cancelled: tell the
        student (time and place of what was cancelled, and where to book another). A student who
        cancelled their own booking gets no mail."""
        d = event.data
        if d.get("reason_code") not in BOOKING_CANCELLED_MAILED:
            return
        occasion = conn.execute(
            sa.select(presentation_occasions.c.starts_at, presentation_occasions.c.place)
            .where(presentation_occasions.c.occasion_id == d["occasion_id"])
        ).first()
        if occasion is None:
            log.warning("notification skipped: unknown occasion", extra={"event_id": event.event_id})
            return
        self._to_student(conn, event, d["student_id"], "booking_cancelled", {
            "starts_at": occasion.starts_at, "location": occasion.place,
            "occasion_cancelled": d["reason_code"] == "occasion_cancelled",
            "presentations_url": self.links.presentation(d["student_id"]),
        })

    def activity_ruled(self, conn: sa.Connection, event: RecordedEvent) -> None:
        d = event.data
        self._to_student(conn, event, d["student_id"], "activity_ruled", {
            "activity": d["kind_label"], "accepted": d["outcome"] != "not_accepted",
            "reason": d.get("rationale") or "", "my_cim_url": self.links.my_cim,
        })

    def diploma_issued(self, conn: sa.Connection, event: RecordedEvent) -> None:
        d = event.data
        sid = d["student_id"]
        self._to_student(conn, event, sid, "diploma_issued", {
            "number": d["number"], "diploma_url": self.links.diploma(sid), "my_cim_url": self.links.my_cim,
        })

    def report_assigned(self, conn: sa.Connection, event: RecordedEvent) -> None:
        d = event.data
        found = self.recipients.account(d["assessor_account_id"])
        if found is None:
            log.info("notification skipped: assessor has no address", extra={"event_id": event.event_id})
            return
        name, address = found
        department = d["department"]
        round_ = int(d.get("round") or 1)
        days = self.review_days(department)
        # Due `review_days` after the day (in Lund) of the assignment: staff_mail.review_due.
        due = (event.occurred_at.astimezone(_LOCAL).date() + timedelta(days=days)).isoformat() if days else None
        self._send(Notice(
            f"event:{event.event_id}", "report_assigned", address, name, DEFAULT_LOCALE,
            {"name": name or "", "department": department, "round": round_,
             "review_url": self.links.report(d["report_id"]), "due": due},
            d["assessor_account_id"], department,
        ))

    # -- the intake feed --------------------------------------------------------------------------
    def registration_confirmed(self, conn: sa.Connection, event: RecordedEvent) -> None:
        d = event.data
        address = d.get("email")
        if not address:
            return  # erased: the feed serves None
        name = d.get("name")
        self._send(Notice(
            f"event:{event.event_id}", "registration_confirmed", address, name, DEFAULT_LOCALE,
            {"name": name or "", "department": d["department"], "my_cim_url": self.links.my_cim},
            student_id_of(event), d["department"],
        ))

    def report_received(self, conn: sa.Connection, event: RecordedEvent) -> None:
        round_ = int(event.data.get("round") or 1)
        self._to_student(conn, event, student_id_of(event), "report_received",
                         {"round": round_, "my_cim_url": self.links.my_cim}, department=_department(conn, event))

    def own_handlers(self) -> dict[str, Handler]:
        return {
            "DeadlineReminderDue": self.deadline_reminder,
            "StudentDeregistered": self.deregistered,
            "StudentReinstated": self.reinstated,
            "DeadlineExtended": self.deadline_extended,
            "RevisionRequested": self.revision_requested,
            "ReportApproved": self.report_approved,
            "ReportRejected": self.report_rejected,
            "PresentationBooked": self.presentation_booked,
            "BookingCancelled": self.booking_cancelled,
            "ActivityKindRuled": self.activity_ruled,
            "AssessorAssigned": self.report_assigned,
            "DiplomaIssued": self.diploma_issued,
        }

    def intake_handlers(self) -> dict[str, Handler]:
        return {
            "StudentRegistered": self.registration_confirmed,
            "ReportSubmitted": self.report_received,
            "ReportResubmitted": self.report_received,
        }


def _department(conn: sa.Connection, event: RecordedEvent) -> str | None:
    from assessment_service.projections.students import students

    return conn.execute(
        sa.select(students.c.department).where(students.c.student_id == student_id_of(event))
    ).scalar()


@dataclass
class Notifications:
    """The two notification policies over one enqueue; `enqueued` counts new outbox rows."""

    own: Projection
    intake: Projection
    policy: _Policy

    @property
    def enqueued(self) -> int:
        return self.policy.enqueued


def build(
    recipients: Recipients, enqueue: Enqueue, links: Links, opener: Opener = _plain,
    review_days: ReviewDays = _no_review_days,
) -> Notifications:
    """The policies as projections (checkpoints OWN_CHECKPOINT and INTAKE_CHECKPOINT)."""
    policy = _Policy(recipients, enqueue, links, opener, review_days)
    return Notifications(
        Projection(OWN_CHECKPOINT, (), policy.own_handlers()),
        Projection(INTAKE_CHECKPOINT, (), policy.intake_handlers()),
        policy,
    )


class ReadModelRecipients:
    """Students from the `students` read model; accounts from the identity database."""

    def __init__(self, identity_engine: sa.Engine | None) -> None:
        self.identity_engine = identity_engine

    def student(self, conn: sa.Connection, student_id: str) -> tuple[str | None, str] | None:
        from assessment_service.projections.students import students

        row = conn.execute(
            sa.select(students.c.name, students.c.email).where(students.c.student_id == student_id)
        ).first()
        if row is None or not row.email:
            return None
        return row.name, row.email

    def account(self, account_id: str) -> tuple[str | None, str] | None:
        if self.identity_engine is None:
            return None
        from shared.identity.sql_store import accounts

        with self.identity_engine.connect() as conn:
            row = conn.execute(
                sa.select(accounts.c.display_name, accounts.c.email, accounts.c.disabled, accounts.c.erased_at)
                .where(accounts.c.id == account_id)
            ).first()
        if row is None or not row.email or row.erased_at is not None or row.disabled:
            return None
        return row.display_name, row.email

    def locale(self, subject_id: str | None) -> str | None:
        if self.identity_engine is None:
            return None
        from shared.identity.sql_store import preferred_locale

        return preferred_locale(self.identity_engine, subject_id)


class CappedFeed:
    """`feed`, read no further than `cap()`: the position the read models a policy consults
    have reached (a checkpoint of the runner it follows, so never past the feed's head), so a
    policy never runs ahead of them."""

    def __init__(self, feed: EventFeed, cap: Callable[[], int]) -> None:
        self.feed = feed
        self.cap = cap

    def read(self, after: int, limit: int) -> list[RecordedEvent]:
        cap = self.cap()
        if after >= cap:
            return []
        return [e for e in self.feed.read(after, limit) if e.position <= cap]

    def head(self) -> int:
        """The cap: a checkpoint of the followed runner, never past the feed's head (and asking
        the cap spares the intake feed an HTTP round trip on every catch-up)."""
        return self.cap()


@dataclass
class NotificationRunners:
    """The runners of the two policies over an assessment context (one per process)."""

    notifications: Notifications
    own: ProjectionRunner
    intake: ProjectionRunner

    def catch_up(self, time_budget: float | None = None) -> int:
        """Apply every event past the two checkpoints (no further than the read models have got);
        answer how many NEW outbox rows this enqueued (0: no kick needed)."""
        before = self.notifications.enqueued
        self.intake.catch_up(time_budget=time_budget)
        self.own.catch_up(time_budget=time_budget)
        return self.notifications.enqueued - before


def runners(
    ctx: AssessmentContext, enqueue: Enqueue, identity_engine: sa.Engine | None, *, history: bool = False
) -> NotificationRunners:
    """Build (and create the checkpoints of) the notification runners of `ctx`.

    A policy seen for the first time starts where the read models it follows have got: deployed on
    a database with a history, it mails about what happens from then on, not about every
    registration and decision ever recorded. `history=True` starts it at 0 instead (tests)."""
    from assessment_service.bootstrap import BATCH_SIZE
    from assessment_service.events import REGISTRY
    from shared.adapters.feed import StoreEventFeed

    def opener(data: JSON, student_id: str) -> JSON:
        if ctx.codec is None:
            return data
        return ctx.codec.open(data, ctx.codec.vault.keys_for([student_id]).get(student_id))

    def review_days(department: str) -> int | None:
        dept = ctx.catalogue.department(department)
        return dept.review_days if dept is not None else None

    notes = build(ReadModelRecipients(identity_engine), enqueue, Links.from_settings(ctx.settings), opener,
                  review_days)
    own_feed = CappedFeed(StoreEventFeed(ctx.store, REGISTRY), lambda: min(ctx.own_runner.checkpoints().values()))
    intake_feed = CappedFeed(ctx.feed, lambda: min(ctx.runner.checkpoints().values()))
    own = ProjectionRunner(ctx.engine, own_feed, (notes.own,), batch_size=BATCH_SIZE, reader=ctx.reader)
    intake = ProjectionRunner(ctx.engine, intake_feed, (notes.intake,), batch_size=BATCH_SIZE, reader=ctx.reader)
    if not history:
        _start_at(ctx.engine, OWN_CHECKPOINT, ctx.own_runner)
        _start_at(ctx.engine, INTAKE_CHECKPOINT, ctx.runner)
    own.create_schema()
    intake.create_schema()
    return NotificationRunners(notes, own, intake)


def _start_at(engine: sa.Engine, name: str, followed: ProjectionRunner) -> None:
    """Create checkpoint `name` at the lowest checkpoint of `followed`, unless it exists."""
    import time

    from shared.projection import checkpoints

    with engine.connect() as conn:
        if conn.execute(sa.select(checkpoints.c.name).where(checkpoints.c.name == name)).first() is not None:
            return
    position = min(followed.checkpoints().values(), default=0)
    try:
        with engine.begin() as conn:
            conn.execute(checkpoints.insert(), {"name": name, "position": position, "updated_at": time.time()})
    except sa.exc.IntegrityError:  # another worker created it first
        return
    if position:
        log.info("notifications start after the existing history", extra={"policy": name, "position": position})


def outbox_enqueue(outbox: Any) -> Enqueue:
    """An Enqueue over a shared.outbox.Outbox (insert or ignore by key)."""
    from shared.outbox import Message

    def enqueue(notice: Notice) -> bool:
        return bool(outbox.enqueue(Message(
            key=notice.key, template=notice.template, to_address=notice.to_address, to_name=notice.to_name,
            locale=notice.locale, context=dict(notice.context), subject_id=notice.subject_id,
            department=notice.department,
        )))

    return enqueue
