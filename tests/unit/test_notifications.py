"""Notifications (assessment_service/notifications.py): each event that should mail someone
enqueues exactly one message, with the right template, recipient and key; an erased student gets
none; a batch run again (a crash before the checkpoint, a rebuild) enqueues nothing new."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from assessment_service import deadline_services, notifications
from assessment_service.notifications import CappedFeed, Links, Notice
from assessment_service.projections.presentations import presentation_occasions
from assessment_service.projections.students import students
from shared import mail_templates
from shared.adapters.feed import FunctionFeed
from shared.clock import FixedClock
from shared.events import RecordedEvent
from shared.outbox import Outbox
from shared.projection import ProjectionRunner
from tests.unit.test_assessment_access import World
from tests.unit.test_deadlines import DEADLINE, _at, settings, world

__all__ = ["settings", "world"]  # the fixtures of the deadline tests (students A, B with reports; C without)

SID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
ERASED = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
REPORT = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
OCCASION = "dddddddd-dddd-4ddd-8ddd-dddddddddddd"
ASSESSOR = "acct-assessor-1"
LINKS = Links("https://intake.example.org", "https://assessment.example.org", "cim@example.org")


class Sink:
    """The outbox's contract in memory: insert or ignore by key."""

    def __init__(self) -> None:
        self.rows: dict[str, Notice] = {}
        self.calls = 0

    def __call__(self, notice: Notice) -> bool:
        self.calls += 1
        if notice.key in self.rows:
            return False
        self.rows[notice.key] = notice
        return True


class Recipients(notifications.ReadModelRecipients):
    def account(self, account_id: str) -> tuple[str | None, str] | None:
        return ("Sam Granskare", "sam.granskare@example.org") if account_id == ASSESSOR else None


def _opener(data: Mapping[str, Any], student_id: str) -> dict[str, Any]:
    """Stands in for the key vault: an erased student's sealed fields open to None."""
    return {k: (None if student_id == ERASED and k == "summary" else v) for k, v in data.items()}


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'assessment.db'}")
    students.create(engine)
    presentation_occasions.create(engine)
    row = {
        "department": "SOC", "programme": "SASOC", "expected_end_term": "VT2027", "rules": "SOC@1",
        "registered_at": "2026-01-01T00:00:00+00:00", "status": "registered", "status_rank": 1,
        "status_position": 1, "status_changed_at": "2026-01-01T00:00:00+00:00", "studies_completed_on": None,
        "reports_submitted": 0,
    }
    with engine.begin() as conn:
        conn.execute(students.insert(), [
            {**row, "student_id": SID, "name": "Alex Exempel", "email": "alex.exempel@example.org"},
            {**row, "student_id": ERASED, "name": None, "email": None},
        ])
        conn.execute(presentation_occasions.insert(), {
            "occasion_id": OCCASION, "department": "SOC", "kind": "lecture", "starts_at": "2027-02-10T13:15:00",
            "ends_at": "2027-02-10T15:00:00", "place": "Room G:323", "capacity": 10, "taken": 1,
            "cancelled": False, "published_by": "acct-coordinator", "position": 1,
        })
    return engine


def _event(position: int, type_name: str, data: dict[str, Any], stream: str = "x") -> RecordedEvent:
    at = datetime(2026, 12, 4, tzinfo=UTC)
    return RecordedEvent(position, str(uuid.uuid4()), stream, 1, type_name, 1, data, {}, at, at)


def _own_events(student: str) -> list[RecordedEvent]:
    base = {"student_id": student, "department": "SOC"}
    deadline = {**base, "deadline": "2027-01-17"}
    decision = {**base, "report_id": REPORT, "round": 1, "rule_set": "SOC@1", "decided_by": "a", "rests_on": ["r"]}
    return [
        _event(1, "DeadlineReminderDue", {**deadline, "offset_days": 60}),
        _event(2, "DeadlineReminderDue", {**deadline, "offset_days": 14}),
        _event(3, "StudentDeregistered", {**deadline, "reason_code": "deadline_passed", "rule_set": "SOC@1",
                                          "deregistered_by": "system:deadlines"}),
        _event(4, "DeadlineExtended", {**deadline, "deadline": "2027-06-06", "reason_code": "illness",
                                       "extended_by": "c"}),
        _event(5, "StudentReinstated", {**deadline, "deadline": "2027-06-06", "reason_code": "by_agreement",
                                        "reinstated_by": "c"}),
        _event(6, "RevisionRequested", {**decision, "summary": "Say more about the exchange term."}),
        _event(7, "ReportRejected", {**decision, "summary": "Too few activities."}),
        _event(8, "ReportApproved", decision),
        _event(9, "PresentationBooked", {**base, "occasion_id": OCCASION, "report_id": REPORT, "booked_by": "s"}),
        _event(10, "ActivityKindRuled", {**base, "activity_id": REPORT, "kind_label": "Online seminar",
                                         "outcome": "accepted_as_new", "kind": "seminar", "activity_class": "B",
                                         "rationale": "It meets the criteria.", "ruled_by": "a"}),
        _event(11, "AssessorAssigned", {**base, "report_id": REPORT, "assessor_account_id": ASSESSOR}),
        _event(12, "OccasionCancelled", {"occasion_id": OCCASION, "department": "SOC", "cancelled_by": "c"}),
        _event(13, "BookingCancelled", {**base, "occasion_id": OCCASION, "reason_code": "occasion_cancelled",
                                        "cancelled_by": "c"}),
        _event(14, "BookingCancelled", {**base, "occasion_id": OCCASION, "reason_code": "student_cancelled",
                                        "cancelled_by": "s"}),
    ]


def _intake_events(student: str, email: str | None) -> list[RecordedEvent]:
    stream = f"student-{student}"
    return [
        _event(1, "StudentRegistered", {"name": "Alex Exempel" if email else None, "email": email,
                                        "department": "SOC"}, stream),
        _event(2, "ReportSubmitted", {"report_id": REPORT}, stream),
        _event(3, "ReportResubmitted", {"report_id": REPORT, "round": 2}, stream),
        _event(4, "StudiesCompleted", {"completed_on": "2026-06-01"}, stream),
    ]


def _runner(engine: sa.Engine, projection: Any, events: list[RecordedEvent]) -> ProjectionRunner:
    feed = FunctionFeed(lambda after, limit: [e for e in events if e.position > after][:limit],
                        lambda: events[-1].position)
    runner = ProjectionRunner(engine, feed, (projection,))
    runner.create_schema()
    return runner


def _notes(sink: Sink) -> notifications.Notifications:
    return notifications.build(Recipients(None), sink, LINKS, _opener, lambda d: 14 if d == "SOC" else None)


def test_each_own_event_enqueues_one_mail_with_its_template_recipient_and_key(engine: sa.Engine) -> None:
    sink = Sink()
    notes = _notes(sink)
    events = _own_events(SID)
    _runner(engine, notes.own, events).catch_up()
    by_id = {e.event_id: e for e in events}
    got = {(n.template, n.to_address, n.key.split(":", 1)[1].split(":")[0] in by_id) for n in sink.rows.values()}
    student = "alex.exempel@example.org"
    assert got == {
        ("deadline_reminder", student, True), ("deregistered", student, True), ("deadline_extended", student, True),
        ("reinstated", student, True), ("revision_requested", student, True), ("report_rejected", student, True),
        ("report_approved", student, True), ("presentation_booked", student, True),
        ("activity_ruled", student, True), ("report_assigned", "sam.granskare@example.org", True),
        ("booking_cancelled", student, True),
    }
    # Two reminders, one each for the rest; the cancelled occasion itself mails no one (its
    # BookingCancelled does), nor does a booking the student cancelled themselves.
    assert len(sink.rows) == 12
    cancelled = sink.rows[f"event:{events[12].event_id}"].context
    assert (cancelled["occasion_cancelled"], cancelled["starts_at"], cancelled["location"]) == (
        True, "2027-02-10T13:15:00", "Room G:323")
    assert f"event:{events[13].event_id}" not in sink.rows
    reminders = sorted(k for k, n in sink.rows.items() if n.template == "deadline_reminder")
    assert reminders == sorted([f"event:{events[0].event_id}:offset:60", f"event:{events[1].event_id}:offset:14"])
    assert sink.rows[f"event:{events[5].event_id}"].context["summary"] == "Say more about the exchange term."
    approved = sink.rows[f"event:{events[7].event_id}"]
    assert approved.context["presentations_url"] == f"https://assessment.example.org/students/{SID}/presentation"
    booked = sink.rows[f"event:{events[8].event_id}"].context
    assert (booked["starts_at"], booked["location"]) == ("2027-02-10T13:15:00", "Room G:323")
    assigned = sink.rows[f"event:{events[10].event_id}"]
    assert (assigned.to_name, assigned.subject_id) == ("Sam Granskare", ASSESSOR)
    assert assigned.context["due"] == "2026-12-18"  # assigned 4 December (Lund) + the rule set's 14 days
    assert all(n.subject_id == SID for n in sink.rows.values() if n.template != "report_assigned")
    assert notes.enqueued == 12


def test_each_intake_event_enqueues_one_mail(engine: sa.Engine) -> None:
    sink = Sink()
    events = _intake_events(SID, "alex.exempel@example.org")
    _runner(engine, _notes(sink).intake, events).catch_up()
    assert sorted((n.template, n.context.get("round")) for n in sink.rows.values()) == [
        ("registration_confirmed", None), ("report_received", 1), ("report_received", 2),
    ]
    assert {n.key for n in sink.rows.values()} == {f"event:{e.event_id}" for e in events[:3]}
    assert {n.department for n in sink.rows.values()} == {"SOC"}


def test_an_erased_student_gets_no_mail(engine: sa.Engine) -> None:
    sink = Sink()
    notes = _notes(sink)
    _runner(engine, notes.own, _own_events(ERASED)).catch_up()
    _runner(engine, notes.intake, _intake_events(ERASED, None)).catch_up()
    assert [n.template for n in sink.rows.values()] == ["report_assigned"]  # the assessor still is told


def test_a_batch_run_again_enqueues_nothing_new(engine: sa.Engine) -> None:
    """The checkpoint (assessment database) and the outbox (identity database) commit apart: a
    crash between them runs the batch again, and the keys make that second run a no-op."""
    sink = Sink()
    notes = _notes(sink)
    runner = _runner(engine, notes.own, _own_events(SID))
    runner.catch_up()
    first = dict(sink.rows)
    runner.reset()  # the checkpoint back to 0, as if its commit had been lost
    runner.catch_up()
    assert sink.rows == first
    assert sink.calls == 2 * len(first)
    assert notes.enqueued == len(first)


def test_the_policy_reads_no_further_than_the_read_models() -> None:
    events = [_event(p, "X", {}) for p in (1, 2, 3, 4)]
    cap = [2]
    feed = CappedFeed(FunctionFeed(lambda after, limit: [e for e in events if e.position > after][:limit],
                                   lambda: 4), lambda: cap[0])
    assert [e.position for e in feed.read(0, 10)] == [1, 2]
    assert feed.read(2, 10) == []
    assert feed.head() == 2
    cap[0] = 4
    assert [e.position for e in feed.read(2, 10)] == [3, 4]
    assert feed.head() == 4


def test_every_mail_renders_in_english_and_swedish_with_the_templates_context(engine: sa.Engine) -> None:
    sink = Sink()
    notes = _notes(sink)
    _runner(engine, notes.own, _own_events(SID)).catch_up()
    _runner(engine, notes.intake, _intake_events(SID, "alex.exempel@example.org")).catch_up()
    # Every template for students and assessors but those others enqueue (sign-in, lockout, diploma,
    # the staff mails of assessment_service/staff_mail.py: tests/unit/test_staff_mail.py; the staff
    # set-up link: tests/unit/test_staff_setup.py).
    assert {n.template for n in sink.rows.values()} == set(mail_templates.TEMPLATES) - {
        "sign_in_link", "sign_in_locked", "diploma_issued", "reviews_overdue", "coordinator_digest",
        "staff_setup_link"}
    for notice in sink.rows.values():
        sample = mail_templates.TEMPLATES[notice.template].sample
        assert set(sample) <= set(notice.context), notice.template
        for locale in ("en", "sv"):
            rendered = mail_templates.render(notice.template, locale, notice.context)
            assert rendered.subject
            assert rendered.text.strip()
            if notice.template == "presentation_booked":
                assert b"Room G:323" in rendered.attachments[0][2]


def test_the_real_outbox_keeps_one_row_per_key(engine: sa.Engine, tmp_path: Path) -> None:
    box = Outbox.from_url(f"sqlite:///{tmp_path / 'identity.db'}", "x" * 32)
    box.create_schema()
    enqueue = notifications.outbox_enqueue(box)
    notes = notifications.build(Recipients(None), enqueue, LINKS, _opener)
    events = _own_events(SID)
    runner = _runner(engine, notes.own, events)
    runner.catch_up()
    runner.reset()
    runner.catch_up()
    rows = box.rows()
    assert len(rows) == 12 == len({r.key for r in rows})
    assert notes.enqueued == 12


def test_an_address_the_outbox_refuses_is_skipped_not_retried_forever(engine: sa.Engine) -> None:
    """A bad address would otherwise fail the batch on every catch-up and hold up every mail."""
    with engine.begin() as conn:
        conn.execute(students.update().where(students.c.student_id == SID).values(email="a@b\r\nBcc: x@y"))

    def refusing(notice: Notice) -> bool:
        raise ValueError("not a single e-mail address")

    notes = notifications.build(Recipients(None), refusing, LINKS, _opener)
    runner = _runner(engine, notes.own, _own_events(SID))
    runner.catch_up()
    assert runner.checkpoints()[notifications.OWN_CHECKPOINT] == 14
    assert notes.enqueued == 0


# -- with the real apps: the deadline sweep's events and the intake feed, into the real outbox ----


def test_the_sweep_and_the_intake_feed_mail_each_student_once_even_with_two_runners(
    world: World, clock: FixedClock, tmp_path: Path
) -> None:
    ctx = world.ctx
    deadline_services.sweep(ctx)
    for day in (DEADLINE - timedelta(days=60), DEADLINE - timedelta(days=14), DEADLINE - timedelta(days=3),
                DEADLINE + timedelta(days=1)):
        _at(clock, day)
        deadline_services.sweep(ctx)
    ctx.runner.catch_up()
    ctx.own_runner.catch_up()
    box = Outbox.from_url(f"sqlite:///{tmp_path / 'outbox.db'}", "x" * 32)
    box.create_schema()
    first = notifications.runners(ctx, notifications.outbox_enqueue(box), None, history=True)
    second = notifications.runners(ctx, notifications.outbox_enqueue(box), None, history=True)  # another worker
    enqueued = first.catch_up() + second.catch_up()
    first.own.reset()  # as if the checkpoint's commit had been lost after the enqueues
    enqueued += first.catch_up()
    rows = box.rows()
    assert enqueued == len(rows) == len({r.key for r in rows})
    c = world.students["C"]
    assert sorted(r.template for r in rows if r.subject_id == c) == [
        "deadline_reminder", "deadline_reminder", "deadline_reminder", "deregistered", "registration_confirmed",
    ]
    assert sorted(r.context["days_left"] for r in rows if r.template == "deadline_reminder") == [3, 14, 60]
    assert sorted(r.template for r in rows if r.subject_id == world.students["A"]) == [
        "registration_confirmed", "report_received",
    ]
    assert {r.to_address for r in rows if r.subject_id == c} == {_email_of(ctx, c)}


def _email_of(ctx: Any, student_id: str) -> str:
    with ctx.reader.connect() as conn:
        return str(conn.execute(sa.select(students.c.email).where(students.c.student_id == student_id)).scalar())


# -- the workers' wiring ---------------------------------------------------------------------------


def test_the_workers_catch_up_enqueues_the_mails_and_kicks_the_delivery_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fakeredis

    from assessment_service.bootstrap import build_context
    from intake_service.events import REGISTRY
    from shared.adapters.feed import StoreEventFeed
    from shared.adapters.memory_store import InMemoryEventStore
    from shared.config import Settings
    from tests.unit.test_workers import _registered
    from workers.tasks import projections as projection_tasks

    settings = Settings(data_dir=tmp_path)
    store = InMemoryEventStore()
    sid = "00000000-0000-0000-0000-000000000001"
    ctx = build_context(settings, feed=StoreEventFeed(store, REGISTRY))
    kicks: list[str | None] = []

    class Kick:
        def after_commit(self, correlation_id: str | None = None) -> None:
            kicks.append(correlation_id)

    monkeypatch.setattr(projection_tasks, "assessment_context", lambda: ctx)
    monkeypatch.setattr(projection_tasks, "intake_view", lambda: type("V", (), {"catch_up": lambda self: 0})())
    monkeypatch.setattr(projection_tasks, "redis_client", lambda: fakeredis.FakeRedis())
    monkeypatch.setattr(projection_tasks, "outbox_kick", lambda: Kick())
    projection_tasks.catch_up_projections(backstop=True)  # the policies start (at 0: no history yet)
    store.append(f"student-{sid}", [_registered(sid)], expected_version=0)
    projection_tasks.catch_up_projections(correlation_id="c-1")
    projection_tasks.catch_up_projections(backstop=True)  # again: nothing new to mail, no kick
    box = Outbox.from_url(settings.identity_db_url, settings.identity_secret)
    rows = box.rows()
    assert [(r.template, r.to_address, r.subject_id) for r in rows] == [
        ("registration_confirmed", "t@example.org", sid)]
    assert len(kicks) == 1


def test_a_policy_deployed_on_a_history_mails_only_about_what_happens_from_then_on(
    world: World, tmp_path: Path
) -> None:
    ctx = world.ctx
    ctx.runner.catch_up()
    box = Outbox.from_url(f"sqlite:///{tmp_path / 'outbox.db'}", "x" * 32)
    box.create_schema()
    runners = notifications.runners(ctx, notifications.outbox_enqueue(box), None)
    assert runners.catch_up() == 0  # three registrations and two reports before it: no mail
    from tests.unit.test_assessment_access import register

    new = register(world.intake, "StudentD Exempel")
    ctx.runner.catch_up()
    assert runners.catch_up() == 1
    assert [(r.template, r.subject_id) for r in box.rows()] == [("registration_confirmed", new)]


def test_two_workers_at_once_enqueue_each_mail_once(world: World, clock: FixedClock, tmp_path: Path) -> None:
    from tests.factories import at_once

    ctx = world.ctx
    deadline_services.sweep(ctx)
    _at(clock, DEADLINE + timedelta(days=1))
    deadline_services.sweep(ctx)  # C: deregistered
    ctx.runner.catch_up()
    ctx.own_runner.catch_up()
    box = Outbox.from_url(f"sqlite:///{tmp_path / 'outbox.db'}", "x" * 32)
    box.create_schema()
    workers = [notifications.runners(ctx, notifications.outbox_enqueue(box), None, history=True) for _ in range(2)]
    results = at_once(2, lambda: workers.pop().catch_up())
    assert len(results) == 2  # neither thread failed
    rows = box.rows()
    assert sum(results) == len(rows) == len({r.key for r in rows})
    assert sorted(r.template for r in rows if r.subject_id == world.students["C"]) == [
        "deregistered", "registration_confirmed"]  # past the deadline: no late reminders
