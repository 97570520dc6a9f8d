"""Staff sign-in is limited per account (issue 18.6): after a run of failures the address is
locked, for a doubling but capped while, whoever tries and from wherever; the lock hides which
factor was wrong and whether the address has an account; counters are shared through Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import fakeredis
import pyotp
import pytest

from shared.clock import FixedClock
from shared.identity.errors import SignInFailed, SignInThrottled
from shared.identity.models import Account, Role, RoleGrant
from shared.identity.throttle import SignInThrottle
from shared.identity.wiring import Identity, build_identity
from tests.authkit import FAST_HASHER, IDENTITY_KEY

PASSWORD = "correct horse battery staple 42"


def identity_with(clock: FixedClock, throttle: SignInThrottle) -> Identity:
    return build_identity(clock=clock, identity_key=IDENTITY_KEY, password_hasher=FAST_HASHER, throttle=throttle)


def staff_member(identity: Identity, email: str = "cora@example.org") -> tuple[Account, str]:
    account = identity.accounts.create_account("Cora Samordnare", email, grants=[RoleGrant(Role.COORDINATOR, "SOCSW")])
    identity.staff.set_password(account.id, PASSWORD)
    return account, identity.staff.enrol_totp(account.id, email).secret


def wrong_code(secret: str, clock: FixedClock) -> str:
    right = pyotp.TOTP(secret).at(clock.now())
    return f"{(int(right) + 500_000) % 1_000_000:06d}"


def test_five_wrong_codes_lock_the_account_and_name_it_once(clock: FixedClock) -> None:
    identity = identity_with(clock, SignInThrottle(clock))
    account, secret = staff_member(identity)
    for _ in range(4):
        with pytest.raises(SignInFailed) as refused:
            identity.staff.sign_in("cora@example.org", PASSWORD, wrong_code(secret, clock))
        assert not isinstance(refused.value, SignInThrottled)
    with pytest.raises(SignInThrottled) as locked:
        identity.staff.sign_in("cora@example.org", PASSWORD, wrong_code(secret, clock))
    assert locked.value.retry_after == 30
    assert locked.value.notify is not None
    assert locked.value.notify.id == account.id
    # While locked, even the right password and code are refused, unchecked, and nobody is told again.
    with pytest.raises(SignInThrottled) as still:
        identity.staff.sign_in("cora@example.org", PASSWORD, pyotp.TOTP(secret).at(clock.now()))
    assert still.value.notify is None
    assert still.value.status == 429
    clock.advance(timedelta(seconds=31))
    assert identity.staff.sign_in("cora@example.org", PASSWORD, pyotp.TOTP(secret).at(clock.now())).id == account.id


def test_the_lock_doubles_per_series_and_is_capped_at_a_few_minutes(clock: FixedClock) -> None:
    identity = identity_with(clock, SignInThrottle(clock))
    staff_member(identity)
    lengths = []
    for _ in range(7):
        for attempt in range(5):
            try:
                identity.staff.sign_in("cora@example.org", "a wrong password", "000000")
            except SignInThrottled as exc:
                assert attempt == 4
                lengths.append(exc.retry_after)
            except SignInFailed:
                assert attempt < 4
        clock.advance(timedelta(seconds=lengths[-1] + 1))
    assert lengths == [30, 60, 120, 240, 300, 300, 300]


def test_wrong_password_wrong_code_and_unknown_address_lock_alike(clock: FixedClock) -> None:
    identity = identity_with(clock, SignInThrottle(clock))
    _account, secret = staff_member(identity)
    staff_member(identity, "dora@example.org")
    answers = []
    for email, password, code in (
        ("cora@example.org", PASSWORD, wrong_code(secret, clock)),
        ("dora@example.org", "a wrong password", "123456"),
        ("nobody@example.org", PASSWORD, "123456"),
    ):
        for _ in range(4):
            with pytest.raises(SignInFailed):
                identity.staff.sign_in(email, password, code)
        with pytest.raises(SignInThrottled) as locked:
            identity.staff.sign_in(email, password, code)
        answers.append((str(locked.value), locked.value.retry_after, locked.value.code))
    assert len(set(answers)) == 1


def test_a_success_clears_the_count(clock: FixedClock) -> None:
    identity = identity_with(clock, SignInThrottle(clock))
    _account, secret = staff_member(identity)
    for _ in range(4):
        with pytest.raises(SignInFailed):
            identity.staff.sign_in("cora@example.org", "a wrong password", "000000")
    identity.staff.sign_in("cora@example.org", PASSWORD, pyotp.TOTP(secret).at(clock.now()))
    clock.advance(timedelta(seconds=30))
    for _ in range(4):
        with pytest.raises(SignInFailed) as refused:
            identity.staff.sign_in("cora@example.org", "a wrong password", "000000")
        assert not isinstance(refused.value, SignInThrottled)


def test_processes_share_the_count_through_redis(clock: FixedClock) -> None:
    server = fakeredis.FakeServer()
    # Two processes (two apps, two gunicorn workers): each its own client, one Redis.
    first = SignInThrottle(clock, fakeredis.FakeRedis(server=server), base=timedelta(milliseconds=300))
    second = SignInThrottle(clock, fakeredis.FakeRedis(server=server), base=timedelta(milliseconds=300))
    for throttle in (first, second, first, second):
        assert throttle.failed("Cora@Example.org ") is None
    lockout = second.failed("cora@example.org")
    assert lockout is not None
    assert lockout.first
    assert first.locked_for("cora@example.org") == 1
    assert first.locked_for("dora@example.org") == 0
    time.sleep(0.35)  # Redis expires the lock by its own clock
    assert second.locked_for("cora@example.org") == 0
    keys = [k.decode() for k in fakeredis.FakeRedis(server=server).keys("*")]
    assert keys
    assert not any("cora" in k for k in keys)  # only a hash of the address is stored


def test_redis_down_skips_the_limit_instead_of_failing(clock: FixedClock) -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    throttle = SignInThrottle(clock, fakeredis.FakeRedis(server=server))
    assert throttle.locked_for("cora@example.org") == 0
    assert all(throttle.failed("cora@example.org") is None for _ in range(10))
