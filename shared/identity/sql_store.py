"""The identity store on SQLAlchemy Core: SQLite or PostgreSQL by URL, tables in their own MetaData."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shared.adapters.sql import compact_sqlite, make_engine, write_lock_for
from shared.identity.errors import IdentityConflict
from shared.identity.models import Account, ApiTokenRecord, ExternalIdentity, Role, RoleGrant, TotpState
from shared.identity.store import normalize_email

identity_metadata = sa.MetaData()

_ROLES = ", ".join(f"'{r.value}'" for r in Role)
#: The grants table keys on (account, role, department); the administrator's "no department" is ''.
NO_DEPARTMENT = ""


def _of_account(name: str, *columns: Any) -> sa.Table:
    """A table of rows belonging to an account, keyed by it (and by any primary-key `columns`)."""
    return sa.Table(
        name,
        identity_metadata,
        sa.Column("account_id", sa.String(36), sa.ForeignKey("identity_accounts.id"), primary_key=True),
        *columns,
    )


accounts = sa.Table(
    "identity_accounts",
    identity_metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),  # personal data
    sa.Column("email", sa.String(320), nullable=True, unique=True),  # personal data, normalized
    sa.Column("student_id", sa.String(36), nullable=True, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
)

external_identities = sa.Table(
    "identity_external_identities",
    identity_metadata,
    sa.Column("issuer", sa.String(500), primary_key=True),
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("account_id", sa.String(36), sa.ForeignKey("identity_accounts.id"), nullable=False, index=True),
    sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
)

role_grants = _of_account(
    "identity_role_grants",
    sa.Column("role", sa.String(20), primary_key=True),
    sa.Column("department", sa.String(64), primary_key=True),
    sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(f"role IN ({_ROLES})", name="ck_identity_role_known"),
    sa.CheckConstraint(
        "(role = 'administrator' AND department = '') OR (role <> 'administrator' AND department <> '')",
        name="ck_identity_role_department",
    ),
)

password_credentials = _of_account(
    "identity_password_credentials",
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

totp_credentials = _of_account(
    "identity_totp_credentials",
    sa.Column("secret_encrypted", sa.Text, nullable=False),
    sa.Column("last_used_step", sa.BigInteger, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

used_tokens = sa.Table(
    "identity_used_tokens",
    identity_metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

#: Per account, the issue stamp of the newest e-mail link used: links issued at or before it are
#: dead (issue 18: a newer link used kills the older unused ones). Ids only, no personal data.
link_floors = _of_account(
    "identity_link_floors",
    sa.Column("issued_up_to", sa.BigInteger, nullable=False),
)

#: Per account, the language chosen for the interface and the e-mail (models.LANGUAGES). Its own
#: table, not a column: `create_schema` adds it to an existing database.
account_locales = _of_account(
    "identity_account_locales",
    sa.Column("locale", sa.String(8), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

api_tokens = sa.Table(
    "identity_api_tokens",
    identity_metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.Text, nullable=False),  # space separated
    sa.Column("account_id", sa.String(36), sa.ForeignKey("identity_accounts.id"), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every stored value was UTC.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _account(row: sa.Row) -> Account:
    created = _utc(row.created_at)
    assert created is not None
    return Account(
        id=row.id,
        display_name=row.display_name,
        email=row.email,
        created_at=created,
        disabled=bool(row.disabled),
        student_id=row.student_id,
    )


# Built once: every API request looks its token up, and a statement object made per call costs
# its construction and SQLAlchemy's cache-key walk each time (a reused one memoises both).
_TOKEN_BY_HASH = sa.select(api_tokens).where(api_tokens.c.token_hash == sa.bindparam("value"))
_TOKEN_BY_ID = sa.select(api_tokens).where(api_tokens.c.id == sa.bindparam("value"))


def _token(row: sa.Row) -> ApiTokenRecord:
    created = _utc(row.created_at)
    assert created is not None
    return ApiTokenRecord(
        id=row.id,
        name=row.name,
        token_hash=row.token_hash,
        scopes=frozenset(row.scopes.split()),
        account_id=row.account_id,
        created_at=created,
        last_used_at=_utc(row.last_used_at),
        revoked_at=_utc(row.revoked_at),
    )


class SqlIdentityStore:
    """IdentityStore on SQL. Build with a URL (an engine is made) or an existing engine."""

    def __init__(self, url: str | None = None, *, engine: sa.Engine | None = None) -> None:
        if engine is None:
            if url is None:
                raise ValueError("SqlIdentityStore needs a url or an engine")
            engine = make_engine(url, pool_size=5)
        self._engine = engine
        # This process's writers queue here instead of colliding in SQLite's busy handler, which
        # sleeps up to 100 ms a try: 8 threads marking sign-in links used saw a p99 of 55–80 ms
        # and single waits of 0.6–0.9 s without it (PostgreSQL: a no-op).
        self._write_lock = write_lock_for(engine.url.render_as_string(hide_password=False))
        if engine.dialect.name == "sqlite":
            # Erasure blanks names and e-mails: zero the freed bytes on disk instead of leaving them
            # in free space (the event store's key vault does the same).
            @sa.event.listens_for(engine, "connect")
            def _secure_delete(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute("PRAGMA secure_delete=ON")

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def create_schema(self) -> None:
        identity_metadata.create_all(self._engine)

    def compact(self, *, vacuum: bool = False) -> None:
        """SQLite: the WAL checkpointed into the file and truncated (with `vacuum`, the file
        rebuilt first), under this process's write lock; PostgreSQL: nothing to do."""
        with self._write_lock:
            compact_sqlite(self._engine, vacuum=vacuum)

    def dispose(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        with self._write_lock, self._engine.begin() as conn:
            yield conn

    def _one_account(self, where: sa.ColumnElement[bool]) -> Account | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(where)).first()
        return _account(row) if row is not None else None

    # accounts
    def add_account(self, account: Account) -> None:
        try:
            with self._tx() as conn:
                conn.execute(
                    accounts.insert().values(
                        id=account.id,
                        display_name=account.display_name,
                        email=normalize_email(account.email) if account.email else None,
                        student_id=account.student_id,
                        created_at=account.created_at,
                        disabled=account.disabled,
                    )
                )
        except IntegrityError as exc:
            raise IdentityConflict("e-mail, student id or account id already taken") from exc

    def get_account(self, account_id: str) -> Account | None:
        return self._one_account(accounts.c.id == account_id)

    def find_account_by_email(self, email: str) -> Account | None:
        return self._one_account(accounts.c.email == normalize_email(email))

    def list_accounts(self) -> list[Account]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(accounts).order_by(accounts.c.created_at, accounts.c.id)).all()
        return [_account(row) for row in rows]

    def find_account_by_student(self, student_id: str) -> Account | None:
        return self._one_account(accounts.c.student_id == student_id)

    def attach_student(self, account_id: str, student_id: str) -> bool:
        # One conditional UPDATE: only an account without a student gets one; the unique
        # constraint refuses a student who already has an account.
        try:
            with self._tx() as conn:
                result = conn.execute(
                    accounts.update()
                    .where(accounts.c.id == account_id, accounts.c.student_id.is_(None))
                    .values(student_id=student_id)
                )
                return result.rowcount == 1
        except IntegrityError as exc:
            raise IdentityConflict("student already has an account", field="student_id") from exc

    def set_disabled(self, account_id: str, disabled: bool) -> bool:
        with self._tx() as conn:
            result = conn.execute(accounts.update().where(accounts.c.id == account_id).values(disabled=disabled))
            return result.rowcount == 1

    def erase_personal_data(self, account_id: str, at: datetime) -> bool:
        with self._tx() as conn:
            result = conn.execute(
                accounts.update()
                .where(accounts.c.id == account_id)
                .values(display_name="", email=None, disabled=True, erased_at=at)
            )
            if result.rowcount != 1:
                return False
            for table in (password_credentials, totp_credentials, external_identities, account_locales):
                conn.execute(table.delete().where(table.c.account_id == account_id))
            return True

    # external identities
    def link_identity(self, account_id: str, identity: ExternalIdentity, at: datetime) -> None:
        try:
            with self._tx() as conn:
                conn.execute(
                    external_identities.insert().values(
                        issuer=identity.issuer, subject=identity.subject, account_id=account_id, linked_at=at
                    )
                )
        except IntegrityError as exc:
            owner = self.find_account_by_identity(identity)
            if owner is None or owner.id != account_id:
                raise IdentityConflict("identity already linked to another account") from exc

    def find_account_by_identity(self, identity: ExternalIdentity) -> Account | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(accounts)
                .join(external_identities, external_identities.c.account_id == accounts.c.id)
                .where(
                    external_identities.c.issuer == identity.issuer,
                    external_identities.c.subject == identity.subject,
                )
            ).first()
        return _account(row) if row is not None else None

    def identities_of(self, account_id: str) -> list[ExternalIdentity]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(external_identities.c.issuer, external_identities.c.subject)
                .where(external_identities.c.account_id == account_id)
                .order_by(external_identities.c.issuer, external_identities.c.subject)
            ).all()
        return [ExternalIdentity(r.issuer, r.subject) for r in rows]

    # role grants
    def grant_role(self, account_id: str, grant: RoleGrant, at: datetime) -> None:
        try:
            with self._tx() as conn:
                conn.execute(
                    role_grants.insert().values(
                        account_id=account_id,
                        role=grant.role.value,
                        department=grant.department or NO_DEPARTMENT,
                        granted_at=at,
                    )
                )
        except IntegrityError:
            if grant not in self.grants_of(account_id):
                raise

    def revoke_role(self, account_id: str, grant: RoleGrant) -> bool:
        with self._tx() as conn:
            result = conn.execute(
                role_grants.delete().where(
                    role_grants.c.account_id == account_id,
                    role_grants.c.role == grant.role.value,
                    role_grants.c.department == (grant.department or NO_DEPARTMENT),
                )
            )
            return result.rowcount == 1

    def grants_of(self, account_id: str) -> frozenset[RoleGrant]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(role_grants.c.role, role_grants.c.department).where(role_grants.c.account_id == account_id)
            ).all()
        return frozenset(RoleGrant(Role(r.role), r.department or None) for r in rows)

    def any_administrator(self) -> bool:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(role_grants.c.account_id).where(role_grants.c.role == Role.ADMINISTRATOR.value).limit(1)
            ).first()
        return row is not None

    def all_grants(self) -> dict[str, frozenset[RoleGrant]]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(role_grants.c.account_id, role_grants.c.role, role_grants.c.department)
            ).all()
        found: dict[str, set[RoleGrant]] = {}
        for r in rows:
            found.setdefault(r.account_id, set()).add(RoleGrant(Role(r.role), r.department or None))
        return {a: frozenset(gs) for a, gs in found.items()}

    def accounts_with_role(self, role: Role, department: str | None) -> list[Account]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(accounts)
                .join(role_grants, role_grants.c.account_id == accounts.c.id)
                .where(
                    role_grants.c.role == Role(role).value,
                    role_grants.c.department == (department or NO_DEPARTMENT),
                )
                .order_by(accounts.c.id)
            ).all()
        return [_account(row) for row in rows]

    # staff credentials
    def _upsert(self, table: sa.Table, account_id: str, values: dict[str, object]) -> None:
        with self._tx() as conn:
            updated = conn.execute(table.update().where(table.c.account_id == account_id).values(**values))
            if updated.rowcount == 0:
                conn.execute(table.insert().values(account_id=account_id, **values))

    def set_locale(self, account_id: str, locale: str, at: datetime) -> bool:
        with self._tx() as conn:
            exists = conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id)).first()
            current = conn.execute(
                sa.select(account_locales.c.locale).where(account_locales.c.account_id == account_id)
            ).scalar_one_or_none()
            if exists is None or current == locale:
                return False
            values = {"locale": locale, "updated_at": at}
            if current is None:
                conn.execute(account_locales.insert().values(account_id=account_id, **values))
            else:
                conn.execute(account_locales.update().where(account_locales.c.account_id == account_id)
                             .values(**values))
            return True

    def locale_of(self, account_id: str) -> str | None:
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(account_locales.c.locale).where(account_locales.c.account_id == account_id)
            ).scalar_one_or_none()
        return value

    def set_password_hash(self, account_id: str, password_hash: str, at: datetime) -> None:
        self._upsert(password_credentials, account_id, {"password_hash": password_hash, "updated_at": at})

    def password_hash(self, account_id: str) -> str | None:
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(password_credentials.c.password_hash).where(password_credentials.c.account_id == account_id)
            ).scalar_one_or_none()
        return value

    def set_totp_secret(self, account_id: str, secret_encrypted: str, at: datetime) -> None:
        self._upsert(
            totp_credentials,
            account_id,
            {"secret_encrypted": secret_encrypted, "last_used_step": None, "updated_at": at},
        )

    def totp_state(self, account_id: str) -> TotpState | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(totp_credentials.c.secret_encrypted, totp_credentials.c.last_used_step).where(
                    totp_credentials.c.account_id == account_id
                )
            ).first()
        return TotpState(row.secret_encrypted, row.last_used_step) if row is not None else None

    def advance_totp_step(self, account_id: str, step: int) -> bool:
        # One conditional UPDATE: two concurrent sign-ins with the same code cannot both win.
        with self._tx() as conn:
            result = conn.execute(
                totp_credentials.update()
                .where(
                    totp_credentials.c.account_id == account_id,
                    sa.or_(totp_credentials.c.last_used_step.is_(None), totp_credentials.c.last_used_step < step),
                )
                .values(last_used_step=step)
            )
            return result.rowcount == 1

    # single-use tokens
    def mark_used(self, token_hash: str, kind: str, expires_at: datetime, at: datetime) -> bool:
        try:
            with self._tx() as conn:
                conn.execute(
                    used_tokens.insert().values(token_hash=token_hash, kind=kind, used_at=at, expires_at=expires_at)
                )
        except IntegrityError:
            return False
        return True

    def advance_link_floor(self, account_id: str, issued: int) -> bool:
        # A conditional UPDATE, else the first INSERT: of two concurrent redemptions one wins (a
        # racing INSERT on PostgreSQL fails the key and is refused; the user asks for a new link).
        try:
            with self._tx() as conn:
                moved = conn.execute(
                    link_floors.update()
                    .where(link_floors.c.account_id == account_id, link_floors.c.issued_up_to < issued)
                    .values(issued_up_to=issued)
                )
                if moved.rowcount == 1:
                    return True
                known = sa.select(link_floors.c.account_id).where(link_floors.c.account_id == account_id)
                if conn.execute(known).first() is not None:
                    return False
                conn.execute(link_floors.insert().values(account_id=account_id, issued_up_to=issued))
        except IntegrityError:
            return False
        return True

    def is_used(self, token_hash: str) -> bool:
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(used_tokens.c.token_hash).where(used_tokens.c.token_hash == token_hash)
            ).first()
        return found is not None

    def purge_used(self, expired_before: datetime) -> int:
        with self._tx() as conn:
            return conn.execute(used_tokens.delete().where(used_tokens.c.expires_at < expired_before)).rowcount

    # API tokens
    def add_api_token(self, record: ApiTokenRecord) -> None:
        try:
            with self._tx() as conn:
                conn.execute(
                    api_tokens.insert().values(
                        id=record.id,
                        name=record.name,
                        token_hash=record.token_hash,
                        scopes=" ".join(sorted(record.scopes)),
                        account_id=record.account_id,
                        created_at=record.created_at,
                        last_used_at=record.last_used_at,
                        revoked_at=record.revoked_at,
                    )
                )
        except IntegrityError as exc:
            raise IdentityConflict("token id or hash taken") from exc

    def _one_token(self, query: sa.Select[Any], value: str) -> ApiTokenRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(query, {"value": value}).first()
        return _token(row) if row is not None else None

    def api_token_by_hash(self, token_hash: str) -> ApiTokenRecord | None:
        return self._one_token(_TOKEN_BY_HASH, token_hash)

    def get_api_token(self, token_id: str) -> ApiTokenRecord | None:
        return self._one_token(_TOKEN_BY_ID, token_id)

    def api_tokens(self) -> list[ApiTokenRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)).all()
        return [_token(r) for r in rows]

    def touch_api_token(self, token_id: str, at: datetime) -> None:
        with self._tx() as conn:
            conn.execute(api_tokens.update().where(api_tokens.c.id == token_id).values(last_used_at=at))

    def revoke_api_token(self, token_id: str, at: datetime) -> bool:
        with self._tx() as conn:
            result = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            return result.rowcount == 1

    def delete_revoked_api_tokens(self, token_ids: Sequence[str]) -> list[str]:
        if not token_ids:
            return []
        with self._tx() as conn:
            revoked = api_tokens.c.id.in_(list(token_ids)) & api_tokens.c.revoked_at.is_not(None)
            gone = conn.execute(sa.select(api_tokens.c.id).where(revoked)).scalars().all()
            conn.execute(api_tokens.delete().where(api_tokens.c.id.in_(gone)))
        return sorted(gone, key=list(token_ids).index)


def preferred_locale(engine: sa.Engine, subject_id: str | None) -> str | None:
    """The language stored for the person behind `subject_id` — an account id, or the student id
    of a student's account — or None: no such account, erased, never chosen, or an identity
    database without the table yet. What every e-mail's language is looked up by."""
    if not subject_id:
        return None
    query = (
        sa.select(account_locales.c.locale)
        .join(accounts, accounts.c.id == account_locales.c.account_id)
        .where(sa.or_(accounts.c.id == subject_id, accounts.c.student_id == subject_id),
               accounts.c.erased_at.is_(None))
        .limit(1)
    )
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()
    except sa.exc.DBAPIError:  # the table is not there yet (created by the next create_schema)
        return None
