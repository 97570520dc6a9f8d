"""Personal iCalendar feeds: a secret URL per student (`/calendar/<token>.ics`) with their deadline
and any booked presentation, for their own calendar program.

The token is a bearer secret (32 random bytes, URL-safe); only its SHA-256 is stored (table
`calendar_feeds` in the assessment database, beside the read models but not one of them: a
rebuild leaves it alone). Making a new link revokes the previous one; revoking leaves none. A
revoked, unknown or malformed token answers 404 like any unknown page. The feed holds dates, the
occasion's kind and place: no name, no e-mail.

Erasure: when the student's erasure is projected (`StudentErased`, projections/students.py) their
rows are deleted (`erase_student`): the link stops working at once, and no token hash or student
id is left behind for them.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from icalendar import Calendar, Event

metadata = sa.MetaData()

calendar_feeds = sa.Table(
    "calendar_feeds",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("student_id", sa.String(36), nullable=False, index=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("revoked_at", sa.String(40), nullable=True),
)

#: What a token looks like in a URL (base64url of 32 bytes).
TOKEN_LENGTH = 43


def create_schema(engine: sa.Engine) -> None:
    metadata.create_all(engine, checkfirst=True)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_link(engine: sa.Engine, student_id: str, now: datetime) -> str:
    """A new secret token for the student; any earlier one stops working. Returns the token
    (shown once; only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        _revoke(conn, student_id, now)
        conn.execute(calendar_feeds.insert().values(
            token_hash=_hash(token), student_id=student_id, created_at=now.isoformat(), revoked_at=None,
        ))
    return token


def _revoke(conn: sa.Connection, student_id: str, now: datetime) -> int:
    return conn.execute(
        calendar_feeds.update()
        .where(calendar_feeds.c.student_id == student_id, calendar_feeds.c.revoked_at.is_(None))
        .values(revoked_at=now.isoformat())
    ).rowcount


def revoke(engine: sa.Engine, student_id: str, now: datetime) -> int:
    """Revoke the student's link; how many were revoked (0 or 1)."""
    with engine.begin() as conn:
        return _revoke(conn, student_id, now)


def erase_student(conn: sa.Connection, student_id: str) -> int:
    """Delete every link of the student, live or revoked (in the caller's transaction): their
    erasure. A database without the table yet (a worker that never served the pages) has none."""
    if not sa.inspect(conn).has_table(calendar_feeds.name):
        return 0
    return int(conn.execute(calendar_feeds.delete().where(calendar_feeds.c.student_id == student_id)).rowcount)


def has_link(engine: sa.Engine, student_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(calendar_feeds.c.token_hash)
            .where(calendar_feeds.c.student_id == student_id, calendar_feeds.c.revoked_at.is_(None))
        ).first() is not None


def student_of(engine: sa.Engine, token: str) -> str | None:
    """The student whose live link `token` is, or None (revoked, unknown, malformed)."""
    if len(token) != TOKEN_LENGTH or not all(c.isalnum() or c in "-_" for c in token):
        return None
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(calendar_feeds.c.student_id)
            .where(calendar_feeds.c.token_hash == _hash(token), calendar_feeds.c.revoked_at.is_(None))
        ).first()
    return None if row is None else str(row.student_id)


def feed(student_id: str, deadline: date | None, deregistered: bool, presentation: dict[str, Any] | None,
         now: datetime, *, titles: dict[str, str]) -> bytes:
    """The iCalendar document: the deadline as an all-day event, and the booked presentation.
    `titles`: the event summaries in the reader's language ("deadline", "presentation")."""
    cal = Calendar()
    cal.add("prodid", "-//Lund University//CIM//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", titles["calendar"])
    if deadline is not None and not deregistered:
        event = Event()
        event.add("uid", f"deadline-{student_id}@cim")
        event.add("dtstamp", now)
        event.add("summary", titles["deadline"])
        event.add("dtstart", deadline)
        event.add("dtend", deadline + timedelta(days=1))
        event.add("transp", "TRANSPARENT")
        cal.add_component(event)
    if presentation is not None:
        event = Event()
        event.add("uid", f"presentation-{presentation['occasion_id']}-{student_id}@cim")
        event.add("dtstamp", now)
        event.add("summary", titles["presentation"])
        event.add("dtstart", datetime.fromisoformat(presentation["starts_at"]))
        event.add("dtend", datetime.fromisoformat(presentation["ends_at"]))
        event.add("location", presentation["place"])
        cal.add_component(event)
    return bytes(cal.to_ical())
