"""Issue 16: a Redis outage or a Redis that refuses writes (full disk, MISCONF) degrades the
sessions, never turns a signed-in reader away with a 500: a session this process confirmed
shortly before is honoured while Redis cannot be reached; creating, revoking and anything older
raise (the apps answer 503)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import fakeredis
import pytest
import redis

from shared.clock import FixedClock
from shared.identity import sessions as sessions_module
from shared.identity.sessions import RedisSessionStore, SessionPolicy

POLICY = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=8))


def _store(server: fakeredis.FakeServer, clock: FixedClock, **kwargs: Any) -> RedisSessionStore:
    return RedisSessionStore(fakeredis.FakeRedis(server=server), clock, POLICY, **kwargs)


def test_a_confirmed_session_is_honoured_while_redis_is_down(clock: FixedClock) -> None:
    server = fakeredis.FakeServer()
    store = _store(server, clock)
    seen = store.create("acct-1")
    never_seen = store.create("acct-2")  # created here, never confirmed by a `get`
    assert store.get(seen) is not None
    server.connected = False
    live = store.get(seen)
    assert live is not None
    assert live.account_id == "acct-1"
    with pytest.raises(redis.ConnectionError):
        store.get(never_seen)
    with pytest.raises(redis.ConnectionError):
        store.create("acct-3")
    with pytest.raises(redis.ConnectionError):
        store.revoke(seen)  # sign-out needs Redis; the session is forgotten here at once
    with pytest.raises(redis.ConnectionError):
        store.get(seen)
    server.connected = True
    assert store.get(seen) is not None  # Redis was never told: still signed in there


def test_the_grace_ends(clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    server = fakeredis.FakeServer()
    store = _store(server, clock, unreachable_grace=timedelta(seconds=60))
    sid = store.create("acct-1")
    assert store.get(sid) is not None
    server.connected = False
    assert store.get(sid) is not None
    now = sessions_module.time.monotonic()
    monkeypatch.setattr(sessions_module.time, "monotonic", lambda: now + 61)
    with pytest.raises(redis.ConnectionError):
        store.get(sid)


def test_a_session_revoked_in_redis_is_not_honoured_later(clock: FixedClock) -> None:
    server = fakeredis.FakeServer()
    here, elsewhere = _store(server, clock), _store(server, clock)
    sid = here.create("acct-1")
    assert here.get(sid) is not None
    elsewhere.revoke(sid)  # another process signs it out while Redis is up
    assert here.get(sid) is None  # seen here: forgotten
    server.connected = False
    with pytest.raises(redis.ConnectionError):
        here.get(sid)


def test_the_account_is_still_checked_while_redis_is_down(clock: FixedClock) -> None:
    server = fakeredis.FakeServer()
    disabled: set[str] = set()
    store = _store(server, clock, account_active=lambda account: account not in disabled)
    sid = store.create("acct-1")
    assert store.get(sid) is not None
    server.connected = False
    disabled.add("acct-1")
    with pytest.raises(redis.ConnectionError):  # refused; deleting it needs Redis
        store.get(sid)


class RefusingWrites:
    """A client whose reads work and whose writes fail as a Redis with a full disk answers."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def hgetall(self, key: str) -> Any:
        return self._inner.hgetall(key)

    def pipeline(self, transaction: bool = True) -> Any:
        raise redis.ResponseError("MISCONF Errors writing to the AOF file: No space left on device")


def test_a_redis_refusing_writes_keeps_a_live_session(clock: FixedClock) -> None:
    inner = fakeredis.FakeRedis()
    sid = RedisSessionStore(inner, clock, POLICY).create("acct-1")
    store = RedisSessionStore(RefusingWrites(inner), clock, POLICY)
    live = store.get(sid)
    assert live is not None
    assert live.account_id == "acct-1"
    with pytest.raises(redis.ResponseError):
        store.create("acct-2")
