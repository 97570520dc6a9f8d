"""The outbox: every e-mail the system sends is first a row here, then delivered by the workers.

Both services (and the workers' policies) *enqueue*: `Outbox(engine).enqueue(Message(...))`
inserts one row keyed by the cause of the mail (`event:<event id>`, `event:<id>:offset:14`,
`sign-in:<link id>`): insert-or-ignore, so a retried or duplicated cause enqueues nothing new and
`enqueue` answers False. The table lives in the identity database (CIM_IDENTITY_DB_URL), which
both apps and the workers share and where the addresses live.

The workers *deliver* (`deliver_due`, run by the `cim.mail.deliver_outbox` task every few seconds
and kicked after an enqueue): claim due rows (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite's write
lock, BEGIN IMMEDIATE), mark them `sending` with a lease, render (shared.mail_templates), send over
SMTP with the Message-ID derived from the key, mark `sent`. A 5xx reply to the message (recipient,
sender or content refused: `MailError.permanent`) fails the row at once; any other failed send
counts an attempt and waits out `BACKOFF` (1 min, 5 min, 30 min, 2 h), then the row is `failed`.
A failed row shows on the staff page (/outbox) with its error (the server's answer, addresses
masked) until someone retries it. A worker that dies mid-run leaves its rows
`sending`; when the lease runs out another run claims them again: nothing is lost.

The one window where a mail can still go out twice: between the SMTP server's 250 for DATA and the
commit of `sent`. A crash there sends the row again after the lease, with the same Message-ID
(docs/mail.md measures it; tests/integration/test_outbox_smtp.py shows it).

Personal data: the context (names, summaries, a sign-in URL) is sealed at rest with a key derived
from CIM_IDENTITY_KEY and set to NULL once the mail is sent; `erase_subject` blanks every row of an
erased student or account (address, name, context, error) and cancels what was not yet sent.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from shared.adapters.sql import make_engine, write_lock_for
from shared.clock import Clock, SystemClock
from shared.identity.crypto import SecretBox, derive_key

log = logging.getLogger(__name__)

outbox_metadata = sa.MetaData()

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (PENDING, SENDING, SENT, FAILED, CANCELLED)

#: Waits after the 1st, 2nd, 3rd and 4th failed attempt; the 5th failure marks the row failed.
BACKOFF: tuple[timedelta, ...] = (
    timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
)
#: How long a claimed row stays with its claimer: well above a batch of SMTP timeouts. A claimer
#: that died is replaced after this long.
LEASE = timedelta(minutes=5)
#: Rows one run claims at a time.
BATCH = 20

outbox = sa.Table(
    "outbox",
    outbox_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("locale", sa.String(8), nullable=False),
    sa.Column("to_address", sa.String(320), nullable=True),  # personal data (blanked on erasure)
    sa.Column("to_name", sa.Text, nullable=True),  # personal data
    sa.Column("context", sa.Text, nullable=True),  # sealed JSON; NULL once sent or erased
    sa.Column("subject_id", sa.String(64), nullable=True, index=True),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("not_after", sa.DateTime(timezone=True), nullable=True),
    sa.Column("claim", sa.String(32), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("message_id", sa.String(200), nullable=True),
    sa.Column("department", sa.String(64), nullable=True),
    sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="ck_outbox_status"),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
)


@dataclass(frozen=True)
class Message:
    """One mail to enqueue. `key` names its cause (the same cause, the same row, the same
    Message-ID); `context` is what the template reads (JSON values); `subject_id` is the student
    or account it concerns (erasure finds it by this); `not_after`: a mail not sent by then is
    dropped (a sign-in link that has expired); `department` scopes the staff page."""

    key: str
    template: str
    to_address: str
    to_name: str | None = None
    locale: str = "en"
    context: Mapping[str, Any] = field(default_factory=dict)
    subject_id: str | None = None
    not_after: datetime | None = None
    department: str | None = None


@dataclass(frozen=True)
class Row:
    """A row as the staff page and the tests see it (context opened, or None once scrubbed)."""

    id: int
    key: str
    template: str
    locale: str
    to_address: str | None
    to_name: str | None
    context: dict[str, Any] | None
    subject_id: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    message_id: str | None
    department: str | None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DeliveryRefused(Exception):
    """This row can never be sent as it is (unknown template, bad address): no retry."""


@dataclass(frozen=True)
class Delivery:
    """What one delivery run did (ids and counts only: safe to log)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0


#: Sends one rendered row: (row, message-id key) -> the Message-ID sent. Raises MailError (retry)
#: or DeliveryRefused (no retry).
Sender = Callable[[Row], str]


class Outbox:
    """The outbox table over one engine (the identity database)."""

    def __init__(self, engine: sa.Engine, secret: str, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self._box = SecretBox(derive_key(secret, "outbox-context"))
        self._lock = write_lock_for(str(engine.url.render_as_string(hide_password=False)))

    @classmethod
    def from_url(cls, url: str, secret: str, *, clock: Clock | None = None) -> Outbox:
        return cls(make_engine(url, immediate=True, pool_size=2), secret, clock=clock)

    def create_schema(self) -> None:
        outbox_metadata.create_all(self.engine)

    # -- enqueue -----------------------------------------------------------------------------------
    def enqueue(self, message: Message, conn: sa.Connection | None = None) -> bool:
        """Insert the message unless its key is there already (True: inserted). With `conn`, in
        the caller's transaction (it must be on the identity database)."""
        from shared.mail import _addr_spec
        from shared.mail_templates import known

        if not known(message.template):
            raise ValueError(f"unknown mail template {message.template!r}")
        _addr_spec(message.to_address)  # a bad address is refused now, not at delivery
        now = self.clock.now()
        values = {
            "key": message.key[:200],
            "template": message.template,
            "locale": message.locale if message.locale in ("en", "sv") else "en",
            "to_address": message.to_address,
            "to_name": message.to_name,
            "context": self._box.seal(json.dumps(dict(message.context), default=str)),
            "subject_id": message.subject_id,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "not_after": message.not_after,
            "created_at": now,
            "department": message.department,
        }
        if conn is not None:
            return self._insert(conn, values)
        with self._lock, self.engine.begin() as own:
            return self._insert(own, values)

    def _insert(self, conn: sa.Connection, values: dict[str, Any]) -> bool:
        dialect = conn.dialect.name
        stmt: Any
        if dialect == "postgresql":
            stmt = postgresql.insert(outbox).values(**values).on_conflict_do_nothing(index_elements=["key"])
        elif dialect == "sqlite":
            stmt = sqlite.insert(outbox).values(**values).on_conflict_do_nothing(index_elements=["key"])
        else:  # pragma: no cover - the two databases CIM runs on are above
            raise NotImplementedError(dialect)
        # RETURNING, not rowcount: a driver may not report the rows of an INSERT ... ON CONFLICT.
        return conn.execute(stmt.returning(outbox.c.id)).first() is not None

    # -- deliver -----------------------------------------------------------------------------------
    def claim(self, limit: int = BATCH, *, lease: timedelta = LEASE) -> tuple[str, list[Row]]:
        """Take up to `limit` due rows: pending and due, or `sending` whose claimer's lease ran
        out. They become `sending`, held by a fresh claim token until now + `lease`."""
        now = self.clock.now()
        token = secrets.token_hex(16)
        due = sa.and_(outbox.c.status.in_((PENDING, SENDING)), outbox.c.next_attempt_at <= now)
        query = sa.select(outbox.c.id).where(due).order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit)
        with self._lock, self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = [r.id for r in conn.execute(query)]
            if not ids:
                return token, []
            conn.execute(
                outbox.update().where(outbox.c.id.in_(ids), due)
                .values(status=SENDING, claim=token, next_attempt_at=now + lease)
            )
            rows = conn.execute(sa.select(outbox).where(outbox.c.claim == token)).all()
        return token, [self._row(r) for r in rows]

    def mark_sent(self, row_id: int, token: str, message_id: str) -> bool:
        """`sent`, context scrubbed. False if the claim was lost (another run took the row)."""
        return self._finish(row_id, token, status=SENT, sent_at=self.clock.now(), message_id=message_id,
                            context=None, last_error=None)

    def mark_failed_attempt(self, row: Row, token: str, error: str, *, permanent: bool = False) -> str:
        """Count the attempt; back off, or `failed` after the last one (or at once if permanent)."""
        attempts = row.attempts + 1
        now = self.clock.now()
        if permanent or attempts > len(BACKOFF):
            self._finish(row.id, token, status=FAILED, attempts=attempts, last_error=error[:500],
                         next_attempt_at=now)
            return FAILED
        self._finish(row.id, token, status=PENDING, attempts=attempts, last_error=error[:500],
                     next_attempt_at=now + BACKOFF[attempts - 1])
        return PENDING

    def _finish(self, row_id: int, token: str, **values: Any) -> bool:
        with self._lock, self.engine.begin() as conn:
            result = conn.execute(
                outbox.update()
                .where(outbox.c.id == row_id, outbox.c.claim == token, outbox.c.status == SENDING)
                .values(claim=None, **values)
            )
            return bool(result.rowcount == 1)

    def deliver_due(self, send: Sender, *, limit: int = BATCH, lease: timedelta = LEASE) -> Delivery:
        """One delivery run: claim, send each, record the outcome. Safe to run in parallel."""
        from shared.mail import MailError

        token, rows = self.claim(limit, lease=lease)
        sent = retried = failed = dropped = 0
        now = self.clock.now()
        for row in rows:
            not_after = self._not_after(row.id)
            if not_after is not None and not_after < now:
                self._finish(row.id, token, status=CANCELLED, context=None, last_error="expired before it was sent")
                dropped += 1
                continue
            try:
                mid = send(row)
            except DeliveryRefused as exc:
                self.mark_failed_attempt(row, token, str(exc), permanent=True)
                failed += 1
                continue
            except Exception as exc:  # MailError, or anything unforeseen: count it, back off, go on
                reason = (exc.reason or exc.message) if isinstance(exc, MailError) else type(exc).__name__
                if not isinstance(exc, MailError):
                    log.error("outbox: row %s not sent: %s", row.id, type(exc).__name__)
                permanent = isinstance(exc, MailError) and exc.permanent  # a 5xx for this message
                outcome = self.mark_failed_attempt(row, token, reason, permanent=permanent)
                if outcome == FAILED:
                    failed += 1
                else:
                    retried += 1
                continue
            # THE WINDOW: the server has answered 250; until this commit a crash sends it again.
            if self.mark_sent(row.id, token, mid):
                sent += 1
        if rows:
            log.info("outbox: %s sent, %s retried, %s failed, %s dropped", sent, retried, failed, dropped)
        return Delivery(sent, retried, failed, dropped)

    def _not_after(self, row_id: int) -> datetime | None:
        with self.engine.connect() as conn:
            return _utc(conn.execute(sa.select(outbox.c.not_after).where(outbox.c.id == row_id)).scalar())

    # -- staff and erasure ---------------------------------------------------------------------------
    def retry_now(self, row_id: int) -> bool:
        """A failed row back to pending, due now, with a fresh round of attempts."""
        with self._lock, self.engine.begin() as conn:
            result = conn.execute(
                outbox.update()
                .where(outbox.c.id == row_id, outbox.c.status == FAILED, outbox.c.to_address.is_not(None))
                .values(status=PENDING, attempts=0, next_attempt_at=self.clock.now())
            )
            return bool(result.rowcount == 1)

    def erase_subject(self, subject_ids: Sequence[str]) -> int:
        """See `erase_subject` (the module function)."""
        with self._lock:
            return erase_subject(self.engine, subject_ids)

    def rows(self, *, statuses: Sequence[str] | None = None, departments: Sequence[str] | None = None,
             limit: int = 200) -> list[Row]:
        """Newest first, for the staff page."""
        query = sa.select(outbox).order_by(outbox.c.id.desc()).limit(limit)
        if statuses:
            query = query.where(outbox.c.status.in_(list(statuses)))
        if departments is not None:
            query = query.where(outbox.c.department.in_(list(departments)))
        with self.engine.connect() as conn:
            return [self._row(r) for r in conn.execute(query)]

    def depth(self) -> tuple[dict[str, int], float | None]:
        """Rows per status (every status, 0 when none) and the age in seconds of the oldest row
        not yet sent (pending or sending; None when there is none): the metrics
        `cim_outbox_rows{status}` and `cim_outbox_oldest_pending_seconds`. Reads the status index."""
        counts = dict.fromkeys(STATUSES, 0)
        with self.engine.connect() as conn:
            for status, n in conn.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)):
                counts[status] = int(n)
            oldest = _utc(conn.execute(sa.select(sa.func.min(outbox.c.created_at))
                                       .where(outbox.c.status.in_([PENDING, SENDING]))).scalar())
        age = None if oldest is None else max(0.0, (self.clock.now() - oldest).total_seconds())
        return counts, age

    def get(self, row_id: int) -> Row | None:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(outbox).where(outbox.c.id == row_id)).first()
        return self._row(found) if found is not None else None

    def by_key(self, key: str) -> Row | None:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(outbox).where(outbox.c.key == key)).first()
        return self._row(found) if found is not None else None

    def _row(self, r: Any) -> Row:
        context = json.loads(self._box.open(r.context)) if r.context else None
        created = _utc(r.created_at)
        due = _utc(r.next_attempt_at)
        assert created is not None
        assert due is not None
        return Row(
            id=r.id, key=r.key, template=r.template, locale=r.locale, to_address=r.to_address,
            to_name=r.to_name, context=context, subject_id=r.subject_id, status=r.status,
            attempts=r.attempts, next_attempt_at=due, last_error=r.last_error, created_at=created,
            sent_at=_utc(r.sent_at), message_id=r.message_id, department=r.department,
        )


def erase_subject(engine: sa.Engine, subject_ids: Sequence[str]) -> int:
    """Blank every outbox row about these subjects (a student id and/or account id): address,
    name, context and error go; what was not sent yet is cancelled. Returns the rows touched.
    A database without the outbox table has nothing to erase (0)."""
    ids = [s for s in subject_ids if s]
    if not ids or not sa.inspect(engine).has_table(outbox.name):
        return 0
    with engine.begin() as conn:
        conn.execute(
            outbox.update().where(outbox.c.subject_id.in_(ids), outbox.c.status.in_((PENDING, SENDING, FAILED)))
            .values(status=CANCELLED, claim=None)
        )
        result = conn.execute(
            outbox.update().where(outbox.c.subject_id.in_(ids))
            .values(to_address=None, to_name=None, context=None, last_error=None)
        )
        return int(result.rowcount)


def smtp_sender(mailer: Any) -> Sender:
    """A Sender over a shared.mail.Mailer: render the row's template, build with the key's
    Message-ID, send. Unknown template or a refused address: DeliveryRefused (no retry)."""
    import jinja2

    from shared.mail import Mail
    from shared.mail_templates import UnknownTemplate, render

    def send(row: Row) -> str:
        if row.to_address is None or row.context is None:
            raise DeliveryRefused("nothing to send: the recipient was erased")
        try:
            rendered = render(row.template, row.locale, row.context)
            mail = Mail(row.to_address, row.to_name, rendered.subject, rendered.text, rendered.html, row.key,
                        row.locale, attachments=rendered.attachments)
            message = mailer.build(mail)
        except (UnknownTemplate, ValueError, jinja2.TemplateError) as exc:
            raise DeliveryRefused(f"{type(exc).__name__}: {exc}") from None
        mailer.send(message)
        return str(message["Message-ID"])

    return send
