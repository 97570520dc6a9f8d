"""Time-based one-time passwords (RFC 6238 via pyotp) with the injected clock and replay refusal."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import pyotp

from shared.clock import Clock
from shared.identity.crypto import SecretBox

STEP_SECONDS = 30
DIGITS = 6


@dataclass(frozen=True)
class TotpEnrolment:
    """Shown once to the staff member (as a QR code of `uri`), never logged."""

    secret: str = field(repr=False)
    uri: str = field(repr=False)


class TotpService:
    """Makes secrets, seals them for storage and finds the time step a code belongs to."""

    def __init__(self, box: SecretBox, clock: Clock, *, issuer_name: str = "CIM", window: int = 1) -> None:
        self._box = box
        self._clock = clock
        self._issuer = issuer_name
        self._window = window

    def new_enrolment(self, account_label: str) -> TotpEnrolment:
        return self.enrolment(pyotp.random_base32(), account_label)

    def enrolment(self, secret: str, account_label: str) -> TotpEnrolment:
        """The enrolment (secret and `otpauth://` URI) of an existing secret."""
        uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
            name=account_label, issuer_name=self._issuer
        )
        return TotpEnrolment(secret, uri)

    def seal(self, secret: str) -> str:
        return self._box.seal(secret)

    def open(self, sealed: str) -> str:
        return self._box.open(sealed)

    def matching_step(self, secret: str, code: str) -> int | None:
        """The time step (within ±window of now) whose code equals `code`, else None. The caller
        must then record the step as used (IdentityStore.advance_totp_step) to refuse replays."""
        code = code.strip().replace(" ", "")
        if len(code) != DIGITS or not code.isdigit():
            return None
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
        now_step = int(self._clock.now().timestamp()) // STEP_SECONDS
        found = None
        # Check every candidate (no early exit) so timing does not tell which step matched.
        for step in range(now_step - self._window, now_step + self._window + 1):
            if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
                found = step
        return found

    def code_at_step(self, secret: str, step: int) -> str:
        """For tests and the enrolment confirmation page."""
        return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(step * STEP_SECONDS)
