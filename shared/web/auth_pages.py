"""The sign-in pages both apps serve under /auth: a chooser, e-mail links for students, password
plus TOTP for staff, the university's OpenID Connect sign-in, sign-out and the account page.

Every refusal is answered without telling which part was wrong or whether an account exists;
every sign-in starts a new session (shared.web.auth.sign_in rotates it); `?next=` is honoured only
for this site's own pages (no open redirect).
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import force_locale, get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response
from wtforms import EmailField, HiddenField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, Length, ValidationError

from shared.config import Settings
from shared.errors import CimError
from shared.identity.crypto import token_hash
from shared.identity.errors import (
    AccountDisabled,
    IdentityConflict,
    LinkAlreadyUsed,
    LinkExpired,
    LinkInvalid,
    OidcError,
    OidcProviderError,
    SignInFailed,
    SignInThrottled,
)
from shared.identity.models import LANGUAGES, Account, Principal, Role
from shared.identity.oidc import AuthorizationRequest
from shared.mail import Mailer
from shared.outbox import Message
from shared.web import outbox_glue
from shared.web.access import PUBLIC, SIGNED_IN, access, current_caller
from shared.web.auth import identity, sign_in, sign_out
from shared.web.limits import mail_allowed, signin_limited
from shared.web.workspace import landing_path

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__, url_prefix="/auth", template_folder="templates")

OIDC_PENDING = "cim_oidc_pending"
NEXT_MAX = 2000

METHOD_NAMES = {
    "email-link": _l("a sign-in link sent by e-mail"),
    "password+totp": _l("password and authenticator code"),
    "oidc": _l("university account"),
}
#: Each language by its own name (the select shows them so, whatever the page's language).
LANGUAGE_NAMES = {"en": "English", "sv": "Svenska"}
LANG_COOKIE_SECONDS = 365 * 24 * 3600

ROLE_NAMES = {
    Role.STUDENT: _l("Student"),
    Role.ASSESSOR: _l("Assessor"),
    Role.COORDINATOR: _l("Coordinator"),
    Role.ADMINISTRATOR: _l("Administrator"),
}


def _settings() -> Settings:
    return current_app.config["CIM_SETTINGS"]


def mailer() -> Mailer:
    return current_app.extensions["cim.mailer"]


def own_url() -> str:
    """This app's public address (the links it e-mails point back to it)."""
    settings = _settings()
    return settings.assessment_url if current_app.config.get("CIM_APP_NAME") == "assessment" else settings.intake_url


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def safe_next(value: str | None) -> str | None:
    """`value` if it leads to a page of this site: a relative path ("/..." but not "//..." or
    "/\\..."), or an absolute URL on one of the two apps' own configured origins. Else None."""
    if not value or len(value) > NEXT_MAX:
        return None
    if any(ord(c) < 32 or ord(c) == 127 or c == "\\" for c in value):
        return None
    if value.startswith("/") and not value.startswith("//"):
        parts = urlsplit(value)
        return value if not parts.scheme and not parts.netloc else None
    settings = _settings()
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc and not parts.username and not parts.password:
        own = {_origin(settings.intake_url), _origin(settings.assessment_url)}
        if _origin(value) in own:
            return value
    return None


def landing(principal: Principal | None, account: Account) -> str:
    """Where a sign-in ends without a `next`: My CIM for a student, the page of their work on the
    assessment service for staff (the queue; the outbox for an administrator), the registration
    page for an account that is neither yet."""
    views = current_app.view_functions
    intake = _settings().intake_url.rstrip("/")
    if account.student_id:
        if "forms.my_cim" in views:
            return url_for("forms.my_cim", student_id=account.student_id)
        return f"{intake}/students/{account.student_id}"
    work = landing_path(principal)
    if work is not None:  # staff work on the assessment service (shared/web/workspace.py)
        if "pages.review_queue" in views:
            return work
        return _settings().assessment_url.rstrip("/") + work
    if principal is not None and any(g.role is not Role.STUDENT for g in principal.grants):
        return "/"
    return url_for("forms.register") if "forms.register" in views else f"{intake}/register"


def _next_arg() -> str | None:
    return safe_next(request.values.get("next"))


def _done(account: Account, method: str, next_url: str | None) -> Response:
    sign_in(account, method)
    principal = current_caller().principal
    flash(_("You are signed in."), "success")
    return redirect(next_url or landing(principal, account), code=303)


def _locale() -> str:
    return str(get_locale() or "en")


def mail_locale(account: Account) -> str:
    """The language of a mail to `account`: the one they chose, else the page's language now."""
    chosen = identity().accounts.locale_of(account.id)
    if chosen in LANGUAGES:
        return str(chosen)
    current = _locale()
    return current if current in LANGUAGES else "en"


# -- forms -----------------------------------------------------------------------------------------
def _email_shape(form: FlaskForm, field: Any) -> None:
    value = (field.data or "").strip()
    local, _at, domain = value.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in value):
        raise ValidationError(_("Enter an e-mail address like name@example.org."))


class LinkRequestForm(FlaskForm):
    email = EmailField(
        _l("E-mail address"),
        [DataRequired(_l("Enter your e-mail address.")), Length(max=254), _email_shape],
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
    )
    next = HiddenField()


class StaffSignInForm(FlaskForm):
    email = EmailField(
        _l("E-mail address"),
        [DataRequired(_l("Enter your e-mail address.")), Length(max=254)],
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
    )
    password = PasswordField(_l("Password"), [DataRequired(_l("Enter your password.")), Length(max=1000)])
    code = StringField(
        _l("Code from your authenticator app"),
        [DataRequired(_l("Enter the 6-digit code from your authenticator app.")), Length(max=10)],
        filters=[lambda v: "".join(v.split()) if isinstance(v, str) else v],
    )
    next = HiddenField()


class ConfirmForm(FlaskForm):
    next = HiddenField()


class PlainForm(FlaskForm):
    """A button-only form (sign out): CSRF token only."""


class LanguageForm(FlaskForm):
    """The person's language: of the pages (the `lang` cookie) and of every e-mail to them."""

    locale = SelectField(
        _l("Language for CIM and its e-mail"),
        choices=[SelectChoice(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        validators=[AnyOf(LANGUAGES, message=_l("Choose English or Svenska."))],
        validate_choice=False,  # AnyOf says it in words the person reads
    )


def _chooser(
    link_form: LinkRequestForm | None = None, staff_form: StaffSignInForm | None = None, status: int = 200
) -> tuple[str, int]:
    next_url = _next_arg()
    link_form = link_form or LinkRequestForm(formdata=None, prefix="link", next=next_url or "")
    staff_form = staff_form or StaffSignInForm(formdata=None, prefix="staff", next=next_url or "")
    oidc_url = None
    if identity().oidc is not None:
        if current_app.config.get("CIM_APP_NAME") == "assessment":
            # The provider knows one callback: the intake app's. One session serves both apps.
            target = next_url or "/"
            if target.startswith("/"):
                target = _settings().assessment_url.rstrip("/") + target
            oidc_url = f"{_settings().intake_url.rstrip('/')}/auth/oidc/start?{urlencode({'next': target})}"
        else:
            oidc_url = url_for("auth.oidc_start", next=next_url) if next_url else url_for("auth.oidc_start")
    return (
        render_template(
            "auth/sign_in.html", link_form=link_form, staff_form=staff_form, oidc_url=oidc_url, caller=current_caller()
        ),
        status,
    )


def _refusal(title: str, message: str, status: int) -> tuple[str, int]:
    return render_template("auth/refused.html", title=title, message=message), status


# -- the chooser -----------------------------------------------------------------------------------
@bp.get("/sign-in")
@access(PUBLIC)
def sign_in_page() -> Any:
    return _chooser()


# -- students: e-mail links ------------------------------------------------------------------------
def send_sign_in_link(account: Account, token: str, next_url: str | None, *, key: str | None = None) -> bool:
    """Put a sign-in link mail for `account` in the outbox (keyed by the link: the same link is
    never mailed twice) and kick its delivery; the web process itself sends nothing. A link the
    workers could not send before it expires is dropped. False if there is no address or the
    mail could not be enqueued (logged)."""
    if not account.email:
        return False
    if not mail_allowed("sign-in-link", account.email):
        # Past the sign-in limit for this address: nothing is sent, and the page answers as usual.
        log.info("sign-in link mail not sent: the recipient's limit is reached")
        return False
    url = f"{own_url().rstrip('/')}/auth/link/{token}"
    if next_url:
        url += "?" + urlencode({"next": next_url})
    minutes = _settings().email_link_minutes
    box = outbox_glue.outbox()
    message = Message(
        key=key or f"sign-in:{token_hash(token)}",
        template="sign_in_link",
        to_address=account.email,
        to_name=account.display_name or None,
        locale=mail_locale(account),
        context={"name": account.display_name or "", "url": url, "minutes": minutes},
        subject_id=account.id,
        not_after=box.clock.now() + timedelta(minutes=minutes),
    )
    try:
        outbox_glue.enqueue(message)
    except (CimError, ValueError, SQLAlchemyError):
        log.error("sign-in link mail not enqueued", exc_info=True)
        return False
    return True


def send_lockout_notice(account: Account, seconds: int) -> bool:
    """Tell a member of staff that sign-ins to their account were paused after failed attempts
    (in English and Swedish: who tried is not who reads it). A failure is logged."""
    if not account.email:
        return False
    message = Message(
        key=f"sign-in-locked:{account.id}:{secrets.token_hex(8)}",  # one notice per lock series
        template="sign_in_locked",
        to_address=account.email,
        to_name=account.display_name or None,
        locale="en",  # the template holds both languages
        context={"name": account.display_name or "", "minutes": max(1, -(-seconds // 60)),
                 "sign_in_url": f"{own_url().rstrip('/')}/auth/sign-in"},
        subject_id=account.id,
    )
    try:
        outbox_glue.enqueue(message)
    except (CimError, ValueError, SQLAlchemyError):
        log.error("sign-in lockout notice not enqueued", exc_info=True)
        return False
    return True


#: How long a link request takes at least, whichever address it names: enqueueing a mail (one
#: write to the identity database, a few ms) must not tell a known address from an unknown one.
LINK_REQUEST_MIN_SECONDS = 0.1


def request_link_for(email: str, next_url: str | None) -> None:
    """Mail a link if `email` belongs to an active student account; otherwise do nothing. The
    caller answers alike either way, and after the same time (at least LINK_REQUEST_MIN_SECONDS;
    app.config["CIM_LINK_REQUEST_MIN_SECONDS"] overrides it)."""
    started = time.monotonic()
    try:
        issued = identity().links.request_link(email)
        if issued is not None:
            send_sign_in_link(issued.account, issued.token, next_url)
    finally:
        left = current_app.config.get("CIM_LINK_REQUEST_MIN_SECONDS", LINK_REQUEST_MIN_SECONDS) - (
            time.monotonic() - started)
        if left > 0:
            time.sleep(left)


@bp.post("/link")
@access(PUBLIC)
@signin_limited
def request_link() -> Any:
    form = LinkRequestForm(prefix="link")
    if not form.validate():
        return _chooser(link_form=form, status=422)
    request_link_for(form.email.data, safe_next(form.next.data))
    return redirect(url_for("auth.check_email"), code=303)


@bp.get("/check-email")
@access(PUBLIC)
def check_email() -> str:
    """After asking for a link, or after registering (`?registered=1`: what happens next). The
    same page whether or not the address had an account: it never tells who is registered."""
    return render_template("auth/check_email.html", minutes=_settings().email_link_minutes,
                           registered=request.args.get("registered") == "1")


@bp.get("/link/<string(maxlength=1000):token>")
@access(PUBLIC)
def confirm_link(token: str) -> str:
    # Mail scanners fetch links: a GET only shows a button; the POST signs in.
    form = ConfirmForm(formdata=None, next=_next_arg() or "")
    return render_template("auth/confirm_link.html", form=form, token=token)


@bp.post("/link/<string(maxlength=1000):token>")
@access(PUBLIC)
@signin_limited
def redeem_link(token: str) -> Any:
    form = ConfirmForm()
    if not form.validate():  # CSRF
        return _refusal(_("Sign-in link"), _("The form expired. Open the link from your e-mail again."), 400)
    try:
        account = identity().links.redeem(token)
    except LinkExpired:
        return _refusal(_("Sign-in link expired"), _("This sign-in link has expired. Ask for a new one."), 410)
    except LinkAlreadyUsed:
        return _refusal(
            _("Sign-in link already used"), _("This sign-in link has already been used. Ask for a new one."), 410
        )
    except (LinkInvalid, AccountDisabled, SignInFailed):
        return _refusal(_("Sign-in link not valid"), _("This sign-in link is not valid. Ask for a new one."), 400)
    return _done(account, "email-link", safe_next(form.next.data))


# -- staff: password + TOTP ------------------------------------------------------------------------
@bp.post("/staff")
@access(PUBLIC)
@signin_limited
def staff_sign_in() -> Any:
    form = StaffSignInForm(prefix="staff")
    if not form.validate():
        return _chooser(staff_form=form, status=422)
    try:
        account = identity().staff.sign_in(form.email.data, form.password.data, form.code.data)
    except SignInThrottled as exc:
        # Says neither which part was wrong nor whether the address has an account.
        log.info("staff sign-in refused: too many failures for this address")
        if exc.notify is not None:
            send_lockout_notice(exc.notify, exc.retry_after)
        form.password.data = ""
        form.code.data = ""
        minutes = max(1, -(-exc.retry_after // 60))
        form.form_errors.append(
            ngettext(
                "Too many failed sign-in attempts for this account. Wait %(num)d minute and try again.",
                "Too many failed sign-in attempts for this account. Wait %(num)d minutes and try again.",
                minutes,
            )
        )
        page, status = _chooser(staff_form=form, status=429)
        return page, status, {"Retry-After": str(exc.retry_after)}
    except SignInFailed as exc:
        log.info("staff sign-in refused: %s", type(exc).__name__)
        form.password.data = ""
        form.code.data = ""
        form.form_errors.append(_("The e-mail address, password or code is not right. Try again."))
        return _chooser(staff_form=form, status=401)
    return _done(account, "password+totp", safe_next(form.next.data))


# -- OpenID Connect --------------------------------------------------------------------------------
@bp.get("/oidc/start")
@access(PUBLIC)
@signin_limited
def oidc_start() -> Any:
    rp = identity().oidc
    if rp is None:
        return _refusal(_("University sign-in"), _("Sign-in with a university account is not set up here."), 404)
    try:
        pending = rp.begin()
    except OidcError:
        log.error("OIDC sign-in could not start", exc_info=True)
        return _refusal(
            _("University sign-in"), _("The university sign-in is not reachable right now. Try again later."), 503
        )
    # The request (state, nonce, PKCE verifier) waits in the signed form-session cookie of this
    # browser: a callback from another browser finds nothing to match.
    session[OIDC_PENDING] = {"request": pending.to_dict(), "next": _next_arg() or ""}
    return redirect(pending.url, code=303)


def _account_for(result: Any) -> Account:
    """The account of an SSO identity: found by (issuer, subject) only, else a new account with
    no roles. The e-mail is kept only if the provider verified it and nobody else has it; it is
    never used to find or link an account."""
    accounts = identity().accounts
    found = accounts.account_for_identity(result.identity)
    if found is not None:
        return found
    name = (result.name or "").strip()[:200] or (result.email or "").split("@")[0] or _("Student")
    email = result.email if (result.email and result.email_verified) else None
    try:
        account = accounts.create_account(name, email, locale=_locale())
    except CimError:  # the address is taken (or unusable): keep the account, without it
        account = accounts.create_account(name, None, locale=_locale())
    try:
        accounts.link_identity(account.id, result.identity)
    except IdentityConflict:  # a parallel first sign-in won the race: use its account
        accounts.disable_account(account.id)
        winner = accounts.account_for_identity(result.identity)
        if winner is None:
            raise
        return winner
    return account


@bp.get("/oidc/callback")
@access(PUBLIC)
@signin_limited
def oidc_callback() -> Any:
    rp = identity().oidc
    if rp is None:
        return _refusal(_("University sign-in"), _("Sign-in with a university account is not set up here."), 404)
    pending = session.pop(OIDC_PENDING, None)
    if not isinstance(pending, dict) or "request" not in pending:
        return _refusal(
            _("University sign-in"), _("This sign-in was not started here, or it took too long. Start again."), 400
        )
    try:
        auth_request = AuthorizationRequest.from_dict(pending["request"])
        result = rp.complete(request.args.to_dict(), auth_request)
    except OidcProviderError as exc:
        log.warning("OIDC sign-in refused: %s", type(exc).__name__)
        return _refusal(_("University sign-in"), _("The university sign-in did not succeed. Start again."), 401)
    except (OidcError, KeyError, ValueError, TypeError) as exc:
        log.warning("OIDC callback refused: %s", type(exc).__name__)
        return _refusal(_("University sign-in"), _("The university sign-in did not succeed. Start again."), 401)
    account = _account_for(result)
    if identity().accounts.principal(account.id) is None:
        return _refusal(_("University sign-in"), _("This account cannot sign in. Contact the CIM office."), 403)
    return _done(account, "oidc", safe_next(pending.get("next")))


# -- signed in -------------------------------------------------------------------------------------
@bp.get("/account")
@access(SIGNED_IN)
def account() -> tuple[str, int]:
    principal = current_caller().principal
    assert principal is not None
    chosen = identity().accounts.locale_of(principal.account_id)
    return _account_page(LanguageForm(formdata=None, locale=chosen or _locale()), chosen)


def _account_page(language_form: LanguageForm, chosen: str | None, status: int = 200) -> tuple[str, int]:
    caller = current_caller()
    principal = caller.principal
    assert principal is not None
    grants = sorted(principal.grants)
    roles = [(str(ROLE_NAMES.get(g.role, g.role.value)), g.department) for g in grants]
    method = str(METHOD_NAMES.get(caller.auth_method, caller.auth_method or "-"))
    page = render_template("auth/account.html", principal=principal, roles=roles, method=method, form=PlainForm(),
                           language_form=language_form, chosen_language=LANGUAGE_NAMES.get(chosen or ""))
    return page, status


@bp.post("/language")
@access(SIGNED_IN)
def set_language() -> Any:
    """Save the person's language: the pages switch to it (`?lang=` sets the cookie on the page
    redirected to) and every e-mail to them is written in it from now on. A value CIM does not
    speak re-shows the page with the error beside the field; nothing is stored."""
    principal = current_caller().principal
    assert principal is not None
    form = LanguageForm()
    if not form.validate():
        return _account_page(form, identity().accounts.locale_of(principal.account_id), 422)
    chosen = str(form.locale.data)
    identity().accounts.set_locale(principal.account_id, chosen)
    with force_locale(chosen):  # said in the language just chosen, as the next page is
        flash(_("Your language is saved. Your e-mail from CIM will be in %(language)s.",
                language=LANGUAGE_NAMES[chosen]), "success")
    response = redirect(url_for("auth.account"), code=303)
    set_language_cookie(response, chosen)
    return response


def set_language_cookie(response: Response, locale: str) -> None:
    """The `lang` cookie the pages read their language from; Secure like the session cookie."""
    response.set_cookie("lang", locale, max_age=LANG_COOKIE_SECONDS, httponly=True, samesite="Lax",
                        secure=_settings().cookie_secure)


def remember_language_choice(response: Response) -> Response:
    """After a page was asked for in a language (`?lang=`, the header's language link): a
    signed-in person's choice is also stored as their language, for their e-mail. Only for a
    browser session (not an API token), only if it changed; a failure never fails the page."""
    chosen = request.args.get("lang")
    caller = current_caller()
    if chosen not in LANGUAGES or caller.principal is None or caller.session_id is None or response.status_code >= 400:
        return response
    try:
        identity().accounts.set_locale(caller.principal.account_id, str(chosen))
    except (CimError, SQLAlchemyError):
        log.error("the chosen language was not stored", exc_info=True)
    return response


@bp.post("/sign-out")
@access(SIGNED_IN)
def sign_out_view() -> Response:
    if not PlainForm().validate():
        flash(_("The form expired. Try again."), "error")
        return redirect(url_for("auth.account"), code=303)
    sign_out()
    flash(_("You are signed out."), "success")
    return redirect("/", code=303)


@bp.post("/sign-out-everywhere")
@access(SIGNED_IN)
def sign_out_everywhere() -> Response:
    if not PlainForm().validate():
        flash(_("The form expired. Try again."), "error")
        return redirect(url_for("auth.account"), code=303)
    sign_out(everywhere=True)
    flash(_("You are signed out on every device."), "success")
    return redirect("/", code=303)
