"""Who is calling (`Caller`) and the access rule every endpoint declares (`@access(rule)`).

Deny by default: `enforce_access` refuses an endpoint that declares no rule (403, logged), and
the authorization-matrix test fails on it. Object-level rules answer a foreign id exactly as an
unknown one (404 "not found"), so ids cannot be enumerated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import current_app, g, request

from shared.errors import CimError, NotFound
from shared.identity.models import ApiTokenRecord, Principal, Role

F = TypeVar("F", bound=Callable[..., Any])


class SignInRequired(CimError):
    """Anonymous caller on an endpoint that needs someone: pages redirect, the API answers 401."""

    status = 401
    code = "sign_in_required"


class Forbidden(CimError):
    """Signed in, but the role does not allow this kind of page or call at all."""

    status = 403
    code = "forbidden"


@dataclass(frozen=True)
class Caller:
    """The authenticated party of one request: a signed-in account (browser session), an API
    token (with or without an account behind it), or nobody."""

    principal: Principal | None = None
    session_id: str | None = None
    token: ApiTokenRecord | None = None
    auth_method: str = ""

    @property
    def anonymous(self) -> bool:
        return self.principal is None and self.token is None

    @property
    def account_id(self) -> str | None:
        return self.principal.account_id if self.principal else None

    @property
    def student_id(self) -> str | None:
        return self.principal.account.student_id if self.principal else None

    @property
    def actor(self) -> str:
        """What events record as actor: the account, else the token, else anonymous."""
        if self.principal is not None:
            return f"account:{self.principal.account_id}"
        if self.token is not None:
            return self.token.actor
        return "anonymous"

    def has_scope(self, scope: str) -> bool:
        return self.token is not None and scope in self.token.scopes

    def has_role(self, role: Role, department: str | None = None) -> bool:
        return self.principal is not None and self.principal.has_role(role, department)


ANONYMOUS = Caller()


def current_caller() -> Caller:
    """The caller of this request (anonymous outside a request or before authentication)."""
    return g.get("cim_caller", ANONYMOUS)


#: A rule's check: (caller, view args) -> allowed. It may raise NotFound for object-level denial.
Check = Callable[[Caller, Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Rule:
    """An endpoint's access rule. `anonymous_ok` lets nobody-in-particular through to `check`;
    otherwise an anonymous caller gets SignInRequired. A False check means 403 (role level);
    object-level checks raise NotFound themselves so that foreign == unknown."""

    name: str
    check: Check = field(compare=False)
    anonymous_ok: bool = False

    def enforce(self, caller: Caller, view_args: Mapping[str, Any]) -> None:
        if caller.anonymous and not self.anonymous_ok:
            raise SignInRequired("Sign in to continue.")
        if not self.check(caller, view_args):
            raise Forbidden("You do not have access to this.")


def access(rule: Rule) -> Callable[[F], F]:
    """Declare the access rule of a view function."""

    def mark(view: F) -> F:
        view.cim_access = rule  # type: ignore[attr-defined]
        return view

    return mark


def rule_of(view: Callable[..., Any] | None) -> Rule | None:
    return getattr(view, "cim_access", None)


# -- the rules ---------------------------------------------------------------------------------
PUBLIC = Rule("public", lambda caller, args: True, anonymous_ok=True)
SIGNED_IN = Rule("signed in", lambda caller, args: caller.principal is not None)


def token_scope(scope: str) -> Rule:
    """Machine callers only: an integration's API token (one not acting for an account) holding
    `scope` — the workers' feed reads, bulk registration. A person's token never passes, whatever
    its scopes: these calls reach every student."""
    return Rule(
        f"token:{scope}",
        lambda caller, args: caller.token is not None and caller.token.account_id is None and caller.has_scope(scope),
    )


#: Finds the department of a student id in the app's own data; None if unknown.
DepartmentOf = Callable[[str], str | None]


def student_record(*, write: bool, scope: str | None = None, param: str = "student_id") -> Rule:
    """Object level: the student themself; for reads also a coordinator of the student's
    department; a token without an account acts for any student if it holds `scope` (an
    integration), a token with an account acts as that account. Everyone else: 404, the same as
    for an unknown id. The app provides `department_of` (current_app.extensions["cim.department_of"])."""

    def check(caller: Caller, args: Mapping[str, Any]) -> bool:
        student_id = str(args.get(param, ""))
        if caller.token is not None:
            if scope is None or scope not in caller.token.scopes:
                raise Forbidden("This token does not have the scope for this call.")
            if caller.principal is None:  # an integration's token: any student, by scope
                return True
        if caller.student_id is not None and caller.student_id == student_id:
            return True
        if not write and caller.principal is not None:
            coordinated = caller.principal.departments(Role.COORDINATOR)
            if coordinated:
                department_of: DepartmentOf = current_app.extensions["cim.department_of"]
                department = department_of(student_id)
                if department is not None and department in coordinated:
                    return True
        raise NotFound("No such student.")

    kind = "write" if write else "read"
    return Rule(f"student:{kind}", check)


def enforce_access() -> None:
    """before_request: find the endpoint's rule and apply it. No endpoint (404) passes through to
    Flask's own answer; an endpoint without a rule is refused and logged."""
    if request.endpoint is None:
        return
    view = current_app.view_functions.get(request.endpoint)
    rule = rule_of(view)
    if rule is None:
        if request.endpoint == "static" or request.endpoint.endswith(".static"):
            return
        current_app.logger.error("endpoint %s declares no access rule: refused", request.endpoint)
        raise Forbidden("This page has no access rule.")
    rule.enforce(current_caller(), request.view_args or {})
