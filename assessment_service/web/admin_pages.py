"""The administrators' pages (issue 16): accounts, roles per department and API tokens in the
browser, so nobody needs a shell to give an assessor a role.

- `/admin/accounts`: every account (name, e-mail, roles per department, disabled), searched by
  name or e-mail and filtered by role and department; a form creating a staff account.
- `/admin/accounts/<id>`: grant a role in a department, revoke one, disable or enable the account.
- `/admin/tokens`: the API tokens (name, scopes, account or integration, created, last used,
  revoked); a form creating one, whose value is shown once on the answer to that POST (never
  stored, never shown again), and "revoke".

Every change goes through the same identity functions as the CLI (`shared/web/cli.py`:
`accounts grant|revoke|disable`, `tokens create|revoke`) with the same effects: granting a role
ends the account's sessions (the acting administrator's own is rotated instead, so they stay
signed in), revoking one signs the account out everywhere, disabling ends all its sessions. Each
change is logged (logger `cim.admin`) with the acting administrator's account id and the ids it
touched, never names or addresses. An administrator cannot take their own administrator role
away nor disable their own account: the forms say so.

Who: administrators only (403 for anyone else signed in, anonymous callers are sent to sign
in), as only someone with a shell on the server can run the CLI. Student accounts shown to an
administrator are staff views of personal data: recorded (`PersonalDataViewed`, "accounts")
before the page is sent."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response
from wtforms import EmailField, HiddenField, SelectField, SelectMultipleField, StringField
from wtforms.validators import InputRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from assessment_service import services
from assessment_service.bootstrap import AssessmentContext
from shared.application import RequestContext
from shared.errors import CimError, NotFound, ValidationFailed
from shared.identity.errors import IdentityConflict
from shared.identity.models import Account, ApiTokenRecord, Principal, Role, RoleGrant
from shared.identity.scopes import KNOWN_SCOPES
from shared.identity.wiring import Identity
from shared.validation import is_uuid
from shared.web import auth
from shared.web.access import Caller, Rule, access, current_caller
from shared.web.errors import correlation_id
from shared.web.forms import TokenForm

bp = Blueprint("admin", __name__)
log = logging.getLogger("cim.admin")

NO_SUCH_ACCOUNT = "No such account."
NO_SUCH_TOKEN = "No such API token."
#: The most accounts one list page shows (search or filter for the rest).
LIST_LIMIT = 200


def _administrator(caller: Caller, args: Mapping[str, Any]) -> bool:
    return caller.principal is not None and caller.principal.is_administrator


#: Administrators only: the same people the CLI's commands are for.
ADMINISTRATOR = Rule("administrator", _administrator)

ROLE_NAMES: dict[Role, Any] = {
    Role.STUDENT: _l("Student"),
    Role.ASSESSOR: _l("Assessor"),
    Role.COORDINATOR: _l("Coordinator"),
    Role.ADMINISTRATOR: _l("Administrator"),
}
#: The roles the grant form offers (a student's role comes with their registration).
GRANTABLE = (Role.ASSESSOR, Role.COORDINATOR, Role.ADMINISTRATOR)
SCOPE_NAMES: dict[str, Any] = {
    "intake:register": _l("Register students (an integration)"),
    "intake:write": _l("Change students' records"),
    "intake:read": _l("Read students' records"),
    "feed:read": _l("Read the event feed (the workers)"),
    "assessment:read": _l("Read the review queue, reports and rule sets"),
    "assessment:review": _l("Review and decide reports"),
    "assessment:presentations": _l("Presentations"),
    "assessment:statistics": _l("Read CIM in numbers (statistics)"),
    "ops:read": _l("Read the metrics (monitoring)"),
}
WHO_CHOICES = {"staff": _l("Staff accounts"), "students": _l("Student accounts"), "all": _l("All accounts")}


# -- reading -----------------------------------------------------------------------------------
def _identity() -> Identity:
    return auth.identity()


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def _me() -> Principal:
    principal = current_caller().principal
    assert principal is not None  # the rule let only an administrator in
    return principal


def _departments() -> list[tuple[str, str]]:
    """(code, name in the page's language) of every department in the departments file."""
    locale = str(get_locale() or "en")
    catalogue = _context().catalogue
    return sorted(((code, dept.name.get(locale)) for code, dept in catalogue.departments.items()),
                  key=lambda pair: pair[0])


def _account(account_id: str) -> Account:
    account = _identity().store.get_account(account_id) if is_uuid(account_id) else None
    if account is None:
        raise NotFound(NO_SUCH_ACCOUNT)
    return account


def _record_views(accounts: list[Account]) -> None:
    """Students' names and addresses shown to an administrator: recorded before the page is sent
    (503 and nothing shown if that fails), as every staff view of personal data is."""
    student_ids = [a.student_id for a in accounts if a.student_id]
    if student_ids:
        req = RequestContext(actor=current_caller().actor, correlation_id=correlation_id())
        services.record_views(_context(), student_ids, _me().account_id, "accounts", req)


def _audit(action: str, **ids: str | None) -> None:
    """One log line per change, as the CLI's effects are: who (the administrator) and which ids."""
    log.info("admin %s", action, extra={"actor": current_caller().actor, "action": action,
                                        **{k: v for k, v in ids.items() if v is not None}})


@dataclass(frozen=True)
class AccountRow:
    account: Account
    grants: list[RoleGrant]


def role_label(grant: RoleGrant) -> str:
    """'Assessor in SOCSW', 'Administrator'."""
    name = str(ROLE_NAMES[grant.role])
    return _("%(role)s in %(department)s", role=name, department=grant.department) if grant.department else name


def matching(rows: list[AccountRow], *, query: str, who: str, role: Role | None,
             department: str | None) -> list[AccountRow]:
    """PURE: the rows whose name or e-mail contains `query` (any case), of the kind `who`
    (staff: no student record behind it), holding `role` and/or a role in `department`."""
    needle = query.casefold().strip()
    found = []
    for row in rows:
        account = row.account
        if needle and needle not in account.display_name.casefold() and needle not in (account.email or ""):
            continue
        if who == "staff" and account.student_id is not None:
            continue
        if who == "students" and account.student_id is None:
            continue
        if role is not None and not any(g.role is role for g in row.grants):
            continue
        if department and not any(g.department == department and (role is None or g.role is role)
                                  for g in row.grants):
            continue
        found.append(row)
    return found


# -- forms -------------------------------------------------------------------------------------
class AdminForm(TokenForm):
    """CSRF (Flask-WTF) and the page form's token; the identity functions are idempotent, so the
    token only keeps the forms alike."""


class CreateAccountForm(AdminForm):
    name = StringField(_l("Name"), validators=[InputRequired(_l("Enter the person's name.")),
                                               Length(max=200, message=_l("At most 200 characters."))])
    email = EmailField(_l("E-mail address"), validators=[InputRequired(_l("Enter the e-mail address.")),
                                                         Length(max=320, message=_l("At most 320 characters."))],
                       description=_l("The address they sign in with."))
    field_map = MappingProxyType({"display_name": "name"})


class GrantForm(AdminForm):
    role = SelectField(_l("Role"), validate_choice=False)
    department = SelectField(_l("Department"), validate_choice=False,
                             description=_l("An administrator has no department; every other role needs one."))

    def fill(self, departments: list[tuple[str, str]]) -> GrantForm:
        self.role.choices = [(r.value, str(ROLE_NAMES[r])) for r in GRANTABLE]
        self.department.choices = [("", _("No department (administrator)"))] + [
            (code, f"{name} ({code})") for code, name in departments]
        return self

    def grant(self, departments: list[tuple[str, str]]) -> RoleGrant | None:
        """The grant asked for, or None with the problem beside the field that has it."""
        role = next((r for r in GRANTABLE if r.value == self.role.data), None)
        if role is None:
            self.role.errors = [_("Choose one of the roles listed.")]
            return None
        department = self.department.data or None
        if role is Role.ADMINISTRATOR:
            if department is not None:
                self.department.errors = [_("The administrator role has no department: choose “No department”.")]
                return None
        elif department is None:
            self.department.errors = [_("Choose the department this role is for.")]
            return None
        elif department not in {code for code, _name in departments}:
            self.department.errors = [_("Choose one of the departments listed.")]
            return None
        return RoleGrant(role, department)


class RevokeForm(AdminForm):
    role = HiddenField()
    department = HiddenField()


class StatusForm(AdminForm):
    """Disable or enable: the button is the whole form."""


class SetupLinkForm(AdminForm):
    """Send a set-up link: the button is the whole form."""


class MultiCheckboxField(SelectMultipleField):
    """A group of checkboxes (the page macro wraps them in a fieldset with a legend)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class CreateTokenForm(AdminForm):
    name = StringField(_l("Name"), validators=[InputRequired(_l("Say what the token is for.")),
                                               Length(max=200, message=_l("At most 200 characters."))],
                       description=_l("What the token is for, e.g. the worker or integration using it."))
    scopes = MultiCheckboxField(_l("Scopes"), validate_choice=False,
                                description=_l("What the token may do. Give it only what it needs."))
    account_email = EmailField(_l("Acting for the account (optional)"),
                               description=_l("The e-mail address of the account the token acts as. "
                                              "Leave it empty for an integration."))

    def fill(self) -> CreateTokenForm:
        self.scopes.choices = [(s, f"{SCOPE_NAMES[s]} ({s})") for s in KNOWN_SCOPES]
        return self

    def checked(self) -> bool:
        """The scopes are known ones, at least one (the field says which is not)."""
        chosen = self.scopes.data or []
        unknown = [s for s in chosen if s not in KNOWN_SCOPES]
        if unknown:
            self.scopes.errors = [_("Unknown scope: %(scopes)s. Choose among the scopes listed.",
                                    scopes=", ".join(unknown))]
        elif not chosen:
            self.scopes.errors = [_("Choose at least one scope.")]
        return not self.scopes.errors


# -- accounts ----------------------------------------------------------------------------------
def _rows() -> list[AccountRow]:
    store = _identity().store
    grants = store.all_grants()
    return [AccountRow(a, sorted(grants.get(a.id, ()), key=_grant_order)) for a in store.list_accounts()]


def _grant_order(grant: RoleGrant) -> tuple[int, str]:
    return (list(Role).index(grant.role), grant.department or "")


def _accounts_page(form: CreateAccountForm, status: int = 200) -> tuple[str, int]:
    query = request.args.get("q", "")[:200]
    who = request.args.get("who", "staff")
    who = who if who in WHO_CHOICES else "staff"
    role = next((r for r in Role if r.value == request.args.get("role")), None)
    departments = _departments()
    department = request.args.get("department", "")
    department = department if department in {code for code, _name in departments} else ""
    found = matching(_rows(), query=query, who=who, role=role, department=department or None)
    shown = found[:LIST_LIMIT]
    _record_views([row.account for row in shown])
    form.ensure_token()
    return render_template(
        "admin_accounts.html", form=form, rows=shown, total=len(found), limit=LIST_LIMIT, query=query, who=who,
        who_choices=WHO_CHOICES, role=role.value if role else "", roles=list(Role), role_names=ROLE_NAMES,
        department=department, departments=departments, role_label=role_label,
    ), status


@bp.get("/admin/accounts")
@access(ADMINISTRATOR)
def accounts_page() -> tuple[str, int]:
    return _accounts_page(CreateAccountForm(formdata=None))


@bp.post("/admin/accounts")
@access(ADMINISTRATOR)
def create_account() -> Response | tuple[str, int]:
    form = CreateAccountForm()
    if form.validate():
        try:
            account = _identity().accounts.create_account(form.name.data or "", form.email.data or "")
        except IdentityConflict:
            form.email.errors = [_("An account with this e-mail address already exists.")]
        except ValidationFailed as exc:
            _field_errors(form, exc, {"email": _("Enter an e-mail address like name@example.org.")})
        else:
            _audit("account created", account_id=account.id)
            flash(_("The account of %(name)s is created. Give it a role below.", name=account.display_name),
                  "info")
            return redirect(url_for("admin.account_page", account_id=account.id), code=303)
    return _accounts_page(form, 422)


def _field_errors(form: AdminForm, exc: CimError, texts: Mapping[str, str]) -> None:
    """A use case's refusal beside the field it names, in the page's language."""
    for name in getattr(exc, "fields", None) or {}:
        target = form._fields.get(form.field_map.get(name, name))
        message = texts.get(name, _("Check this field."))
        if target is not None:
            target.errors = [*target.errors, message]
        else:
            form.form_errors.append(message)
    if not getattr(exc, "fields", None):
        form.form_errors.append(_("The change could not be made."))


def _account_page(account: Account, *, grant_form: GrantForm | None = None,
                  revoke_form: RevokeForm | None = None, setup_form: SetupLinkForm | None = None,
                  status: int = 200) -> tuple[str, int]:
    departments = _departments()
    grant_form = (grant_form or GrantForm(formdata=None)).fill(departments)
    revoke_form = revoke_form or RevokeForm(formdata=None)
    for form in (grant_form, revoke_form):
        form.ensure_token()
    _record_views([account])
    store = _identity().store
    grants = sorted(store.grants_of(account.id), key=_grant_order)
    me = _me()
    return render_template(
        "admin_account.html", account=account, grants=grants, grant_form=grant_form, revoke_form=revoke_form,
        status_form=StatusForm(formdata=None), role_label=role_label, is_me=account.id == me.account_id,
        administrator=RoleGrant(Role.ADMINISTRATOR, None), sign_in_ways=sign_in_ways(account),
        setup_form=setup_form or SetupLinkForm(formdata=None),
        setup_refusal=_setup_refusal(account), has_credentials=_has_credentials(account),
        setup_hours=max(1, int(_identity().setup_links.ttl.total_seconds() // 3600)),
    ), status


def _has_credentials(account: Account) -> bool:
    store = _identity().store
    return store.password_hash(account.id) is not None and store.totp_state(account.id) is not None


def _setup_refusal(account: Account) -> str | None:
    """Why the account gets no set-up link, in the page's language; None if it can."""
    why = _identity().setup_links.refusal(account)
    if why is None:
        return None
    if why == "student":
        return _("A student account signs in with a link by e-mail or the university's sign-in, "
                 "never with a password: it gets no set-up link.")
    if why == "no-email":
        return _("The account has no e-mail address to send a set-up link to.")
    return _("The account is disabled: enable it before sending a set-up link.")


def sign_in_ways(account: Account) -> list[str]:
    """How the account can sign in, in words (never a secret: only whether one exists)."""
    store = _identity().store
    ways = []
    if store.identities_of(account.id):
        ways.append(_("the university's sign-in (SSO)"))
    if store.password_hash(account.id) and store.totp_state(account.id):
        ways.append(_("a password and an authenticator code"))
    if account.student_id and account.email:
        ways.append(_("a one-time link by e-mail"))
    return ways


@bp.get("/admin/accounts/<account_id>")
@access(ADMINISTRATOR)
def account_page(account_id: str) -> tuple[str, int]:
    return _account_page(_account(account_id))


@bp.post("/admin/accounts/<account_id>/grant")
@access(ADMINISTRATOR)
def grant(account_id: str) -> Response | tuple[str, int]:
    account = _account(account_id)
    departments = _departments()
    form = GrantForm().fill(departments)
    wanted = form.grant(departments) if form.validate() else None
    if wanted is None:
        return _account_page(account, grant_form=form, status=422)
    ident = _identity()
    made = ident.accounts.grant_role(account.id, wanted.role, wanted.department)
    # As `accounts grant`: sessions started before a privilege change end. The administrator
    # granting themselves a role gets a new session instead, so they stay signed in.
    ident.sessions.revoke_all(account.id)
    if account.id == _me().account_id:
        auth.sign_in(account, current_caller().auth_method)
    _audit("role granted", account_id=account.id, role=made.role.value, department=made.department)
    flash(_("%(name)s now has the role %(role)s.", name=account.display_name, role=role_label(made)), "info")
    return redirect(url_for("admin.account_page", account_id=account.id), code=303)


@bp.post("/admin/accounts/<account_id>/revoke")
@access(ADMINISTRATOR)
def revoke(account_id: str) -> Response | tuple[str, int]:
    account = _account(account_id)
    form = RevokeForm()
    held = _identity().store.grants_of(account.id)
    wanted = next((g for g in held if g.role.value == form.role.data and (g.department or "") == (
        form.department.data or "")), None)
    if not form.validate() or wanted is None:
        form.form_errors.append(_("The account does not have that role: nothing was changed."))
        return _account_page(account, revoke_form=form, status=422)
    if wanted.role is Role.ADMINISTRATOR and account.id == _me().account_id:
        form.form_errors.append(_("You cannot take your own administrator role away: "
                                  "ask another administrator to do it."))
        return _account_page(account, revoke_form=form, status=422)
    if _identity().accounts.revoke_role(account.id, wanted.role, wanted.department):  # signs them out
        _audit("role revoked", account_id=account.id, role=wanted.role.value, department=wanted.department)
    flash(_("%(name)s no longer has the role %(role)s and is signed out everywhere.",
            name=account.display_name, role=role_label(wanted)), "info")
    return redirect(url_for("admin.account_page", account_id=account.id), code=303)


@bp.post("/admin/accounts/<account_id>/disable")
@access(ADMINISTRATOR)
def disable(account_id: str) -> Response | tuple[str, int]:
    account = _account(account_id)
    form = StatusForm()
    if account.id == _me().account_id:
        revoke_form = RevokeForm(formdata=None)
        revoke_form.form_errors.append(_("You cannot disable your own account."))
        return _account_page(account, revoke_form=revoke_form, status=422)
    if form.validate():
        _identity().accounts.disable_account(account.id)  # ends all its sessions
        _audit("account disabled", account_id=account.id)
        flash(_("The account of %(name)s is disabled and signed out everywhere.", name=account.display_name),
              "info")
    return redirect(url_for("admin.account_page", account_id=account.id), code=303)


@bp.post("/admin/accounts/<account_id>/enable")
@access(ADMINISTRATOR)
def enable(account_id: str) -> Response:
    account = _account(account_id)
    if StatusForm().validate():
        _identity().accounts.enable_account(account.id)
        _audit("account enabled", account_id=account.id)
        flash(_("The account of %(name)s can sign in again.", name=account.display_name), "info")
    return redirect(url_for("admin.account_page", account_id=account.id), code=303)


@bp.post("/admin/accounts/<account_id>/setup-link")
@access(ADMINISTRATOR)
def send_setup_link(account_id: str) -> Response | tuple[str, int]:
    """Mail the person a one-time link to choose a password and enrol an authenticator (a new
    member of staff, or one who lost their phone): as `accounts send-setup-link EMAIL`."""
    account = _account(account_id)
    form = SetupLinkForm()
    if not form.validate():
        return redirect(url_for("admin.account_page", account_id=account.id), code=303)
    refusal = _setup_refusal(account)
    if refusal is not None:
        form.form_errors.append(refusal)
        return _account_page(account, setup_form=form, status=422)
    from shared.web.staff_setup import send_setup_link as send

    if not send(account):
        form.form_errors.append(_("The set-up link could not be sent. Try again in a moment."))
        return _account_page(account, setup_form=form, status=503)
    _audit("setup link sent", account_id=account.id)
    flash(_("A set-up link is on its way to %(email)s. It works once, for %(hours)d hours.",
            email=account.email, hours=max(1, int(_identity().setup_links.ttl.total_seconds() // 3600))), "info")
    return redirect(url_for("admin.account_page", account_id=account.id), code=303)


# -- API tokens --------------------------------------------------------------------------------
def _tokens_page(form: CreateTokenForm, status: int = 200) -> tuple[str, int]:
    store = _identity().store
    records = sorted(_identity().api_tokens.list(), key=lambda r: (r.revoked_at is not None, r.created_at, r.id))
    holders = {r.account_id: store.get_account(r.account_id) for r in records if r.account_id}
    _record_views([a for a in holders.values() if a is not None])
    form.fill().ensure_token()
    return render_template("admin_tokens.html", form=form, records=records, holders=holders,
                           revoke_form=StatusForm(formdata=None), scope_names=SCOPE_NAMES), status


@bp.get("/admin/tokens")
@access(ADMINISTRATOR)
def tokens_page() -> tuple[str, int]:
    return _tokens_page(CreateTokenForm(formdata=None))


@bp.post("/admin/tokens")
@access(ADMINISTRATOR)
def create_token() -> Response | tuple[str, int]:
    form = CreateTokenForm().fill()
    valid = form.validate()
    valid = form.checked() and valid
    account: Account | None = None
    email = (form.account_email.data or "").strip()
    if valid and email:
        account = _identity().store.find_account_by_email(email)
        if account is None:
            form.account_email.errors = [_("No account has this e-mail address.")]
            valid = False
    if not valid:
        return _tokens_page(form, 422)
    try:
        issued = _identity().api_tokens.create(form.name.data or "", form.scopes.data or [],
                                               account_id=account.id if account else None)
    except ValidationFailed as exc:
        _field_errors(form, exc, {"name": _("1 to 200 characters."), "scopes": _("Choose at least one scope.")})
        return _tokens_page(form, 422)
    _audit("token created", token_id=issued.record.id, account_id=issued.record.account_id)
    # The value exists only in this answer: not flashed, not stored, not cached.
    page = render_template("admin_token_created.html", record=issued.record, token=issued.token,
                           account=account, scope_names=SCOPE_NAMES)
    response = Response(page, status=201, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/admin/tokens/<token_id>/revoke")
@access(ADMINISTRATOR)
def revoke_token(token_id: str) -> Response:
    record: ApiTokenRecord | None = _identity().store.get_api_token(token_id) if is_uuid(token_id) else None
    if record is None:
        raise NotFound(NO_SUCH_TOKEN)
    if StatusForm().validate():
        if _identity().api_tokens.revoke(record.id):
            _audit("token revoked", token_id=record.id)
            flash(_("The token “%(name)s” is revoked: it no longer works.", name=record.name), "info")
        else:
            flash(_("The token “%(name)s” was already revoked.", name=record.name), "info")
    return redirect(url_for("admin.tokens_page"), code=303)
