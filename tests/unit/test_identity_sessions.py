"""Server-side sessions on the in-memory store and on Redis (fakeredis): the same behaviour."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import fakeredis
import pytest

from shared.clock import FixedClock
from shared.identity.sessions import InMemorySessionStore, RedisSessionStore, SessionPolicy, SessionStore

POLICY = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=8))


class Accounts:
    """Which accounts are active: stands in for AccountService.is_active."""

    def __init__(self) -> None:
        self.disabled: set[str] = set()

    def is_active(self, account_id: str) -> bool:
        return account_id not in self.disabled


@pytest.fixture
def accounts() -> Accounts:
    return Accounts()


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture(params=["memory", "fakeredis", pytest.param("redis-server", marks=pytest.mark.redis)])
def sessions(
    request: pytest.FixtureRequest, clock: FixedClock, accounts: Accounts, redis_client: fakeredis.FakeRedis
) -> Iterator[SessionStore]:
    if request.param == "memory":
        yield InMemorySessionStore(clock, POLICY, account_active=accounts.is_active)
    elif request.param == "fakeredis":
        yield RedisSessionStore(redis_client, clock, POLICY, account_active=accounts.is_active)
    else:
        import redis

        url = os.environ.get("CIM_TEST_REDIS_URL")
        if not url:
            pytest.skip("CIM_TEST_REDIS_URL is not set (scripts/test.sh starts redis-server)")
        client = redis.Redis.from_url(url)
        prefix = f"cim-test:{uuid.uuid4().hex}:"  # the server may be shared with other tests
        yield RedisSessionStore(client, clock, POLICY, account_active=accounts.is_active, prefix=prefix)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


def test_a_new_session_has_an_opaque_high_entropy_id(sessions: SessionStore, clock: FixedClock) -> None:
    first = sessions.create("acc-1", auth_method="password+totp")
    second = sessions.create("acc-1")
    assert first != second
    assert len(first) >= 43
    session = sessions.get(first)
    assert session is not None
    assert (session.account_id, session.created_at, session.auth_method) == ("acc-1", clock.now(), "password+totp")
    assert sessions.get("not-a-session") is None
    assert sessions.get("") is None


def test_idle_timeout_and_activity_keeping_it_alive(sessions: SessionStore, clock: FixedClock) -> None:
    sid = sessions.create("acc-1")
    for _ in range(5):
        clock.advance(timedelta(minutes=29))
        assert sessions.get(sid) is not None
    clock.advance(timedelta(minutes=30))
    assert sessions.get(sid) is None
    clock.advance(timedelta(minutes=-30))
    assert sessions.get(sid) is None  # deleted when found idle, not just hidden


def test_absolute_timeout_ends_even_an_active_session(sessions: SessionStore, clock: FixedClock) -> None:
    sid = sessions.create("acc-1")
    for _ in range(16):
        clock.advance(timedelta(minutes=29))
        assert sessions.get(sid) is not None
    clock.advance(timedelta(minutes=29))  # 8 h 13 min after sign-in
    assert sessions.get(sid) is None


def test_rotation_gives_a_new_id_and_kills_the_old_one(sessions: SessionStore, clock: FixedClock) -> None:
    old = sessions.create("acc-1")
    clock.advance(timedelta(minutes=5))
    new = sessions.rotate(old)
    assert new is not None
    assert new != old
    assert sessions.get(old) is None
    session = sessions.get(new)
    assert session is not None
    assert session.account_id == "acc-1"
    assert session.created_at == clock.now() - timedelta(minutes=5)  # absolute timeout counts from sign-in
    assert sessions.rotate(old) is None


def test_revoke_and_sign_out_everywhere(sessions: SessionStore) -> None:
    a1, a2, a3 = (sessions.create("acc-a") for _ in range(3))
    b = sessions.create("acc-b")
    sessions.revoke(a1)
    assert sessions.get(a1) is None
    sessions.revoke(a1)  # twice is harmless
    assert sessions.revoke_all("acc-a") == 2
    assert sessions.get(a2) is None
    assert sessions.get(a3) is None
    assert sessions.get(b) is not None
    assert sessions.revoke_all("acc-a") == 0


def test_a_disabled_accounts_session_is_refused_on_the_next_get(sessions: SessionStore, accounts: Accounts) -> None:
    sid = sessions.create("acc-1")
    assert sessions.get(sid) is not None
    accounts.disabled.add("acc-1")
    assert sessions.get(sid) is None
    accounts.disabled.clear()
    assert sessions.get(sid) is None  # re-enabling does not revive it


def test_redis_stores_only_the_hash_of_the_session_id(redis_client: fakeredis.FakeRedis, clock: FixedClock) -> None:
    sessions = RedisSessionStore(redis_client, clock, POLICY)
    sid = sessions.create("acc-1")
    keys = [k.decode() if isinstance(k, bytes) else k for k in redis_client.keys("*")]
    digest = hashlib.sha256(sid.encode()).hexdigest()
    assert f"cim:session:s:{digest}" in keys
    dump = repr(keys) + "".join(repr(redis_client.dump(k)) for k in keys)  # every key's full serialized value
    assert sid not in dump
    assert sid.encode() not in b"".join(redis_client.dump(k) or b"" for k in keys)
    ttl = redis_client.ttl(f"cim:session:s:{digest}")
    assert 0 < ttl <= POLICY.idle.total_seconds() + 1


def test_memory_store_keeps_only_hashes(clock: FixedClock) -> None:
    sessions = InMemorySessionStore(clock, POLICY)
    sid = sessions.create("acc-1")
    assert sessions.stored_keys == [hashlib.sha256(sid.encode()).hexdigest()]


def test_a_get_racing_a_revoke_does_not_revive_the_session(
    redis_client: fakeredis.FakeRedis, clock: FixedClock
) -> None:
    class RevokingMidway(RedisSessionStore):
        def _touch(self, key, session, ttl):  # type: ignore[no-untyped-def]
            self.revoke(sid)
            return super()._touch(key, session, ttl)

    sessions = RevokingMidway(redis_client, clock, POLICY)
    sid = sessions.create("acc-1")
    assert sessions.get(sid) is None
    assert RedisSessionStore(redis_client, clock, POLICY).get(sid) is None


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="idle"):
        SessionPolicy(idle=timedelta(hours=2), absolute=timedelta(hours=1))
