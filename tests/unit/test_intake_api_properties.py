"""Property-based: whatever a client sends, the intake API answers 2xx or a clear 4xx, never 5xx,
and a 4xx stores nothing. (Deep nesting and lone surrogates against every JSON endpoint of both
apps: tests/unit/test_json_bodies_properties.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake_service import create_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from tests.authkit import authed_client, bearer, make_identity
from tests.unit.test_intake_api import ACTIVITY, STUDENT

#: Text with a lone surrogate (no UTF-8 form: refused by the decoder, issue 18.5).
lone_surrogate_text = st.builds(lambda a, s, b: a + s + b, st.text(max_size=5),
                                st.integers(min_value=0xD800, max_value=0xDFFF).map(chr), st.text(max_size=5))
json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50)
                | lone_surrogate_text)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)


def mutate(base: dict) -> st.SearchStrategy[dict]:
    """A valid body with some fields replaced by arbitrary JSON, dropped, or extra keys added."""
    keys = sorted(base)
    return st.builds(
        lambda replaced, dropped, extra: {
            **{k: v for k, v in base.items() if k not in dropped},
            **replaced,
            **extra,
        },
        st.dictionaries(st.sampled_from(keys), json_values, max_size=3),
        st.sets(st.sampled_from(keys), max_size=2),
        st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=1),
    )


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    store = InMemoryEventStore()
    clock = FixedClock(datetime(2026, 11, 28, tzinfo=UTC))
    identity = make_identity(clock)
    app = create_app(
        # Thousands of posts from one address: the rate limit (S5) is not what these properties test.
        Settings(data_dir=tmp_path_factory.mktemp("props"), wakeup="none", ratelimit_storage="memory://",
                 ratelimit_post="1000000 per minute"),
        store=store,
        clock=clock,
        identity=identity,
    )
    app.config["TEST_STORE"] = store
    # An integration's token with every intake scope: the properties are about bodies, so every
    # request below is authenticated and reaches validation.
    app.config["TEST_HEADERS"] = bearer(identity)
    sid = client_of(app).post("/api/v1/students", json=STUDENT).json["student_id"]
    app.config["TEST_SID"] = sid
    return app


def client_of(app):  # type: ignore[no-untyped-def]
    return authed_client(app, app.config["TEST_HEADERS"])


def check(app, path: str, body) -> None:
    store = app.config["TEST_STORE"]
    before = store.count()
    response = client_of(app).post(path, json=body)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"
        assert response.json["detail"]
        assert store.count() == before
    else:
        assert store.count() >= before


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=mutate(STUDENT) | json_values)
def test_registration_never_fails_with_a_server_error(app, body):
    check(app, "/api/v1/students", body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=mutate(ACTIVITY) | json_values)
def test_logging_an_activity_never_fails_with_a_server_error(app, body):
    check(app, f"/api/v1/students/{app.config['TEST_SID']}/activities", body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=mutate({"answers": {"learning": "a"}, "activity_ids": ["x"], "attachment_id": None}) | json_values)
def test_submitting_a_report_never_fails_with_a_server_error(app, body):
    check(app, f"/api/v1/students/{app.config['TEST_SID']}/reports", body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300), content_type=st.sampled_from(["application/json", "application/pdf", "text/plain"]))
def test_arbitrary_bytes_never_cause_a_server_error(app, raw, content_type):
    store = app.config["TEST_STORE"]
    before = store.count()
    sid = app.config["TEST_SID"]
    for path in ("/api/v1/students", f"/api/v1/students/{sid}/attachments", f"/api/v1/students/{sid}/reports"):
        response = client_of(app).post(path, data=raw, content_type=content_type)
        assert 400 <= response.status_code < 500
    assert store.count() == before
