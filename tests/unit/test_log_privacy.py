"""A row the database refuses never puts its values into the logs (bar G3; the key is in tests/README.md).

A read model holds personal data in the clear (names, e-mails), and a refused row is described
by the database: SQLAlchemy's message quotes the statement's parameters, PostgreSQL's DETAIL
quotes the key or the whole failing row. The engines hide parameters; the JSON log formatter
withholds DETAIL lines and parameter lists from messages and tracebacks."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared.adapters.sql import make_engine
from shared.logs import JsonFormatter

CANARY = "canary-7f3a@example.org"

metadata = sa.MetaData()
people = sa.Table(
    "log_privacy_people",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(100), nullable=False, unique=True),
    sa.Column("age", sa.Integer, sa.CheckConstraint("age >= 0", name="ck_log_privacy_age")),
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'p.db'}"
    engine = make_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    yield engine
    metadata.drop_all(engine)
    engine.dispose()


def logged(exc: BaseException, message: str = "projection failed") -> str:
    logger = logging.getLogger("tests.log_privacy")
    try:
        raise exc
    except BaseException:
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, message + ": %s", (exc,),
                                   exc_info=sys.exc_info())
    return JsonFormatter().format(record)


def refusal(engine: sa.Engine, row: dict[str, object]) -> sa.exc.DBAPIError:
    with pytest.raises(sa.exc.DBAPIError) as refused, engine.begin() as conn:
        conn.execute(people.insert(), row)
    return refused.value


def test_a_duplicate_key_is_logged_without_its_value(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(people.insert(), {"id": 1, "email": CANARY, "age": 30})
    refused = refusal(engine, {"id": 2, "email": CANARY, "age": 31})
    assert "hide_parameters" in str(refused)  # the engine left the statement's values out
    line = logged(refused)
    entry = json.loads(line)
    assert CANARY not in line
    assert "log_privacy_people" in entry["exception"]  # still says what failed, and where
    assert "IntegrityError" in entry["exception"]


def test_a_failing_row_is_logged_without_its_values(engine: sa.Engine) -> None:
    line = logged(refusal(engine, {"id": 3, "email": CANARY, "age": -1}))
    assert CANARY not in line
    assert "ck_log_privacy_age" in line or "CHECK constraint failed" in line


def test_values_quoted_by_other_code_are_withheld_too() -> None:
    text = f'duplicate key\nDETAIL:  Key (email)=({CANARY}) already exists.\n[parameters: ("{CANARY}",)]'
    line = logged(RuntimeError(text), "wrapped")
    assert CANARY not in line
    assert line.count("withheld") >= 2
