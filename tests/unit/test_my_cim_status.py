"""The assessment status reaches "my CIM" through the intake's own view, fed by status events."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from intake_service import create_app
from intake_service.assessment_view import build_view
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.events import RecordedEvent
from tests.authkit import bearer, make_identity, sign_in_student
from tests.unit.test_intake_api import STUDENT

NOW = datetime(2026, 11, 28, tzinfo=UTC)


class ListFeed:
    def __init__(self, events: list[RecordedEvent]) -> None:
        self.events = events

    def read(self, after: int, limit: int) -> list[RecordedEvent]:
        return [e for e in self.events if e.position > after][:limit]

    def head(self) -> int:
        return max((e.position for e in self.events), default=0)


def status_event(position: int, student_id: str, status: str) -> RecordedEvent:
    return RecordedEvent(position, f"e{position}", f"status-{student_id}", 1, "StudentStatusChanged", 1,
                         {"student_id": student_id, "status": status}, {}, NOW, NOW)


def test_my_cim_shows_the_status_delivered_by_events(tmp_path):
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    app = create_app(settings, store=InMemoryEventStore(), clock=clock, identity=identity)
    client = app.test_client()
    sid = client.post("/api/v1/students", json=STUDENT, headers=bearer(identity)).json["student_id"]
    sign_in_student(client, identity, sid)  # the student's own account, signed in
    first = client.get(f"/students/{sid}")
    assert first.status_code == 200
    before = first.get_data(as_text=True)
    assert "waiting for review" not in before
    feed = ListFeed([status_event(1, sid, "registered"), status_event(2, sid, "report submitted")])
    view = build_view(settings, feed=feed)
    view.catch_up()
    app.extensions["cim.intake.assessment_view"] = view
    page = client.get(f"/students/{sid}").get_data(as_text=True)
    assert "Report submitted. It is waiting for review by the assessors." in page
    swedish = client.get(f"/students/{sid}?lang=sv").get_data(as_text=True)
    assert "Den väntar på granskning" in swedish


def test_the_my_cim_page_runs_no_ddl_the_status_view_is_made_at_start_up(tmp_path):
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    app = create_app(settings, store=InMemoryEventStore(), clock=clock, identity=identity)
    # The app factory made the view's table: it is there before any page is asked for.
    engine = sa.create_engine(settings.intake_db_url)
    try:
        assert "intake_assessment_status" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    client = app.test_client()
    sid = client.post("/api/v1/students", json=STUDENT, headers=bearer(identity)).json["student_id"]
    sign_in_student(client, identity, sid)
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        assert client.get(f"/students/{sid}").status_code == 200
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    assert any("intake_assessment_status" in s for s in statements)  # the page read the view
    assert not [s for s in statements if s.lstrip().upper().startswith(("CREATE", "PRAGMA TABLE_INFO"))]


def test_my_cim_shows_the_students_own_submission_at_once(tmp_path):
    """The assessment side has said nothing yet (no status event): the submission the intake
    itself holds is shown, never "Registered" after the student has submitted."""
    from tests.unit.test_intake_api import ACTIVITY

    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://")
    clock = FixedClock(NOW)
    identity = make_identity(clock)
    app = create_app(settings, store=InMemoryEventStore(), clock=clock, identity=identity)
    client = app.test_client()
    api = bearer(identity)
    sid = client.post("/api/v1/students", json=STUDENT, headers=api).json["student_id"]
    sign_in_student(client, identity, sid)
    assert "Registered. Log your activities" in client.get(f"/students/{sid}").get_data(as_text=True)
    activity = client.post(f"/api/v1/students/{sid}/activities", json=ACTIVITY, headers=api).json["activity_id"]
    answers = {"learning": "I learnt a lot.", "profession": "It matters.", "perspective": "Wider."}
    submitted = client.post(f"/api/v1/students/{sid}/reports", headers=api,
                            json={"answers": answers, "activity_ids": [activity]})
    assert submitted.status_code == 201, submitted.json
    page = client.get(f"/students/{sid}").get_data(as_text=True)
    assert "Report submitted. It is waiting for review by the assessors." in page
    assert "Registered. Log your activities" not in page
