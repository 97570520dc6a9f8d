"""What every assessment read model shares: one MetaData, JSON columns, ids taken from events."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa

from shared.events import RecordedEvent
from shared.projection import queue

metadata = sa.MetaData()

STUDENT_STREAM_PREFIX = "student-"


def student_table(name: str, *keys: str, columns: tuple[sa.Column[Any] | sa.Index, ...]) -> sa.Table:
    """A read-model table keyed by the id columns `keys`, each row of one student (`student_id`,
    indexed, so an erasure finds the rows to scrub), then `columns`."""
    return sa.Table(
        name,
        metadata,
        *(sa.Column(key, sa.String(36), primary_key=True) for key in keys),
        sa.Column("student_id", sa.String(36), nullable=False, index=True),
        *columns,
    )


def student_id_of(event: RecordedEvent) -> str:
    """Intake streams are named `student-<id>`; the id is the stream's subject."""
    return event.stream_id.removeprefix(STUDENT_STREAM_PREFIX)


def dumps(value: Any) -> str:
    """JSON with sorted keys, so a rebuilt row is byte-identical to the live one (orjson: the
    same text as json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) for the
    strings, lists and objects stored here, at a tenth of the cost)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def upsert(conn: sa.Connection, table: sa.Table, key: str, row: dict[str, Any]) -> None:
    """Insert the row, or update the one with this key: one statement (INSERT ... ON CONFLICT),
    queued (keyed by the row's key value, see `shared.projection.queue`) so that the upserts of
    a batch into the same table run as one executemany inside the runner. The projection's other
    keyed writes must use the same key (e.g. the student id for `students`)."""
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - the portable two-step form
        values = {k: v for k, v in row.items() if k != key}
        if conn.execute(table.update().where(table.c[key] == row[key]).values(**values)).rowcount == 0:
            conn.execute(table.insert().values(**row))
        return
    # The row's own column order (each handler builds its rows alike): no sort per row.
    queue(conn, _upsert_statement(dialect, table, key, tuple(row)), row, key=row[key])


@lru_cache(maxsize=64)
def _upsert_statement(dialect: str, table: sa.Table, key: str, columns: tuple[str, ...]) -> Any:
    """Built once per shape: building statements costs more than running them (profiled)."""
    from sqlalchemy.dialects import postgresql, sqlite

    statement: Any = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    updates = {name: statement.excluded[name] for name in columns if name != key}
    return statement.on_conflict_do_update(index_elements=[table.c[key]], set_=updates)
