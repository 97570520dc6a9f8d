"""The identity store contract, run on the in-memory fake, SQLite and (marked) PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shared.clock import FixedClock
from shared.identity.errors import IdentityConflict
from shared.identity.models import Account, ApiTokenRecord, ExternalIdentity, Role, RoleGrant
from shared.identity.sql_store import SqlIdentityStore
from shared.identity.store import IdentityStore, InMemoryIdentityStore
from tests.factories import at_once


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def identity_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IdentityStore]:
    if request.param == "memory":
        yield InMemoryIdentityStore()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'identity.db'}"
    else:
        make_db: Callable[[], str] = request.getfixturevalue("pg_database")
        url = make_db()
    store = SqlIdentityStore(url)
    store.create_schema()
    yield store
    store.dispose()


def _account(clock: FixedClock, email: str | None = "Ada@Example.org", student_id: str | None = None) -> Account:
    return Account(str(uuid.uuid4()), "Alva Provnamn", email, clock.now(), student_id=student_id)


def test_account_round_trips_with_normalized_email(identity_store: IdentityStore, clock: FixedClock) -> None:
    account = _account(clock)
    identity_store.add_account(account)
    stored = identity_store.get_account(account.id)
    assert stored is not None
    assert stored.email == "ada@example.org"
    assert stored.display_name == "Alva Provnamn"
    assert stored.created_at == clock.now()
    assert stored.created_at.tzinfo is not None
    assert identity_store.find_account_by_email("  ADA@example.ORG ") == stored
    assert identity_store.get_account(str(uuid.uuid4())) is None


def test_email_and_student_id_are_unique(identity_store: IdentityStore, clock: FixedClock) -> None:
    student = str(uuid.uuid4())
    identity_store.add_account(_account(clock, student_id=student))
    with pytest.raises(IdentityConflict):
        identity_store.add_account(_account(clock, email="ada@example.org"))
    with pytest.raises(IdentityConflict):
        identity_store.add_account(_account(clock, email="other@example.org", student_id=student))
    identity_store.add_account(_account(clock, email=None))
    identity_store.add_account(_account(clock, email=None))  # many accounts may lack an e-mail
    found = identity_store.find_account_by_student(student)
    assert found is not None
    assert found.student_id == student


def test_external_identity_is_keyed_on_issuer_and_subject(identity_store: IdentityStore, clock: FixedClock) -> None:
    a, b = _account(clock, "a@example.org"), _account(clock, "b@example.org")
    identity_store.add_account(a)
    identity_store.add_account(b)
    identity_store.link_identity(a.id, ExternalIdentity("https://idp.one", "123"), clock.now())
    identity_store.link_identity(a.id, ExternalIdentity("https://idp.one", "123"), clock.now())  # idempotent
    identity_store.link_identity(b.id, ExternalIdentity("https://idp.two", "123"), clock.now())
    with pytest.raises(IdentityConflict):
        identity_store.link_identity(b.id, ExternalIdentity("https://idp.one", "123"), clock.now())
    found_a = identity_store.find_account_by_identity(ExternalIdentity("https://idp.one", "123"))
    found_b = identity_store.find_account_by_identity(ExternalIdentity("https://idp.two", "123"))
    assert found_a is not None
    assert found_a.id == a.id
    assert found_b is not None
    assert found_b.id == b.id
    assert identity_store.find_account_by_identity(ExternalIdentity("https://idp.one", "124")) is None
    assert identity_store.identities_of(a.id) == [ExternalIdentity("https://idp.one", "123")]


def test_one_person_holds_different_roles_in_different_departments(
    identity_store: IdentityStore, clock: FixedClock
) -> None:
    account = _account(clock)
    identity_store.add_account(account)
    assert not identity_store.any_administrator()
    grants = {
        RoleGrant(Role.ASSESSOR, "FYS"),
        RoleGrant(Role.COORDINATOR, "KEM"),
        RoleGrant(Role.ADMINISTRATOR, None),
    }
    for grant in grants:
        identity_store.grant_role(account.id, grant, clock.now())
    identity_store.grant_role(account.id, RoleGrant(Role.ASSESSOR, "FYS"), clock.now())  # idempotent
    assert identity_store.grants_of(account.id) == frozenset(grants)
    assert identity_store.any_administrator()
    assert identity_store.revoke_role(account.id, RoleGrant(Role.ADMINISTRATOR, None))
    assert not identity_store.revoke_role(account.id, RoleGrant(Role.ADMINISTRATOR, None))
    assert not identity_store.any_administrator()
    assert identity_store.grants_of(account.id) == frozenset(grants - {RoleGrant(Role.ADMINISTRATOR, None)})


def test_totp_step_only_moves_forward(identity_store: IdentityStore, clock: FixedClock) -> None:
    account = _account(clock)
    identity_store.add_account(account)
    assert not identity_store.advance_totp_step(account.id, 10)  # no secret yet
    identity_store.set_totp_secret(account.id, "sealed", clock.now())
    assert identity_store.advance_totp_step(account.id, 10)
    assert not identity_store.advance_totp_step(account.id, 10)
    assert not identity_store.advance_totp_step(account.id, 9)
    assert identity_store.advance_totp_step(account.id, 11)
    state = identity_store.totp_state(account.id)
    assert state is not None
    assert state.last_used_step == 11
    identity_store.set_totp_secret(account.id, "sealed-again", clock.now())
    state = identity_store.totp_state(account.id)
    assert state is not None
    assert (state.secret_encrypted, state.last_used_step) == ("sealed-again", None)


def test_concurrent_uses_of_one_totp_step_let_exactly_one_win(identity_store: IdentityStore, clock: FixedClock) -> None:
    account = _account(clock)
    identity_store.add_account(account)
    identity_store.set_totp_secret(account.id, "sealed", clock.now())
    results = at_once(8, lambda: identity_store.advance_totp_step(account.id, 42))
    assert sorted(results) == [False] * 7 + [True]


def test_password_hash_is_replaced_not_added(identity_store: IdentityStore, clock: FixedClock) -> None:
    account = _account(clock)
    identity_store.add_account(account)
    assert identity_store.password_hash(account.id) is None
    identity_store.set_password_hash(account.id, "$argon2id$one", clock.now())
    identity_store.set_password_hash(account.id, "$argon2id$two", clock.now())
    assert identity_store.password_hash(account.id) == "$argon2id$two"


def test_a_token_hash_is_used_once_and_purged_after_expiry(identity_store: IdentityStore, clock: FixedClock) -> None:
    expires = clock.now() + timedelta(minutes=15)
    assert identity_store.mark_used("a" * 64, "email-link", expires, clock.now())
    assert not identity_store.mark_used("a" * 64, "email-link", expires, clock.now())
    assert identity_store.mark_used("b" * 64, "oidc-nonce", expires + timedelta(days=1), clock.now())
    assert identity_store.purge_used(expires + timedelta(seconds=1)) == 1
    assert not identity_store.mark_used("b" * 64, "oidc-nonce", expires, clock.now())


def test_disable_and_erase(identity_store: IdentityStore, clock: FixedClock) -> None:
    account = _account(clock)
    identity_store.add_account(account)
    identity_store.set_password_hash(account.id, "$argon2id$x", clock.now())
    identity_store.set_totp_secret(account.id, "sealed", clock.now())
    identity_store.link_identity(account.id, ExternalIdentity("https://idp", "s"), clock.now())
    assert identity_store.set_disabled(account.id, True)
    disabled = identity_store.get_account(account.id)
    assert disabled is not None
    assert disabled.disabled
    assert not identity_store.set_disabled(str(uuid.uuid4()), True)
    assert identity_store.erase_personal_data(account.id, clock.now())
    erased = identity_store.get_account(account.id)
    assert erased is not None
    assert (erased.display_name, erased.email, erased.disabled) == ("", None, True)
    assert identity_store.password_hash(account.id) is None
    assert identity_store.totp_state(account.id) is None
    assert identity_store.identities_of(account.id) == []
    assert identity_store.find_account_by_email("ada@example.org") is None


def test_api_token_records(identity_store: IdentityStore, clock: FixedClock) -> None:
    record = ApiTokenRecord(
        id=str(uuid.uuid4()),
        name="intake feed reader",
        token_hash="c" * 64,
        scopes=frozenset({"intake:feed:read", "intake:write"}),
        account_id=None,
        created_at=clock.now(),
    )
    identity_store.add_api_token(record)
    assert identity_store.api_token_by_hash("c" * 64) == record
    assert identity_store.get_api_token(record.id) == record
    clock.advance(timedelta(minutes=5))
    identity_store.touch_api_token(record.id, clock.now())
    touched = identity_store.get_api_token(record.id)
    assert touched is not None
    assert touched.last_used_at == clock.now()
    assert identity_store.revoke_api_token(record.id, clock.now())
    assert not identity_store.revoke_api_token(record.id, clock.now())
    assert [t.id for t in identity_store.api_tokens()] == [record.id]
    revoked = identity_store.get_api_token(record.id)
    assert revoked is not None
    assert revoked.revoked_at == clock.now()
    with pytest.raises(IdentityConflict):
        identity_store.add_api_token(record)


def test_personal_data_stays_out_of_reprs(clock: FixedClock) -> None:
    account = _account(clock)
    assert "Alva" not in repr(account)
    assert "example" not in repr(account)


def test_only_revoked_api_tokens_are_deleted(identity_store: IdentityStore, clock: FixedClock) -> None:
    def token(n: int) -> ApiTokenRecord:
        return ApiTokenRecord(id=str(uuid.uuid4()), name=f"t{n}", token_hash=f"{n}" * 64,
                              scopes=frozenset({"intake:read"}), account_id=None, created_at=clock.now())

    live, revoked = token(1), token(2)
    identity_store.add_api_token(live)
    identity_store.add_api_token(revoked)
    identity_store.revoke_api_token(revoked.id, clock.now())
    assert identity_store.delete_revoked_api_tokens([live.id, revoked.id, str(uuid.uuid4())]) == [revoked.id]
    assert [t.id for t in identity_store.api_tokens()] == [live.id]
    assert identity_store.delete_revoked_api_tokens([]) == []


def test_sqlite_identity_writes_queue_on_the_process_write_lock(tmp_path: Path, clock: FixedClock) -> None:
    """Threads writing to the identity database wait on this process's lock for that file
    (`write_lock_for`), as the event store's do, instead of polling in SQLite's busy handler."""
    from shared.adapters.sql import write_lock_for

    url = f"sqlite:///{tmp_path / 'identity.db'}"
    store = SqlIdentityStore(url)
    store.create_schema()
    done = threading.Event()

    def write() -> None:
        store.mark_used("token-hash", "link", clock.now() + timedelta(hours=1), clock.now())
        done.set()

    lock = write_lock_for(url)
    with lock:
        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.3)  # queued behind the lock, not written
    assert done.wait(10)
    writer.join()
    assert not store.mark_used("token-hash", "link", clock.now() + timedelta(hours=1), clock.now())
    store.dispose()


def test_compact_is_part_of_every_identity_store(identity_store: IdentityStore, clock: FixedClock) -> None:
    """Reached through the protocol (the erasure and retention code no longer probe for an engine)."""
    account = _account(clock)
    identity_store.add_account(account)
    identity_store.compact()
    identity_store.compact(vacuum=True)
    assert identity_store.get_account(account.id) is not None


def test_compact_with_vacuum_leaves_no_erased_name_in_the_sqlite_files(tmp_path: Path, clock: FixedClock) -> None:
    path = tmp_path / "identity.db"
    store = SqlIdentityStore(f"sqlite:///{path}")
    store.create_schema()
    try:
        account = Account(str(uuid.uuid4()), "Quillon Vexmoor", "quillon@example.org", clock.now())
        store.add_account(account)
        store.erase_personal_data(account.id, clock.now())
        store.compact(vacuum=True)
        left = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("identity.db"))
        assert b"Vexmoor" not in left
        assert b"quillon@example" not in left
    finally:
        store.dispose()


def test_the_link_floor_only_moves_forward_and_one_racer_wins(
    identity_store: IdentityStore, clock: FixedClock
) -> None:
    account = _account(clock)
    identity_store.add_account(account)
    assert identity_store.advance_link_floor(account.id, 2_000)
    assert not identity_store.advance_link_floor(account.id, 1_000)  # an older link
    assert not identity_store.advance_link_floor(account.id, 2_000)  # the same one again
    assert identity_store.advance_link_floor(account.id, 3_000)
    other = _account(clock, email="other@example.org")
    identity_store.add_account(other)
    wins = at_once(6, lambda: identity_store.advance_link_floor(other.id, 5_000))
    assert sorted(wins) == [False] * 5 + [True]


def test_every_account_and_every_grant_can_be_listed(identity_store: IdentityStore, clock: FixedClock) -> None:
    first = _account(clock, email="first@example.org")
    identity_store.add_account(first)
    clock.advance(timedelta(seconds=1))
    second = _account(clock, email="second@example.org")
    identity_store.add_account(second)
    identity_store.grant_role(second.id, RoleGrant(Role.ASSESSOR, "SOCSW"), clock.now())
    identity_store.grant_role(second.id, RoleGrant(Role.ADMINISTRATOR, None), clock.now())
    identity_store.set_disabled(first.id, True)
    assert [a.id for a in identity_store.list_accounts()] == [first.id, second.id]
    assert identity_store.list_accounts()[0].disabled
    assert identity_store.all_grants() == {
        second.id: frozenset({RoleGrant(Role.ASSESSOR, "SOCSW"), RoleGrant(Role.ADMINISTRATOR, None)})}
    identity_store.revoke_role(second.id, RoleGrant(Role.ASSESSOR, "SOCSW"))
    identity_store.revoke_role(second.id, RoleGrant(Role.ADMINISTRATOR, None))
    assert identity_store.all_grants() == {}
