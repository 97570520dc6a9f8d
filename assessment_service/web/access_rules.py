"""The assessment side's object-level access rules (in the style of shared.web.access).

Who may see a report: a coordinator of the report's department, or an assessor of that
department assigned to it who has declared no conflict of interest with its student. Everyone
else, coordinators of other departments and administrators included, gets 404 "No such report.",
exactly as for an unknown or malformed id, so report ids cannot be enumerated. An integration's
API token (no account behind it) with the scope reads any report; a token with an account acts
as that account.

A student's overview (`/api/v1/students/<id>`): the student, a coordinator of the student's
department (shared.web.access.student_record), and also an assessor assigned to one of the
student's reports (same conditions as above), because judging a report needs the student's
other activities and reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app

from assessment_service import queries
from assessment_service.bootstrap import AssessmentContext
from assessment_service.domain import ReportFacts
from shared.errors import NotFound
from shared.identity.models import Principal, Role
from shared.validation import is_uuid
from shared.web.access import Caller, Forbidden, Rule, student_record

NO_SUCH_REPORT = "No such report."


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


def report_facts(report_id: str) -> ReportFacts | None:
    """The report's student and department as projected; None for unknown or malformed ids."""
    if not is_uuid(report_id):
        return None
    with _context().reader.connect() as conn:
        return queries.report_facts(conn, report_id)


def may_read_report(principal: Principal, facts: ReportFacts) -> bool:
    """Coordinator of the department, or an assessor there assigned to it and not conflicted."""
    if principal.has_role(Role.COORDINATOR, facts.department):
        return True
    if not principal.has_role(Role.ASSESSOR, facts.department):
        return False
    with _context().reader.connect() as conn:
        return queries.assigned_to_report(conn, facts.report_id, principal.account_id) and not (
            queries.conflicted_with_student(conn, facts.student_id, principal.account_id)
        )


def _token_gate(caller: Caller, scope: str | None) -> bool:
    """For token callers: no scope -> 403; an integration's token (no account) -> allowed (True);
    a token with an account -> that account's rules follow (False)."""
    if caller.token is None:
        return False
    if scope is None or not caller.has_scope(scope):
        raise Forbidden("This token does not have the scope for this call.")
    return caller.principal is None


def report_reader(*, scope: str | None = None, param: str = "report_id") -> Rule:
    """Read one report (page or API). Unknown, malformed and foreign ids all answer 404."""

    def check(caller: Caller, args: Mapping[str, Any]) -> bool:
        if _token_gate(caller, scope):
            return True  # the view itself answers 404 for an unknown id
        facts = report_facts(str(args.get(param, "")))
        if caller.principal is None or facts is None or not may_read_report(caller.principal, facts):
            raise NotFound(NO_SUCH_REPORT)
        return True

    return Rule("report:read", check)


def _report_for(caller: Caller, args: Mapping[str, Any], param: str) -> tuple[Principal, ReportFacts]:
    """The signed-in caller and the report named by `param`, or NotFound."""
    facts = report_facts(str(args.get(param, "")))
    principal = caller.principal
    if principal is None or facts is None:
        raise NotFound(NO_SUCH_REPORT)
    return principal, facts


def _readers_refused(principal: Principal, facts: ReportFacts) -> bool:
    """Someone who may read the report but not do this gets 403 (False); anyone else 404."""
    if may_read_report(principal, facts):
        return False
    raise NotFound(NO_SUCH_REPORT)


def report_coordinator(*, param: str = "report_id") -> Rule:
    """Assign or unassign assessors: a coordinator of the report's department. Someone who may
    read the report but not decide on it (its assessor) gets 403; anyone else 404."""

    def check(caller: Caller, args: Mapping[str, Any]) -> bool:
        principal, facts = _report_for(caller, args, param)
        return principal.has_role(Role.COORDINATOR, facts.department) or _readers_refused(principal, facts)

    return Rule("report:coordinate", check)


def report_assignee(*, param: str = "report_id") -> Rule:
    """Declare a conflict of interest: an assessor of the department assigned to the report (or
    who already declared on it: a repeated form is answered, not refused). Someone else who may
    read the report (its coordinator) gets 403; anyone else 404."""

    def check(caller: Caller, args: Mapping[str, Any]) -> bool:
        principal, facts = _report_for(caller, args, param)
        if principal.has_role(Role.ASSESSOR, facts.department):
            with _context().reader.connect() as conn:
                if queries.assigned_to_report(conn, facts.report_id, principal.account_id) or (
                    queries.conflict_on_report(conn, facts.report_id, principal.account_id)
                ):
                    return True
        return _readers_refused(principal, facts)

    return Rule("report:assignee", check)


def report_reviewer(*, param: str = "report_id") -> Rule:
    """Review a report: an assessor of the department assigned to it and not conflicted. Someone
    else who may read the report (its coordinator) gets 403; anyone else 404."""

    def check(caller: Caller, args: Mapping[str, Any]) -> bool:
        principal, facts = _report_for(caller, args, param)
        assessor = principal.has_role(Role.ASSESSOR, facts.department)
        if assessor and _assigned(principal, facts) and may_read_report(principal, facts):
            return True
        return _readers_refused(principal, facts)

    return Rule("report:review", check)


def _assigned(principal: Principal, facts: ReportFacts) -> bool:
    with _context().reader.connect() as conn:
        return queries.assigned_to_report(conn, facts.report_id, principal.account_id)


def with_token_scope(rule: Rule, scope: str) -> Rule:
    """`rule`, for a person's session or a token made for their account holding `scope`; a token
    without it, or an integration's token (no person), gets 403."""

    def check(caller: Caller, args: Mapping[str, Any]) -> bool:
        if caller.token is not None and (not caller.has_scope(scope) or caller.principal is None):
            raise Forbidden("This token does not have the scope for this call.")
        return rule.check(caller, args)

    return Rule(f"{rule.name}+{scope}", check)


def queue_reader(*, scope: str | None = None) -> Rule:
    """The review queue: assessors and coordinators (the view filters what each sees); an
    integration's token with the scope sees every waiting report; anyone else 403."""

    def check(caller: Caller, args: Mapping[str, Any]) -> bool:
        if _token_gate(caller, scope):
            return True
        return caller.has_role(Role.ASSESSOR) or caller.has_role(Role.COORDINATOR)

    return Rule("queue:read", check)


def queue_scope(principal: Principal) -> queries.QueueScope:
    return queries.QueueScope(
        account_id=principal.account_id,
        coordinated=principal.departments(Role.COORDINATOR),
        assessing=principal.departments(Role.ASSESSOR),
    )


def student_reader(*, scope: str | None = None, param: str = "student_id") -> Rule:
    """A student's overview: shared.web.access.student_record(write=False) (the student, a
    coordinator of the department, an integration with the scope) plus an assessor assigned to
    one of the student's reports in a department where they assess, with no declared conflict."""
    base = student_record(write=False, scope=scope, param=param)

    def check(caller: Caller, args: Mapping[str, Any]) -> bool:
        try:
            return base.check(caller, args)
        except NotFound:
            student_id = str(args.get(param, ""))
            principal = caller.principal
            if principal is not None and is_uuid(student_id):
                departments = principal.departments(Role.ASSESSOR)
                with _context().reader.connect() as conn:
                    if queries.assigned_to_student(conn, student_id, principal.account_id, departments):
                        return True
            raise

    return Rule("student:read-or-assigned", check)
