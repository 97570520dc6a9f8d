"""The projection contract (hypothesis): for any event history, however the live projection was
woken (batch sizes, duplicate and late wake-ups, rebuilds of single projections along the way),
its read model equals a rebuild from position 0 — and so does the intake status view."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assessment_service import projections, queries
from intake_service import assessment_view
from intake_service.events import REGISTRY
from shared.adapters.feed import FunctionFeed, StoreEventFeed
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.sql import make_engine
from shared.events import NewEvent
from shared.projection import ProjectionRunner

T0 = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)
STUDENTS = [str(uuid.UUID(int=i + 1)) for i in range(4)]
ACTIVITIES = [str(uuid.UUID(int=100 + i)) for i in range(6)]

student = st.sampled_from(STUDENTS)
activity = st.sampled_from(ACTIVITIES)


def _activity_data(aid: str, title: str, v1: bool) -> dict:
    if v1:
        return {"activity_id": aid, "kind": "exchange", "title": title, "organiser": "U", "abroad": True,
                "country": "FR", "start_date": "2025-01-01", "end_date": "2025-02-01", "description": ""}
    return {"activity_id": aid, "kind": "seminar", "title": title, "organiser": "U", "setting": "digital",
            "country_code": None, "start_date": "2025-01-01", "end_date": "2025-01-02", "hours": 3,
            "description": "d"}


intake_event = st.one_of(
    st.tuples(st.just("StudentRegistered"), student, st.sampled_from(["SOCSW", "MED"])),
    st.tuples(st.just("ActivityLogged"), student, activity, st.text("abc", min_size=1, max_size=3), st.booleans()),
    st.tuples(st.just("ActivityAmended"), student, activity, st.text("xyz", min_size=1, max_size=3)),
    st.tuples(st.just("ActivityWithdrawn"), student, activity),
    st.tuples(st.just("ReportSubmitted"), student, st.lists(activity, max_size=3, unique=True)),
    st.tuples(st.just("StudiesCompleted"), student, st.dates()),
    st.tuples(st.just("RegistrationWithdrawn"), student),
    st.tuples(st.just("StudentErased"), student),
)

step = st.one_of(
    intake_event.map(lambda e: ("event", e)),
    st.tuples(st.just("catch_up"), st.integers(1, 6)),
    st.tuples(st.just("rebuild"), st.sampled_from([p.name for p in projections.ALL])),
)


def _new_event(spec: tuple, n: int) -> tuple[str, NewEvent]:
    kind, sid = spec[0], spec[1]
    version = 1
    if kind == "StudentRegistered":
        data = {"student_id": sid, "name": f"Student {sid[-2:]}", "email": "s@example.org", "university_id": "u-1",
                "department": spec[2], "programme": "P", "expected_end_term": "VT2028", "rules": f"{spec[2]}@1"}
    elif kind == "ActivityLogged":
        data = _activity_data(spec[2], spec[3], spec[4])
        version = 1 if spec[4] else 2
    elif kind == "ActivityAmended":
        data = _activity_data(spec[2], spec[3], False)
    elif kind == "ActivityWithdrawn":
        data = {"activity_id": spec[2], "reason": ""}
    elif kind == "ReportSubmitted":
        data = {"report_id": str(uuid.UUID(int=1000 + n)), "answers": {"learning": f"a{n}"},
                "activity_ids": spec[2], "attachment_id": None, "rules": "SOCSW@1"}
    elif kind == "StudiesCompleted":
        data = {"completed_on": spec[2].isoformat(), "term": "VT2026"}
    else:
        data = {"reason": ""}
    meta = {"actor": "test", "correlation_id": f"c{n}"}
    return f"student-{sid}", NewEvent(kind, version, data, meta, T0 + timedelta(minutes=n))


def _runner(url: str, store: InMemoryEventStore, batch: int) -> ProjectionRunner:
    runner = ProjectionRunner(make_engine(url, immediate=True), StoreEventFeed(store, REGISTRY), projections.ALL,
                              batch_size=batch)
    runner.create_schema()
    return runner


def _status_view(url: str, runner: ProjectionRunner, batch: int) -> assessment_view.AssessmentView:
    def read(after: int, limit: int):  # type: ignore[no-untyped-def]
        with runner.engine.connect() as conn:
            return queries.status_changes(conn, after, min(limit, batch))

    def head() -> int:
        with runner.engine.connect() as conn:
            return queries.status_head(conn)

    return assessment_view.build_view(None, feed=FunctionFeed(read, head), engine=make_engine(url, immediate=True))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, max_size=40), final_batch=st.integers(1, 50))
def test_live_projection_equals_rebuild_from_zero(steps: list, final_batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = InMemoryEventStore()
        live = _runner(f"sqlite:///{Path(tmp) / 'live.db'}", store, 3)
        live_view = _status_view(f"sqlite:///{Path(tmp) / 'live_intake.db'}", live, 2)
        for n, (what, arg) in enumerate(steps):
            if what == "event":
                stream, event = _new_event(arg, n)
                store.append(stream, [event], expected_version=None)
            elif what == "catch_up":
                live.batch_size = arg
                live.catch_up()
                live_view.catch_up()
            else:
                live.rebuild([arg])
        live.catch_up()
        live.catch_up()  # a duplicate wake-up
        live_view.catch_up()

        rebuilt = _runner(f"sqlite:///{Path(tmp) / 'rebuilt.db'}", store, final_batch)
        rebuilt.catch_up()
        assert live.digest() == rebuilt.digest()
        assert set(live.checkpoints().values()) <= {store.head()}

        rebuilt_view = _status_view(f"sqlite:///{Path(tmp) / 'rebuilt_intake.db'}", rebuilt, 1000)
        rebuilt_view.catch_up()
        assert live_view.runner.digest() == rebuilt_view.runner.digest()
        for sid in STUDENTS:
            with live.engine.connect() as conn:
                overview = queries.student_overview(conn, sid)
            assert live_view.status_for(sid) == (overview["status"] if overview else None)
        for r in (live, rebuilt, live_view.runner, rebuilt_view.runner):
            r.engine.dispose()
