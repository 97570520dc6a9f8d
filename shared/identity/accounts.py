"""Use cases on accounts: create, grant and revoke roles, disable, erase, link SSO identities,
staff password + TOTP sign-in, and the command that creates the first administrator."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.clock import Clock
from shared.errors import NotFound, ValidationFailed
from shared.identity.errors import (
    AccountDisabled,
    AlreadyBootstrapped,
    IdentityConflict,
    SignInFailed,
    SignInThrottled,
    TotpCodeReplayed,
)
from shared.identity.models import LANGUAGES, Account, ExternalIdentity, Principal, Role, RoleGrant
from shared.identity.passwords import PasswordService, check_password_policy
from shared.identity.sessions import SessionStore
from shared.identity.store import IdentityStore, normalize_email
from shared.identity.throttle import SignInThrottle
from shared.identity.totp import TotpEnrolment, TotpService


def _new_id() -> str:
    return str(uuid.uuid4())


def _check_email(email: str) -> str:
    email = normalize_email(email)
    local, _, domain = email.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in email) or len(email) > 320:
        raise ValidationFailed("invalid e-mail address", {"email": ["not an e-mail address"]})
    return email


def _grant(role: Role | str, department: str | None) -> RoleGrant:
    try:
        return RoleGrant(Role(role), department)
    except ValueError as exc:
        field = "role" if "is not a valid Role" in str(exc) else "department"
        raise ValidationFailed("invalid role grant", {field: [str(exc)]}) from exc


class AccountService:
    """Accounts and their role grants. `sessions`, when given, is told to sign an account out
    everywhere when it is disabled, erased or loses a role."""

    def __init__(
        self,
        store: IdentityStore,
        clock: Clock,
        *,
        sessions: SessionStore | None = None,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self._store = store
        self._clock = clock
        self._sessions = sessions
        self._new_id = new_id

    @property
    def clock(self) -> Clock:
        """The identity core's clock (the outbox stamps sign-in mails by it)."""
        return self._clock

    def create_account(
        self,
        display_name: str,
        email: str | None,
        *,
        student_id: str | None = None,
        grants: Iterable[RoleGrant] = (),
        locale: str | None = None,
    ) -> Account:
        """IdentityConflict if the e-mail or the student id already has an account. `locale`: the
        interface language in use when the account is made (registration), stored as the
        person's language if it is one of LANGUAGES (anything else is ignored)."""
        display_name = display_name.strip()
        if not display_name or len(display_name) > 200:
            raise ValidationFailed("invalid display name", {"display_name": ["1 to 200 characters"]})
        if student_id is not None:
            try:
                student_id = str(uuid.UUID(student_id))
            except ValueError as exc:
                raise ValidationFailed("invalid student id", {"student_id": ["not a uuid"]}) from exc
        account = Account(
            id=self._new_id(),
            display_name=display_name,
            email=_check_email(email) if email else None,
            created_at=self._clock.now(),
            student_id=student_id,
        )
        self._store.add_account(account)
        for grant in grants:
            self._store.grant_role(account.id, grant, self._clock.now())
        if locale in LANGUAGES:
            self._store.set_locale(account.id, str(locale), self._clock.now())
        return account

    def set_locale(self, account_id: str, locale: str) -> bool:
        """The person's language for the interface and every e-mail to them (True if it
        changed). ValidationFailed for a language CIM does not speak; NotFound for no account."""
        if locale not in LANGUAGES:
            raise ValidationFailed("unknown language", {"locale": [f"one of {', '.join(LANGUAGES)}"]})
        self._require(account_id)
        return self._store.set_locale(account_id, locale, self._clock.now())

    def locale_of(self, account_id: str) -> str | None:
        """The person's stored language, or None (never chosen: mail falls back to English)."""
        return self._store.locale_of(account_id)

    def _require(self, account_id: str) -> Account:
        account = self._store.get_account(account_id)
        if account is None:
            raise NotFound("no such account")
        return account

    def grant_role(self, account_id: str, role: Role | str, department: str | None = None) -> RoleGrant:
        """A privilege change: the app should rotate the session of the account if it is signed in."""
        self._require(account_id)
        grant = _grant(role, department)
        self._store.grant_role(account_id, grant, self._clock.now())
        return grant

    def revoke_role(self, account_id: str, role: Role | str, department: str | None = None) -> bool:
        """Taking a role away signs the account out everywhere, so no session keeps stale power."""
        removed = self._store.revoke_role(account_id, _grant(role, department))
        if removed and self._sessions is not None:
            self._sessions.revoke_all(account_id)
        return removed

    def principal(self, account_id: str) -> Principal | None:
        """The account with its grants, or None if it does not exist or is disabled."""
        account = self._store.get_account(account_id)
        if account is None or account.disabled:
            return None
        return Principal(account, self._store.grants_of(account_id))

    def is_active(self, account_id: str) -> bool:
        """For SessionStore(account_active=...)."""
        account = self._store.get_account(account_id)
        return account is not None and not account.disabled

    def disable_account(self, account_id: str) -> None:
        self._require(account_id)
        self._store.set_disabled(account_id, True)
        if self._sessions is not None:
            self._sessions.revoke_all(account_id)

    def enable_account(self, account_id: str) -> None:
        self._require(account_id)
        self._store.set_disabled(account_id, False)

    def erase_account(self, account_id: str) -> None:
        """GDPR erasure of what the identity core holds: name, e-mail, credentials, SSO links."""
        self._require(account_id)
        self._store.erase_personal_data(account_id, self._clock.now())
        if self._sessions is not None:
            self._sessions.revoke_all(account_id)

    def link_identity(self, account_id: str, identity: ExternalIdentity) -> None:
        """IdentityConflict if (issuer, subject) already belongs to another account."""
        self._require(account_id)
        self._store.link_identity(account_id, identity, self._clock.now())

    def account_for_identity(self, identity: ExternalIdentity) -> Account | None:
        """The account an SSO identity signs in as. Looked up by (issuer, subject) only."""
        return self._store.find_account_by_identity(identity)

    def account_for_student(self, student_id: str) -> Account | None:
        return self._store.find_account_by_student(student_id)

    def attach_student(self, account_id: str, student_id: str, department: str | None = None) -> Account:
        """Make a signed-in account (e.g. a first SSO sign-in) the account of a newly registered
        student, and grant it the student role in `department`. Idempotent for the same pair;
        IdentityConflict if the account already has another student or the student another
        account. A privilege change: the app rotates the session afterwards."""
        account = self._require(account_id)
        try:
            student_id = str(uuid.UUID(student_id))
        except ValueError as exc:
            raise ValidationFailed("invalid student id", {"student_id": ["not a uuid"]}) from exc
        if account.student_id != student_id and (
            account.student_id is not None or not self._store.attach_student(account_id, student_id)
        ):
            raise IdentityConflict("this account already belongs to another student", field="student_id")
        if department is not None:
            self._store.grant_role(account_id, _grant(Role.STUDENT, department), self._clock.now())
        return self._require(account_id)


class StaffCredentials:
    """Password (argon2) plus TOTP for staff when no SSO is configured."""

    def __init__(
        self,
        store: IdentityStore,
        passwords: PasswordService,
        totp: TotpService,
        clock: Clock,
        *,
        throttle: SignInThrottle | None = None,
    ) -> None:
        self._store = store
        self._passwords = passwords
        self._totp = totp
        self._clock = clock
        self._throttle = throttle

    def set_password(self, account_id: str, password: str) -> None:
        """WeakPassword (a ValidationFailed) if the policy refuses it."""
        self._store.set_password_hash(account_id, self._passwords.hash(password), self._clock.now())

    def enrol_totp(self, account_id: str, account_label: str) -> TotpEnrolment:
        """A new secret, stored sealed; the returned enrolment is shown once and never logged."""
        enrolment = self._totp.new_enrolment(account_label)
        self._store.set_totp_secret(account_id, self._totp.seal(enrolment.secret), self._clock.now())
        return enrolment

    def new_enrolment(self, account_label: str) -> TotpEnrolment:
        """A new TOTP secret, NOT stored: the set-up page shows it and stores it (set_up) only
        once a code from the person's authenticator confirms it."""
        return self._totp.new_enrolment(account_label)

    def enrolment_of(self, secret: str, account_label: str) -> TotpEnrolment:
        """The enrolment (with its `otpauth://` URI for the QR code) of a pending secret."""
        return self._totp.enrolment(secret, account_label)

    def seal_pending(self, secret: str, bound_to: str) -> str:
        """The secret of an enrolment in progress, sealed for a hidden form field and bound to
        `bound_to` (the set-up link's hash): it opens for that link only."""
        return self._totp.seal(f"{bound_to}:{secret}")

    def open_pending(self, sealed: str, bound_to: str) -> str | None:
        """The secret seal_pending() sealed for `bound_to`, or None (forged, another link's)."""
        try:
            plain = self._totp.open(sealed)
        except (ValueError, UnicodeError):
            return None
        prefix, _, secret = plain.partition(":")
        return secret if prefix == bound_to and secret else None

    def confirming_step(self, secret: str, code: str) -> int | None:
        """The time step of `code` for a secret not stored yet, or None if it does not match."""
        return self._totp.matching_step(secret, code)

    def set_up(self, account_id: str, password: str, secret: str, step: int) -> None:
        """A member of staff's new password and confirmed authenticator (set-up link), replacing
        any earlier ones; the confirming code's step counts as used, so it cannot sign in again.
        WeakPassword (nothing stored) if the policy refuses the password."""
        check_password_policy(password)
        now = self._clock.now()
        self.set_password(account_id, password)
        self._store.set_totp_secret(account_id, self._totp.seal(secret), now)
        self._store.advance_totp_step(account_id, step)

    def sign_in(self, email: str, password: str, totp_code: str) -> Account:
        """The account, or SignInFailed (AccountDisabled, TotpCodeReplayed, SignInThrottled are
        subclasses). Unknown e-mail, wrong password and wrong code all raise plain SignInFailed;
        with a throttle, the failure that completes a series raises SignInThrottled instead (with
        the account to tell, the first time), and so does every attempt while the lock lasts,
        before any credential is checked."""
        throttle = self._throttle
        if throttle is None:
            return self._check(email, password, totp_code)
        wait = throttle.locked_for(email)
        if wait:
            raise SignInThrottled(wait)
        try:
            account = self._check(email, password, totp_code)
        except SignInFailed as exc:
            lockout = throttle.failed(email)
            if lockout is None:
                raise
            holder = self._store.find_account_by_email(email) if email else None
            notify = holder if lockout.first and holder is not None and holder.email else None
            raise SignInThrottled(lockout.seconds, notify) from exc
        throttle.succeeded(email)
        return account

    def _check(self, email: str, password: str, totp_code: str) -> Account:
        account = self._store.find_account_by_email(email) if email else None
        stored = self._store.password_hash(account.id) if account else None
        ok, new_hash = self._passwords.verify(stored, password)  # hashes even for unknown e-mails
        if account is None or not ok:
            raise SignInFailed()
        if new_hash is not None:
            self._store.set_password_hash(account.id, new_hash, self._clock.now())
        state = self._store.totp_state(account.id)
        if state is None:
            raise SignInFailed("no second factor enrolled")
        step = self._totp.matching_step(self._totp.open(state.secret_encrypted), totp_code)
        if step is None:
            raise SignInFailed()
        if not self._store.advance_totp_step(account.id, step):
            raise TotpCodeReplayed("code already used")
        if account.disabled:
            raise AccountDisabled("account disabled")
        return account


@dataclass(frozen=True)
class FirstAdministrator:
    """What the bootstrap command prints once: the account and the TOTP enrolment."""

    account: Account
    totp: TotpEnrolment


def create_first_administrator(
    accounts: AccountService,
    store: IdentityStore,
    credentials: StaffCredentials,
    *,
    display_name: str,
    email: str,
    password: str,
) -> FirstAdministrator:
    """The `create-admin` command's body: refuses (AlreadyBootstrapped) once any administrator exists."""
    if store.any_administrator():
        raise AlreadyBootstrapped("an administrator already exists; grant roles from the admin pages")
    check_password_policy(password)  # before creating anything
    account = accounts.create_account(display_name, email, grants=[RoleGrant(Role.ADMINISTRATOR, None)])
    credentials.set_password(account.id, password)
    enrolment = credentials.enrol_totp(account.id, normalize_email(email))
    return FirstAdministrator(account, enrolment)
