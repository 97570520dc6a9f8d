"""The register use case (intake_service.registration) without Flask: a new address gets a
student, an account and a link; a known one only a link (never a staff account); both answer
alike after the same minimum time; a signed-in account is attached to its new student."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from intake_service.bootstrap import build_services
from intake_service.domain import RegisterStudent
from intake_service.registration import Registered, Registration
from intake_service.services import IntakeServices, RequestContext
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import ValidationFailed
from shared.identity.models import Account, Role, RoleGrant
from shared.identity.wiring import Identity
from tests.authkit import make_account, make_identity

COMMAND = {
    "name": "Wilma Exempelsson",
    "email": "wilma@example.org",
    "university_id": "wi1234ex-s",
    "department": "SOCSW",
    "programme": "SSASK",
    "expected_end_term": "VT2028",
}
MIN = 0.3


@dataclass
class FakeTime:
    """A monotonic clock that work moves on by `cost` seconds per call of `work()`, and a sleep."""

    now: float = 100.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Outbox:
    sent: list[tuple[str, str | None]] = field(default_factory=list)

    def __call__(self, account: Account, token: str, *, key: str | None) -> bool:
        self.sent.append((account.id, key))
        return True


@pytest.fixture
def identity(clock: FixedClock) -> Identity:
    return make_identity(clock)


@pytest.fixture
def intake(tmp_path: Any, clock: FixedClock) -> IntakeServices:
    store = InMemoryEventStore(clock)
    return build_services(Settings(data_dir=tmp_path, wakeup="none"), store=store, clock=clock)


def ctx(key: str = "form-1") -> RequestContext:
    return RequestContext(actor="anonymous", correlation_id="c-1", idempotency_key=key)


def use_case(intake: IntakeServices, identity: Identity, outbox: Outbox, time: FakeTime) -> Registration:
    return Registration(intake, identity, outbox, min_duration=MIN, monotonic=time.monotonic, sleep=time.sleep)


def test_a_new_address_gets_a_student_an_account_and_a_link(intake: IntakeServices, identity: Identity) -> None:
    outbox, time = Outbox(), FakeTime()
    done = use_case(intake, identity, outbox, time).register_anonymous(RegisterStudent(**COMMAND), ctx())
    assert done.linked is False
    assert done.student_id is not None
    account = identity.store.find_account_by_email("wilma@example.org")
    assert account is not None
    assert account.student_id == done.student_id
    assert identity.store.grants_of(account.id) == {RoleGrant(Role.STUDENT, "SOCSW")}
    assert outbox.sent == [(account.id, f"registered:{done.student_id}")]
    assert [e.type for e in intake.store.read_all()] == ["StudentRegistered"]


def test_a_known_address_only_gets_a_link_and_staff_get_none(intake: IntakeServices, identity: Identity) -> None:
    outbox, time = Outbox(), FakeTime()
    registration = use_case(intake, identity, outbox, time)
    registration.register_anonymous(RegisterStudent(**COMMAND), ctx("form-1"))
    again = registration.register_anonymous(RegisterStudent(**{**COMMAND, "name": "Someone Else"}), ctx("form-2"))
    assert again == Registered(linked=False)
    assert len(outbox.sent) == 2
    assert [e.type for e in intake.store.read_all()] == ["StudentRegistered"]
    make_account(identity, "Cora Samordnare", "cora@example.org", grants=[(Role.COORDINATOR, "SOCSW")])
    staff_address = RegisterStudent(**{**COMMAND, "email": "cora@example.org"})
    assert registration.register_anonymous(staff_address, ctx("form-3")) == again
    assert len(outbox.sent) == 2  # no link for a member of staff, and the same answer


def test_both_paths_and_a_refusal_last_the_same_minimum_time(intake: IntakeServices, identity: Identity) -> None:
    time = FakeTime()
    registration = use_case(intake, identity, Outbox(), time)
    for command, key in ((COMMAND, "form-1"), (COMMAND, "form-2")):  # new, then known
        started = time.now
        registration.register_anonymous(RegisterStudent(**command), ctx(key))
        assert time.now - started == pytest.approx(MIN)
    started = time.now
    with pytest.raises(ValidationFailed):
        registration.register_anonymous(
            RegisterStudent(**{**COMMAND, "email": "x@example.org", "department": "NOPE"}), ctx("form-3")
        )
    assert time.now - started == pytest.approx(MIN)


def test_work_slower_than_the_minimum_is_not_padded_further(intake: IntakeServices, identity: Identity) -> None:
    time = FakeTime()

    def slow_send(account: Account, token: str, *, key: str | None) -> bool:
        time.now += 1.0
        return True

    Registration(intake, identity, slow_send, min_duration=MIN, monotonic=time.monotonic,
                 sleep=time.sleep).register_anonymous(RegisterStudent(**COMMAND), ctx())
    assert time.slept == []


def test_a_signed_in_account_is_attached_to_its_new_student(intake: IntakeServices, identity: Identity) -> None:
    account = make_account(identity, "Wilma Exempelsson", "wilma@example.org")
    outbox, time = Outbox(), FakeTime()
    done = use_case(intake, identity, outbox, time).register_signed_in(account.id, RegisterStudent(**COMMAND), ctx())
    assert done.linked is True
    linked = identity.store.get_account(account.id)
    assert linked is not None
    assert linked.student_id == done.student_id
    assert identity.store.grants_of(account.id) == {RoleGrant(Role.STUDENT, "SOCSW")}
    assert outbox.sent == []
    assert time.slept == []  # nothing to hide for a signed-in account
