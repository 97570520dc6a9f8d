"""Fixtures every test layer shares: event stores on each backend, and a clock that stands still.

`store` runs a test on the in-memory store, SQLite (a file under tmp_path) and PostgreSQL (a fresh
database per test on the server CIM_TEST_PG_URL names; `scripts/test.sh` always starts one).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.sql_store import SqlEventStore
from shared.adapters.stores import open_event_store
from shared.clock import FixedClock
from tests.factories import compile_swedish

#: The moment FixedClock starts at: a weekday in term, so nothing special happens by accident.
CLOCK_START = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)

PG_URL_ENV = "CIM_TEST_PG_URL"
#: Databases made for tests are named <prefix><hex>; a shared dev server may restrict the names.
PG_DB_PREFIX = os.environ.get("CIM_TEST_PG_DB_PREFIX", "cim_t_")


@pytest.fixture(scope="session", autouse=True)
def _compiled_swedish() -> None:
    """Pages in Swedish need the compiled catalogue (what `make translations` writes)."""
    compile_swedish()


@pytest.fixture
def clock() -> FixedClock:
    """A FixedClock at CLOCK_START; move it with .advance() or .set()."""
    return FixedClock(CLOCK_START)


@pytest.fixture
def memory_store(clock: FixedClock) -> InMemoryEventStore:
    return InMemoryEventStore(clock)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


def _opened_store(url: str, clock: FixedClock) -> Iterator[SqlEventStore]:
    store = open_event_store(url, clock)
    store.create_schema()
    yield store
    store.dispose()


@pytest.fixture
def sqlite_store(sqlite_url: str, clock: FixedClock) -> Iterator[SqlEventStore]:
    yield from _opened_store(sqlite_url, clock)


def pg_admin_url() -> str:
    """The server URL from the environment, or skip the calling test with the reason."""
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(f"{PG_URL_ENV} is not set: run `make test` (scripts/test.sh starts PostgreSQL)")
    return url


def _admin_execute(admin_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql)


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def pg_database() -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty PostgreSQL databases (URLs); each is dropped after the test."""
    admin = pg_admin_url()
    made: list[str] = []

    def make() -> str:
        name = f"{PG_DB_PREFIX}{uuid.uuid4().hex[:16]}"
        _admin_execute(admin, f'CREATE DATABASE "{name}"')
        made.append(name)
        return _with_database(admin, name)

    yield make
    for name in made:
        try:
            _admin_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:  # the server may be down after a chaos test; do not mask its result
            print(f"could not drop test database {name}: {exc}")


@pytest.fixture
def pg_url(pg_database: Callable[[], str]) -> str:
    return pg_database()


@pytest.fixture
def pg_store(pg_url: str, clock: FixedClock) -> Iterator[SqlEventStore]:
    yield from _opened_store(pg_url, clock)


BACKEND_FIXTURES = {"memory": "memory_store", "sqlite": "sqlite_store", "postgres": "pg_store"}


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest):
    """The same test on every EventStore adapter."""
    return request.getfixturevalue(BACKEND_FIXTURES[request.param])


@pytest.fixture
def store_backend(store, request: pytest.FixtureRequest) -> str:
    """The name of the backend `store` is running on ("memory", "sqlite" or "postgres")."""
    return request.node.callspec.params["store"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Property tests (hypothesis) generate hundreds of cases each: mark every one `thorough`, so
    the local lane (`make test-fast`) leaves them to the full run (tests/README.md)."""
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.thorough)
