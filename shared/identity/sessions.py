"""Server-side sessions: opaque random ids, only their hashes stored, idle and absolute timeouts,
rotation, revocation of one or of all an account's sessions, and refusal once the account is disabled."""

from __future__ import annotations

import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.clock import Clock
from shared.identity.crypto import token_hash

#: Tells whether an account may still hold sessions (exists and is not disabled).
AccountActive = Callable[[str], bool]


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)

    def __post_init__(self) -> None:
        if self.idle <= timedelta(0) or self.absolute < self.idle:
            raise ValueError("need 0 < idle <= absolute")


@dataclass(frozen=True)
class Session:
    """What a session id stands for. `created_at` is the sign-in time; rotation keeps it, so the
    absolute timeout counts from the sign-in."""

    account_id: str
    created_at: datetime
    last_seen_at: datetime
    auth_method: str = ""


class SessionStore(Protocol):
    def create(self, account_id: str, *, auth_method: str = "") -> str:
        """A new session; returns its id (secrets.token_urlsafe(32)), to be put in the cookie."""
        ...

    def get(self, session_id: str) -> Session | None:
        """The live session and mark it seen, or None (unknown, revoked, idle, too old, account
        disabled). Expired or refused sessions are deleted."""
        ...

    def rotate(self, session_id: str) -> str | None:
        """Replace the id (same account, same sign-in time); the old id stops working at once.
        None if the old one was not live."""
        ...

    def revoke(self, session_id: str) -> None: ...

    def revoke_all(self, account_id: str) -> int:
        """Sign out everywhere; returns how many session ids were dropped."""
        ...


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def _encode(session: Session) -> dict[str, str]:
    return {
        "account_id": session.account_id,
        "created_at": session.created_at.isoformat(),
        "last_seen_at": session.last_seen_at.isoformat(),
        "auth_method": session.auth_method,
    }


def _decode(raw: dict[Any, Any]) -> Session | None:
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    data = {text(k): text(v) for k, v in raw.items()}
    try:
        return Session(
            account_id=data["account_id"],
            created_at=datetime.fromisoformat(data["created_at"]),
            last_seen_at=datetime.fromisoformat(data["last_seen_at"]),
            auth_method=data.get("auth_method", ""),
        )
    except (KeyError, ValueError):
        return None


class _SessionLogic(ABC):
    """The rules, over the storage primitives each adapter supplies."""

    def __init__(self, clock: Clock, policy: SessionPolicy, account_active: AccountActive | None) -> None:
        self._clock = clock
        self._policy = policy
        self._account_active = account_active

    # primitives
    @abstractmethod
    def _load(self, key: str) -> Session | None: ...

    @abstractmethod
    def _save(self, key: str, session: Session, ttl: timedelta) -> None: ...

    @abstractmethod
    def _touch(self, key: str, session: Session, ttl: timedelta) -> bool:
        """Overwrite only if still stored, so a get racing a revoke cannot bring the session back."""

    @abstractmethod
    def _delete(self, key: str, account_id: str | None) -> bool:
        """Delete; True only for the caller that actually removed it."""

    @abstractmethod
    def _keys_of(self, account_id: str) -> list[str]: ...

    # rules
    def _ttl(self, session: Session, now: datetime) -> timedelta:
        return min(self._policy.idle, session.created_at + self._policy.absolute - now)

    def _live(self, session: Session, now: datetime) -> bool:
        if now - session.last_seen_at >= self._policy.idle:
            return False
        if now - session.created_at >= self._policy.absolute:
            return False
        return self._account_active is None or self._account_active(session.account_id)

    def create(self, account_id: str, *, auth_method: str = "") -> str:
        now = self._clock.now()
        session_id = new_session_id()
        session = Session(account_id, now, now, auth_method)
        self._save(token_hash(session_id), session, self._ttl(session, now))
        return session_id

    def get(self, session_id: str) -> Session | None:
        if not session_id:
            return None
        key = token_hash(session_id)
        session = self._load(key)
        if session is None:
            return None
        now = self._clock.now()
        if not self._live(session, now):
            self._delete(key, session.account_id)
            return None
        seen = Session(session.account_id, session.created_at, now, session.auth_method)
        return seen if self._touch(key, seen, self._ttl(seen, now)) else None

    def rotate(self, session_id: str) -> str | None:
        session = self.get(session_id)
        if session is None or not self._delete(token_hash(session_id), session.account_id):
            return None
        now = self._clock.now()
        new_id = new_session_id()
        self._save(token_hash(new_id), session, self._ttl(session, now))
        return new_id

    def revoke(self, session_id: str) -> None:
        if not session_id:
            return
        key = token_hash(session_id)
        session = self._load(key)
        self._delete(key, session.account_id if session else None)

    def revoke_all(self, account_id: str) -> int:
        return sum(1 for key in self._keys_of(account_id) if self._delete(key, account_id))


class InMemorySessionStore(_SessionLogic):
    """SessionStore in a dict, for unit tests and a single-process dev server."""

    def __init__(
        self, clock: Clock, policy: SessionPolicy | None = None, *, account_active: AccountActive | None = None
    ) -> None:
        super().__init__(clock, policy or SessionPolicy(), account_active)
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def _load(self, key: str) -> Session | None:
        return self._sessions.get(key)

    def _save(self, key: str, session: Session, ttl: timedelta) -> None:
        with self._lock:
            self._sessions[key] = session

    def _touch(self, key: str, session: Session, ttl: timedelta) -> bool:
        with self._lock:
            if key not in self._sessions:
                return False
            self._sessions[key] = session
            return True

    def _delete(self, key: str, account_id: str | None) -> bool:
        with self._lock:
            return self._sessions.pop(key, None) is not None

    def _keys_of(self, account_id: str) -> list[str]:
        return [k for k, s in list(self._sessions.items()) if s.account_id == account_id]

    @property
    def stored_keys(self) -> list[str]:
        """For tests: what is stored (hashes, never ids)."""
        return list(self._sessions)


#: While Redis cannot be reached, a session this process saw confirmed in Redis at most this long
#: ago is still honoured, so signed-in staff keep reading (with the "updates are paused" notice)
#: through a Redis outage. The account is still checked in the identity database at every request.
UNREACHABLE_GRACE = timedelta(minutes=10)
#: At most this many confirmed sessions are remembered per process.
_CONFIRMED_MAX = 10_000


class RedisSessionStore(_SessionLogic):
    """SessionStore on Redis: `<prefix>s:<sha256(id)>` hashes with a TTL, and per account a set
    `<prefix>a:<account_id>` of those hashes for sign-out everywhere. Pass a redis.Redis client.

    Faults degrade (issue 16): when Redis cannot be reached, `get` honours a session this process
    confirmed in Redis within `unreachable_grace` (a revocation made elsewhere in that window is
    not seen until Redis is back); when Redis refuses writes (a full disk: MISCONF, AOF errors), a
    live session is honoured without its idle timer moved. Creating, rotating and revoking need
    Redis: they raise its error (the apps answer 503)."""

    def __init__(
        self,
        redis: Any,
        clock: Clock,
        policy: SessionPolicy | None = None,
        *,
        account_active: AccountActive | None = None,
        prefix: str = "cim:session:",
        unreachable_grace: timedelta = UNREACHABLE_GRACE,
    ) -> None:
        super().__init__(clock, policy or SessionPolicy(), account_active)
        self._redis = redis
        self._prefix = prefix
        self._grace = unreachable_grace.total_seconds()
        self._confirmed: dict[str, tuple[Session, float]] = {}
        self._confirmed_lock = threading.Lock()

    def _confirm(self, key: str, session: Session) -> None:
        now = time.monotonic()
        with self._confirmed_lock:
            if len(self._confirmed) >= _CONFIRMED_MAX:
                for old in [k for k, (_, at) in self._confirmed.items() if now - at > self._grace]:
                    del self._confirmed[old]
                if len(self._confirmed) >= _CONFIRMED_MAX:
                    self._confirmed.pop(next(iter(self._confirmed)))
            self._confirmed[key] = (session, now)

    def _forget(self, key: str) -> None:
        with self._confirmed_lock:
            self._confirmed.pop(key, None)

    def _recently_confirmed(self, key: str) -> Session | None:
        with self._confirmed_lock:
            found = self._confirmed.get(key)
        if found is None or time.monotonic() - found[1] > self._grace:
            return None
        return found[0]

    def _skey(self, key: str) -> str:
        return f"{self._prefix}s:{key}"

    def _akey(self, account_id: str) -> str:
        return f"{self._prefix}a:{account_id}"

    def _load(self, key: str) -> Session | None:
        try:
            raw = self._redis.hgetall(self._skey(key))
        except (RedisConnectionError, RedisTimeoutError):
            found = self._recently_confirmed(key)
            if found is None:
                raise
            return found
        session = _decode(raw) if raw else None
        if session is None:
            self._forget(key)
        return session

    def _save(self, key: str, session: Session, ttl: timedelta) -> None:
        seconds = max(1, int(ttl.total_seconds()) + 1)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._skey(key), mapping=_encode(session))
        pipe.expire(self._skey(key), seconds)
        pipe.sadd(self._akey(session.account_id), key)
        pipe.expire(self._akey(session.account_id), int(self._policy.absolute.total_seconds()) + 60)
        pipe.execute()

    def _touch(self, key: str, session: Session, ttl: timedelta) -> bool:
        skey = self._skey(key)
        seconds = max(1, int(ttl.total_seconds()) + 1)
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.watch(skey)
                if not pipe.exists(skey):
                    self._forget(key)
                    return False
                pipe.multi()
                pipe.hset(skey, "last_seen_at", session.last_seen_at.isoformat())
                pipe.expire(skey, seconds)
                pipe.execute()
        except WatchError:
            self._forget(key)
            return False  # revoked or rotated meanwhile
        except RedisError:
            # Unreachable since the read, or refusing writes (MISCONF: a full disk): the session
            # was just read live; honour it, its idle timer unmoved.
            return True
        self._confirm(key, session)
        return True

    def _delete(self, key: str, account_id: str | None) -> bool:
        self._forget(key)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._skey(key))
        if account_id is not None:
            pipe.srem(self._akey(account_id), key)
        removed = pipe.execute()[0]
        return bool(removed)

    def _keys_of(self, account_id: str) -> list[str]:
        return [m.decode() if isinstance(m, bytes) else m for m in self._redis.smembers(self._akey(account_id))]
