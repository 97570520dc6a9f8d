"""Registering for CIM: the student's record, their account and the sign-in mail, as one use case.

The register page parses its form, calls `Registration`, and renders what it answers; the rules
live here, out of the web layer (no Flask):

* Anonymous (the embedded default, no SSO): the student and their account are made together and
  a sign-in link is mailed. An address that already has an account is not registered again: it
  gets a link instead (`EmailLinkService.request_link`, so never for staff). Both paths answer
  alike *and take the same time*: the call lasts at least `min_duration` (issue 18: the known
  address answered in ~12 ms, a new one in ~23 ms, which told who is registered).
* Signed in without a student record (a first SSO sign-in): register and attach the account.

Either way the interface language in use (`locale`) becomes the account's language, the one
every e-mail to the student is written in until they choose another (shared.identity).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from intake_service.domain import RegisterStudent
from intake_service.services import IntakeServices, RequestContext
from shared.identity.errors import IdentityConflict
from shared.identity.models import LANGUAGES, Account, Role, RoleGrant
from shared.identity.wiring import Identity

#: How long an anonymous registration takes at least, whichever path it takes. Well above a real
#: registration (~25 ms on the embedded default) so the slower path never shows through.
MIN_DURATION_SECONDS = 0.3


class LinkSender(Protocol):
    """Mails a sign-in link (the web layer knows the URL and the reader's language)."""

    def __call__(self, account: Account, token: str, *, key: str | None) -> object:
        """`key` names the mail for the mailer's ledger (None: one derived from the token)."""
        ...


@dataclass(frozen=True)
class Registered:
    """What the page shows next: `linked` -> My CIM of `student_id` (the session must rotate: a
    new role); otherwise "check your e-mail" (whether or not anything was registered)."""

    linked: bool
    student_id: str | None = None


class Registration:
    """The register use case over the intake services, the identity core and a link sender."""

    def __init__(
        self,
        intake: IntakeServices,
        identity: Identity,
        send_link: LinkSender,
        *,
        min_duration: float = MIN_DURATION_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._intake = intake
        self._identity = identity
        self._send_link = send_link
        self._min_duration = min_duration
        self._monotonic = monotonic
        self._sleep = sleep

    def register_anonymous(self, command: RegisterStudent, ctx: RequestContext,
                           locale: str | None = None) -> Registered:
        """Register and mail a link, or (known address) only mail a link; the same answer either
        way, after at least `min_duration`. Domain refusals (ValidationFailed, RuleViolated,
        IdempotencyKeyReused) propagate, padded the same."""
        started = self._monotonic()
        try:
            return self._register_anonymous(command, ctx, locale)
        finally:
            left = self._min_duration - (self._monotonic() - started)
            if left > 0:
                self._sleep(left)

    def _register_anonymous(self, command: RegisterStudent, ctx: RequestContext, locale: str | None) -> Registered:
        email = command.email
        if self._identity.store.find_account_by_email(email) is not None:
            issued = self._identity.links.request_link(email)  # None for staff and disabled accounts
            if issued is not None:
                self._send_link(issued.account, issued.token, key=None)
            return Registered(linked=False)
        outcome = self._intake.register_student(command, ctx)
        student_id = outcome.result["student_id"]
        try:
            account = self._identity.accounts.create_account(
                command.name,
                email,
                student_id=student_id,
                grants=[RoleGrant(Role.STUDENT, command.department)],
                locale=locale,
            )
        except IdentityConflict:
            return Registered(linked=False)  # a double submit in flight: the first one sends the mail
        issued = self._identity.links.issue(account)
        self._send_link(account, issued.token, key=f"registered:{student_id}")
        return Registered(linked=False, student_id=student_id)

    def register_signed_in(self, account_id: str, command: RegisterStudent, ctx: RequestContext,
                           locale: str | None = None) -> Registered:
        """Register the signed-in account's student and give the account the student role; the
        language in use becomes the account's."""
        outcome = self._intake.register_student(command, ctx)
        student_id = outcome.result["student_id"]
        try:
            self._identity.accounts.attach_student(account_id, student_id, command.department)
        except IdentityConflict:
            # a double click: the first request linked this very student already
            account = self._identity.accounts.account_for_student(student_id)
            if account is None or account.id != account_id:
                raise
        if locale in LANGUAGES:
            self._identity.accounts.set_locale(account_id, str(locale))
        return Registered(linked=True, student_id=student_id)
