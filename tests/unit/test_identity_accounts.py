"""Accounts, roles, the first administrator, and staff sign-in with an argon2 password plus TOTP."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from shared.clock import FixedClock
from shared.errors import NotFound, ValidationFailed
from shared.identity.accounts import AccountService, StaffCredentials, create_first_administrator
from shared.identity.crypto import SecretBox, derive_key
from shared.identity.errors import (
    AccountDisabled,
    AlreadyBootstrapped,
    IdentityConflict,
    SignInFailed,
    TotpCodeReplayed,
    WeakPassword,
)
from shared.identity.models import ExternalIdentity, Role, RoleGrant
from shared.identity.passwords import PasswordService
from shared.identity.sessions import InMemorySessionStore
from shared.identity.store import InMemoryIdentityStore
from shared.identity.totp import STEP_SECONDS, TotpService

PASSWORD = "correct horse battery staple"
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def store() -> InMemoryIdentityStore:
    return InMemoryIdentityStore()


@pytest.fixture
def sessions(clock: FixedClock) -> InMemorySessionStore:
    return InMemorySessionStore(clock)


@pytest.fixture
def accounts(store: InMemoryIdentityStore, clock: FixedClock, sessions: InMemorySessionStore) -> AccountService:
    return AccountService(store, clock, sessions=sessions)


@pytest.fixture
def totp(clock: FixedClock) -> TotpService:
    return TotpService(SecretBox(derive_key("x" * 40, "totp-secrets")), clock)


@pytest.fixture
def credentials(store: InMemoryIdentityStore, clock: FixedClock, totp: TotpService) -> StaffCredentials:
    return StaffCredentials(store, PasswordService(CHEAP), totp, clock)


def _current_code(totp: TotpService, secret: str, clock: FixedClock, steps_off: int = 0) -> str:
    return totp.code_at_step(secret, int(clock.now().timestamp()) // STEP_SECONDS + steps_off)


def _staff(accounts: AccountService, credentials: StaffCredentials) -> tuple[str, str]:
    account = accounts.create_account("Grace Hopper", "grace@lu.se", grants=[RoleGrant(Role.ASSESSOR, "FYS")])
    credentials.set_password(account.id, PASSWORD)
    return account.id, credentials.enrol_totp(account.id, "grace@lu.se").secret


# accounts and roles


def test_a_student_account_links_to_its_student_id(accounts: AccountService) -> None:
    student_id = str(uuid.uuid4())
    account = accounts.create_account("Ada", "ada@student.lu.se", student_id=student_id,
                                      grants=[RoleGrant(Role.STUDENT, "FYS")])
    found = accounts.account_for_student(student_id)
    assert found is not None
    assert found.id == account.id
    principal = accounts.principal(account.id)
    assert principal is not None
    assert principal.has_role(Role.STUDENT, "FYS")
    assert not principal.has_role(Role.STUDENT, "KEM")
    with pytest.raises(ValidationFailed):
        accounts.create_account("Bob", "bob@student.lu.se", student_id="not-a-uuid")
    with pytest.raises(IdentityConflict):
        accounts.create_account("Ada again", "ada2@student.lu.se", student_id=student_id)


def test_roles_differ_per_department(accounts: AccountService) -> None:
    account = accounts.create_account("Grace", "grace@lu.se")
    accounts.grant_role(account.id, Role.ASSESSOR, "FYS")
    accounts.grant_role(account.id, Role.COORDINATOR, "KEM")
    principal = accounts.principal(account.id)
    assert principal is not None
    assert principal.departments(Role.ASSESSOR) == {"FYS"}
    assert principal.departments(Role.COORDINATOR) == {"KEM"}
    assert not principal.is_administrator
    with pytest.raises(ValidationFailed) as no_department:
        accounts.grant_role(account.id, Role.COORDINATOR, None)
    assert "department" in no_department.value.fields
    with pytest.raises(ValidationFailed) as admin_department:
        accounts.grant_role(account.id, Role.ADMINISTRATOR, "FYS")
    assert "department" in admin_department.value.fields
    with pytest.raises(ValidationFailed) as bad_role:
        accounts.grant_role(account.id, "superuser", None)
    assert "role" in bad_role.value.fields
    with pytest.raises(ValidationFailed):
        accounts.grant_role(account.id, Role.ASSESSOR, "../etc")
    with pytest.raises(NotFound):
        accounts.grant_role(str(uuid.uuid4()), Role.ASSESSOR, "FYS")


def test_invalid_account_input_names_the_field(accounts: AccountService) -> None:
    with pytest.raises(ValidationFailed) as bad_email:
        accounts.create_account("Ada", "not an e-mail")
    assert "email" in bad_email.value.fields
    with pytest.raises(ValidationFailed) as bad_name:
        accounts.create_account("   ", "ada@lu.se")
    assert "display_name" in bad_name.value.fields


def test_sso_identity_never_matches_on_email(accounts: AccountService) -> None:
    account = accounts.create_account("Ada", "ada@lu.se")
    accounts.link_identity(account.id, ExternalIdentity("https://idp.lu.se", "sub-1"))
    found = accounts.account_for_identity(ExternalIdentity("https://idp.lu.se", "sub-1"))
    assert found is not None
    assert found.id == account.id
    assert accounts.account_for_identity(ExternalIdentity("https://other-idp", "sub-1")) is None
    assert accounts.account_for_identity(ExternalIdentity("https://idp.lu.se", "ada@lu.se")) is None


def test_disabling_an_account_signs_it_out_everywhere(
    accounts: AccountService, sessions: InMemorySessionStore
) -> None:
    account = accounts.create_account("Ada", "ada@lu.se")
    sid = sessions.create(account.id)
    accounts.disable_account(account.id)
    assert sessions.get(sid) is None
    assert accounts.principal(account.id) is None
    assert not accounts.is_active(account.id)
    accounts.enable_account(account.id)
    assert accounts.is_active(account.id)


def test_losing_a_role_signs_the_account_out(accounts: AccountService, sessions: InMemorySessionStore) -> None:
    account = accounts.create_account("Grace", "grace@lu.se", grants=[RoleGrant(Role.COORDINATOR, "FYS")])
    sid = sessions.create(account.id)
    assert not accounts.revoke_role(account.id, Role.COORDINATOR, "KEM")
    assert sessions.get(sid) is not None
    assert accounts.revoke_role(account.id, Role.COORDINATOR, "FYS")
    assert sessions.get(sid) is None


def test_erasure_removes_personal_data_and_credentials(
    accounts: AccountService, credentials: StaffCredentials, store: InMemoryIdentityStore
) -> None:
    account_id, _ = _staff(accounts, credentials)
    accounts.erase_account(account_id)
    erased = store.get_account(account_id)
    assert erased is not None
    assert (erased.display_name, erased.email) == ("", None)
    assert store.password_hash(account_id) is None
    assert store.totp_state(account_id) is None


# the first administrator


def test_first_administrator_is_created_once(
    accounts: AccountService, store: InMemoryIdentityStore, credentials: StaffCredentials, totp: TotpService,
    clock: FixedClock,
) -> None:
    first = create_first_administrator(
        accounts, store, credentials, display_name="Root Admin", email="admin@lu.se", password=PASSWORD
    )
    principal = accounts.principal(first.account.id)
    assert principal is not None
    assert principal.is_administrator
    assert first.totp.uri.startswith("otpauth://totp/")
    assert first.totp.secret not in repr(first)
    signed_in = credentials.sign_in("admin@lu.se", PASSWORD, _current_code(totp, first.totp.secret, clock))
    assert signed_in.id == first.account.id
    with pytest.raises(AlreadyBootstrapped):
        create_first_administrator(
            accounts, store, credentials, display_name="Second", email="second@lu.se", password=PASSWORD
        )


def test_first_administrator_with_a_weak_password_creates_nothing(
    accounts: AccountService, store: InMemoryIdentityStore, credentials: StaffCredentials
) -> None:
    with pytest.raises(WeakPassword):
        create_first_administrator(accounts, store, credentials, display_name="A", email="a@lu.se", password="short")
    assert store.find_account_by_email("a@lu.se") is None
    assert not store.any_administrator()


# passwords


def test_passwords_are_argon2id_and_rehashed_when_parameters_change(
    store: InMemoryIdentityStore, clock: FixedClock, accounts: AccountService, totp: TotpService
) -> None:
    old = StaffCredentials(store, PasswordService(CHEAP), totp, clock)
    account_id, secret = _staff(accounts, old)
    old_hash = store.password_hash(account_id)
    assert old_hash is not None
    assert old_hash.startswith("$argon2id$")
    assert PASSWORD not in old_hash
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    new = StaffCredentials(store, PasswordService(stronger), totp, clock)
    new.sign_in("grace@lu.se", PASSWORD, _current_code(totp, secret, clock))
    new_hash = store.password_hash(account_id)
    assert new_hash is not None
    assert new_hash != old_hash
    assert not stronger.check_needs_rehash(new_hash)


def test_password_policy() -> None:
    service = PasswordService(CHEAP)
    with pytest.raises(WeakPassword) as short:
        service.hash("short")
    assert "password" in short.value.fields
    with pytest.raises(WeakPassword):
        service.hash("x" * 1025)
    assert service.verify(None, PASSWORD) == (False, None)
    assert service.verify("garbage", PASSWORD) == (False, None)


# staff sign-in


def test_staff_sign_in_with_password_and_totp(
    accounts: AccountService, credentials: StaffCredentials, totp: TotpService, clock: FixedClock
) -> None:
    account_id, secret = _staff(accounts, credentials)
    assert credentials.sign_in("Grace@LU.se", PASSWORD, _current_code(totp, secret, clock)).id == account_id


@pytest.mark.parametrize("steps_off", [-1, 1])
def test_a_code_one_step_off_is_accepted(
    accounts: AccountService, credentials: StaffCredentials, totp: TotpService, clock: FixedClock, steps_off: int
) -> None:
    _, secret = _staff(accounts, credentials)
    credentials.sign_in("grace@lu.se", PASSWORD, _current_code(totp, secret, clock, steps_off))


@pytest.mark.parametrize("steps_off", [-3, -2, 2, 3])
def test_a_code_outside_the_window_is_refused(
    accounts: AccountService, credentials: StaffCredentials, totp: TotpService, clock: FixedClock, steps_off: int
) -> None:
    _, secret = _staff(accounts, credentials)
    with pytest.raises(SignInFailed):
        credentials.sign_in("grace@lu.se", PASSWORD, _current_code(totp, secret, clock, steps_off))


def test_a_replayed_totp_code_is_refused_within_its_step(
    accounts: AccountService, credentials: StaffCredentials, totp: TotpService, clock: FixedClock
) -> None:
    _, secret = _staff(accounts, credentials)
    code = _current_code(totp, secret, clock)
    credentials.sign_in("grace@lu.se", PASSWORD, code)
    with pytest.raises(TotpCodeReplayed):
        credentials.sign_in("grace@lu.se", PASSWORD, code)
    # an older code still inside the window is refused too: steps only move forward
    with pytest.raises(TotpCodeReplayed):
        credentials.sign_in("grace@lu.se", PASSWORD, _current_code(totp, secret, clock, -1))
    clock.advance(timedelta(seconds=STEP_SECONDS))
    credentials.sign_in("grace@lu.se", PASSWORD, _current_code(totp, secret, clock))


@pytest.mark.parametrize(
    ("email", "password", "code"),
    [
        ("nobody@lu.se", PASSWORD, "good"),
        ("grace@lu.se", "wrong password here", "good"),
        ("grace@lu.se", PASSWORD, "000000x"),
        ("grace@lu.se", PASSWORD, ""),
        ("", PASSWORD, "good"),
    ],
)
def test_wrong_credentials_all_fail_alike(
    accounts: AccountService, credentials: StaffCredentials, totp: TotpService, clock: FixedClock,
    email: str, password: str, code: str,
) -> None:
    _, secret = _staff(accounts, credentials)
    if code == "good":
        code = _current_code(totp, secret, clock)
    with pytest.raises(SignInFailed) as refused:
        credentials.sign_in(email, password, code)
    assert type(refused.value) is SignInFailed
    assert refused.value.status == 401


def test_a_disabled_staff_member_cannot_sign_in(
    accounts: AccountService, credentials: StaffCredentials, totp: TotpService, clock: FixedClock
) -> None:
    account_id, secret = _staff(accounts, credentials)
    accounts.disable_account(account_id)
    with pytest.raises(AccountDisabled):
        credentials.sign_in("grace@lu.se", PASSWORD, _current_code(totp, secret, clock))


def test_totp_secret_is_stored_sealed_and_never_logged(
    accounts: AccountService, credentials: StaffCredentials, store: InMemoryIdentityStore, totp: TotpService,
    clock: FixedClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    account_id, secret = _staff(accounts, credentials)
    credentials.sign_in("grace@lu.se", PASSWORD, _current_code(totp, secret, clock))
    state = store.totp_state(account_id)
    assert state is not None
    assert secret not in state.secret_encrypted
    assert secret not in repr(state)
    assert totp.open(state.secret_encrypted) == secret
    assert secret not in caplog.text
    other_key = TotpService(SecretBox(derive_key("y" * 40, "totp-secrets")), clock)
    with pytest.raises(ValueError, match="key"):
        other_key.open(state.secret_encrypted)
