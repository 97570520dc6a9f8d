"""How a new member of staff gets going: the set-up link (docs/security.md, "Staff accounts").

An administrator sends it from `/admin/accounts/<id>` (or `flask accounts send-setup-link
EMAIL`); it is mailed through the outbox in the recipient's language. The link opens
`/auth/setup/<token>` on the assessment service:

- GET shows a button only (mail scanners fetch links);
- its POST checks the link (spending nothing) and shows the form: a password chosen twice and a
  new authenticator secret, as text and as a QR code, with a field for a code it now shows;
- the form's POST (`/auth/setup/<token>/finish`) stores the password and the secret through
  `StaffCredentials.set_up` once the code confirms the secret, spends the link, ends the
  account's other sessions and signs the person in; they land on their work.

A wrong code, a weak password or two different passwords re-show the form (422) with the problem
beside its field, the same secret kept (sealed in a hidden field bound to this link) and nothing
stored. A used, expired, replaced or forged link answers a page saying so (410 or 400), nothing
stored. The secret is never logged or stored until confirmed; the pages showing it are not cached.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import segno
from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy.exc import SQLAlchemyError
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from shared.config import Settings
from shared.errors import CimError
from shared.identity.crypto import token_hash
from shared.identity.errors import AccountDisabled, LinkAlreadyUsed, LinkExpired, LinkInvalid, SignInFailed
from shared.identity.models import LANGUAGES, Account
from shared.identity.passwords import MIN_LENGTH, check_password_policy
from shared.outbox import Message
from shared.web import outbox_glue
from shared.web.access import PUBLIC, access, current_caller
from shared.web.auth import identity, sign_in
from shared.web.limits import signin_limited
from shared.web.workspace import landing_path

log = logging.getLogger(__name__)

bp = Blueprint("setup", __name__, url_prefix="/auth/setup", template_folder="templates")

NO_STORE = {"Cache-Control": "no-store"}


def _settings() -> Settings:
    return current_app.config["CIM_SETTINGS"]


# -- sending -------------------------------------------------------------------------------------
def setup_url(token: str) -> str:
    """Where the link leads: the assessment service, where staff work."""
    return f"{_settings().assessment_url.rstrip('/')}/auth/setup/{token}"


def send_setup_link(account: Account) -> bool:
    """Issue a set-up link for `account` and put its mail in the outbox (in the language the
    person chose, else English), then kick the delivery. SetupLinkRefused (a RuleViolated) for a
    student, disabled or address-less account; False if the mail could not be enqueued (logged).
    Needs an app context (a request or the CLI), not a request."""
    links = identity().setup_links
    issued = links.issue(account)
    hours = max(1, int(links.ttl.total_seconds() // 3600))
    chosen = identity().accounts.locale_of(account.id)
    box = outbox_glue.outbox()
    message = Message(
        key=f"staff-setup:{token_hash(issued.token)}",
        template="staff_setup_link",
        to_address=str(account.email),
        to_name=account.display_name or None,
        locale=chosen if chosen in LANGUAGES else "en",
        context={"name": account.display_name or "", "url": setup_url(issued.token), "hours": hours},
        subject_id=account.id,
        # A link the workers could not send before it expires is dropped.
        not_after=box.clock.now() + timedelta(seconds=links.ttl.total_seconds()),
    )
    try:
        outbox_glue.enqueue(message)
    except (CimError, ValueError, SQLAlchemyError):
        log.error("staff set-up link mail not enqueued", exc_info=True)
        return False
    return True


# -- forms ---------------------------------------------------------------------------------------
class StartForm(FlaskForm):
    """The button on the page the link opens: CSRF token only."""


class SetupForm(FlaskForm):
    password = PasswordField(
        _l("New password"),
        [DataRequired(_l("Choose a password.")), Length(max=1024, message=_l("At most 1024 characters."))],
        description=_l("At least %(num)d characters, no spaces at the start or end. A passphrase of "
                       "several words is easy to remember and hard to guess.", num=MIN_LENGTH),
    )
    password_again = PasswordField(_l("The same password again"), [DataRequired(_l("Type the password again."))])
    code = StringField(
        _l("Code from your authenticator app"),
        [DataRequired(_l("Enter the 6-digit code your authenticator app shows now.")), Length(max=10)],
        filters=[lambda v: "".join(v.split()) if isinstance(v, str) else v],
        description=_l("The 6 digits your authenticator app shows for CIM after you added the secret."),
    )
    pending = HiddenField()


def _refusal(exc: Exception) -> tuple[str, int]:
    if isinstance(exc, LinkAlreadyUsed):
        title, message, status = (_("Set-up link already used"),
                                  _("This set-up link has already been used. Sign in with your password and "
                                    "code, or ask an administrator for a new link."), 410)
    elif isinstance(exc, LinkExpired):
        title, message, status = (_("Set-up link expired"),
                                  _("This set-up link has expired. Ask an administrator for a new one."), 410)
    else:
        title, message, status = (_("Set-up link not valid"),
                                  _("This set-up link is not valid: it may have been replaced by a newer one, "
                                    "or the account cannot be set up this way. Ask an administrator for a new "
                                    "link."), 400)
    return render_template("auth/refused.html", title=title, message=message), status


def qr_data_uri(uri: str) -> str:
    """The `otpauth://` URI as an SVG QR code in a data: URI (the CSP allows data: images)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=4))


def _grouped(secret: str) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def _form_page(token: str, form: SetupForm, secret: str, account: Account, status: int) -> Any:
    enrolment = identity().staff.enrolment_of(secret, str(account.email))
    page = render_template("auth/setup_form.html", form=form, token=token, account=account,
                           secret=_grouped(enrolment.secret), qr=qr_data_uri(enrolment.uri))
    return page, status, NO_STORE


# -- the pages -----------------------------------------------------------------------------------
@bp.get("/<string(maxlength=1000):token>")
@access(PUBLIC)
def confirm(token: str) -> str:
    # Mail scanners fetch links: a GET only shows a button; nothing is looked up or spent.
    return render_template("auth/setup_confirm.html", form=StartForm(formdata=None), token=token)


@bp.post("/<string(maxlength=1000):token>")
@access(PUBLIC)
@signin_limited
def start(token: str) -> Any:
    if not StartForm().validate():  # CSRF
        return _expired_form()
    try:
        account = identity().setup_links.check(token)
    except (LinkInvalid, AccountDisabled, SignInFailed) as exc:
        log.info("staff set-up link refused: %s", type(exc).__name__)
        return _refusal(exc)
    enrolment = identity().staff.new_enrolment(str(account.email))
    form = SetupForm(formdata=None, pending=identity().staff.seal_pending(enrolment.secret, token_hash(token)))
    return _form_page(token, form, enrolment.secret, account, 200)


def _expired_form() -> tuple[str, int]:
    return render_template("auth/refused.html", title=_("Set up your sign-in"),
                           message=_("The form expired. Open the link from your e-mail again.")), 400


@bp.post("/<string(maxlength=1000):token>/finish")
@access(PUBLIC)
@signin_limited
def finish(token: str) -> Any:
    form = SetupForm()
    ident = identity()
    try:
        account = ident.setup_links.check(token)
    except (LinkInvalid, AccountDisabled, SignInFailed) as exc:
        log.info("staff set-up link refused: %s", type(exc).__name__)
        return _refusal(exc)
    secret = ident.staff.open_pending(form.pending.data or "", token_hash(token))
    if secret is None:  # a forged or another link's hidden field: start again from the link
        return _expired_form()
    if not form.validate():  # a field left empty (CSRF is checked before the view)
        return _form_page(token, form, secret, account, 422)
    password = form.password.data or ""
    try:
        check_password_policy(password)
    except CimError:
        form.password.errors = [_("Choose a password of at least %(num)d characters, with no spaces at the "
                                  "start or end.", num=MIN_LENGTH)]
    if not form.password.errors and password != form.password_again.data:
        form.password_again.errors = [_("The two passwords are not the same. Type the same password twice.")]
    step = ident.staff.confirming_step(secret, form.code.data or "")
    if step is None:
        form.code.errors = [_("This code does not match the secret. Check that you added the secret shown "
                              "here, then enter the code your app shows now.")]
    if step is None or form.password.errors or form.password_again.errors:
        return _form_page(token, form, secret, account, 422)
    try:
        account = ident.setup_links.spend(token)  # single use: of two at once, one is refused here
    except (LinkInvalid, AccountDisabled, SignInFailed) as exc:
        return _refusal(exc)
    ident.staff.set_up(account.id, password, secret, step)
    ident.sessions.revoke_all(account.id)  # a lost phone: whoever holds it is signed out
    log.info("staff set-up done", extra={"account_id": account.id})
    sign_in(account, "password+totp")
    principal = current_caller().principal
    flash(_("Your password and authenticator are set up. You are signed in."), "success")
    target = landing_path(principal) or url_for("auth.account")
    return redirect(target, code=303)
