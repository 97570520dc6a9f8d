"""A per-account limit on staff sign-in attempts, with a short exponential backoff.

The per-client rate limit alone let 90 wrong codes (with the right password) through from 10
addresses (issue 18). Here every failed password + code attempt counts against the account's
address, whoever sends it: after `threshold` failures in a row the address is locked for
`base`, then twice as long after each further `threshold` failures, never longer than `cap`
(a few minutes, so nobody can lock a person out for long). While locked, attempts are refused
before any credential is looked at. A success clears the count; so does `window` without a
failure.

The key is a hash of the normalized e-mail address, not the account id: an unknown address
locks exactly like a known one, so the lock tells nobody who has an account. Counters live in
Redis (shared by every process of both apps; fakeredis in tests) or, without Redis, in this
process. If Redis fails, the limit is skipped (logged): sessions live there too, so no sign-in
can complete anyway.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.clock import Clock
from shared.identity.store import normalize_email

log = logging.getLogger(__name__)

KEY_PREFIX = "cim:staff-sign-in"


@dataclass(frozen=True)
class Lockout:
    """A lock that a failure has just started: how long, and whether it is the first of its
    series (the account holder is told then)."""

    seconds: int
    first: bool


def _subject(email: str) -> str:
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()


class SignInThrottle:
    """Counts failed staff sign-ins per address and locks the address for a while (see above)."""

    def __init__(
        self,
        clock: Clock,
        redis: Any | None = None,
        *,
        threshold: int = 5,
        base: timedelta = timedelta(seconds=30),
        cap: timedelta = timedelta(minutes=5),
        window: timedelta = timedelta(hours=1),
    ) -> None:
        if threshold < 1 or base <= timedelta(0) or cap < base:
            raise ValueError("threshold >= 1 and 0 < base <= cap")
        self._clock = clock
        self._redis = redis
        self.threshold = threshold
        self.base = base
        self.cap = cap
        self.window = window
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, datetime]] = {}  # without Redis: count, forget at
        self._locked_until: dict[str, datetime] = {}

    def duration(self, lockouts: int) -> timedelta:
        """The length of the `lockouts`-th lock of a series (1, 2, ...): doubling, capped."""
        return min(self.base * (2 ** min(lockouts - 1, 30)), self.cap)

    def locked_for(self, email: str) -> int:
        """Seconds the address stays locked (0: not locked)."""
        subject = _subject(email)
        if self._redis is not None:
            try:
                remaining_ms = int(self._redis.pttl(f"{KEY_PREFIX}:lock:{subject}"))
            except Exception:
                log.warning("sign-in throttle storage unreachable; not limiting")
                return 0
            return math.ceil(remaining_ms / 1000) if remaining_ms > 0 else 0
        now = self._clock.now()
        with self._lock:
            until = self._locked_until.get(subject)
            if until is None or until <= now:
                return 0
            return math.ceil((until - now).total_seconds())

    def failed(self, email: str) -> Lockout | None:
        """Count a failed attempt; the Lockout it starts, if it completes `threshold` failures."""
        subject = _subject(email)
        if self._redis is not None:
            try:
                count = self._count_in_redis(subject)
            except Exception:
                log.warning("sign-in throttle storage unreachable; failure not counted")
                return None
        else:
            count = self._count_here(subject)
        if count % self.threshold:
            return None
        lockouts = count // self.threshold
        length = self.duration(lockouts)
        if self._redis is not None:
            try:
                self._redis.set(f"{KEY_PREFIX}:lock:{subject}", "1", px=int(length.total_seconds() * 1000))
            except Exception:
                log.warning("sign-in throttle storage unreachable; lock not set")
                return None
        else:
            with self._lock:
                self._locked_until[subject] = self._clock.now() + length
        return Lockout(max(1, math.ceil(length.total_seconds())), first=lockouts == 1)

    def succeeded(self, email: str) -> None:
        """A successful sign-in clears the address's count."""
        subject = _subject(email)
        if self._redis is not None:
            try:
                self._redis.delete(f"{KEY_PREFIX}:fail:{subject}")
            except Exception:
                log.warning("sign-in throttle storage unreachable; count not cleared")
            return
        with self._lock:
            self._failures.pop(subject, None)

    def _count_in_redis(self, subject: str) -> int:
        key = f"{KEY_PREFIX}:fail:{subject}"
        pipe = self._redis.pipeline()  # type: ignore[union-attr]
        pipe.incr(key)
        pipe.pexpire(key, int(self.window.total_seconds() * 1000))
        count, _ = pipe.execute()
        return int(count)

    def _count_here(self, subject: str) -> int:
        now = self._clock.now()
        with self._lock:
            count, forget_at = self._failures.get(subject, (0, now))
            if forget_at < now:
                count = 0
            count += 1
            self._failures[subject] = (count, now + self.window)
            return count
