"""One workspace across both services (issue 17): where each person lands after signing in, and the
staff menu both headers show.

Staff work on the assessment service; students on the intake. A member of staff who signs in on
either lands where their work is (an assessor or a coordinator on the review queue, an
administrator on the accounts and roles page), and both
headers carry the same menu for their roles, linking across services: on the intake the links
are absolute URLs of the assessment service (`CIM_ASSESSMENT_URL`), on the assessment service
they are the site's own paths. The menu shows only what the person's roles may open, so no
link answers 403.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from shared.identity.models import Principal, Role

#: The roles that make a person staff.
STAFF_ROLES = (Role.ASSESSOR, Role.COORDINATOR, Role.ADMINISTRATOR)


@dataclass(frozen=True)
class MenuItem:
    """One staff menu entry: its label, the assessment service's path, and who sees it."""

    label: object  # a lazy string, translated when the header renders
    path: str
    roles: frozenset[Role]


_REVIEWERS = frozenset({Role.ASSESSOR, Role.COORDINATOR})
_COORDINATORS = frozenset({Role.COORDINATOR})
_ADMINISTRATION = frozenset({Role.COORDINATOR, Role.ADMINISTRATOR})
_STAFF = frozenset(STAFF_ROLES)
_ADMINISTRATORS = frozenset({Role.ADMINISTRATOR})
#: An administrator's own page: accounts, roles and API tokens (assessment_service/web/admin_pages.py).
ADMIN_HOME = "/admin/accounts"

#: The staff menu, in the order the header shows it.
STAFF_MENU: tuple[MenuItem, ...] = (
    MenuItem(_l("Review queue"), "/queue", _REVIEWERS),
    MenuItem(_l("Rulings"), "/rulings", _REVIEWERS),
    # The occasions page is the coordinators' own (presentation_pages answers 404 to others).
    MenuItem(_l("Presentations"), "/presentations", _COORDINATORS),
    MenuItem(_l("Diplomas"), "/diplomas", _REVIEWERS),
    MenuItem(_l("Deadlines"), "/deadlines", _COORDINATORS),
    MenuItem(_l("Statistics"), "/statistics", _ADMINISTRATION),
    MenuItem(_l("Outbox"), "/outbox", _ADMINISTRATION),
    MenuItem(_l("Rule sets"), "/rules", _STAFF),
    MenuItem(_l("Administration"), ADMIN_HOME, _ADMINISTRATORS),
)


def roles_of(principal: Principal | None) -> frozenset[Role]:
    """The staff roles a person holds in any department."""
    if principal is None:
        return frozenset()
    return frozenset(g.role for g in principal.grants if g.role in STAFF_ROLES)


def is_staff(principal: Principal | None) -> bool:
    return bool(roles_of(principal))


def landing_path(principal: Principal | None) -> str | None:
    """PURE: the assessment service's page where a member of staff's work is; None for anyone else.

    Reviewing comes first: an administrator who also assesses or coordinates lands on the queue."""
    roles = roles_of(principal)
    if roles & _REVIEWERS:
        return "/queue"
    if Role.ADMINISTRATOR in roles:
        return ADMIN_HOME
    return None


def staff_menu(principal: Principal | None, base_url: str = "") -> list[tuple[object, str]]:
    """PURE: the (label, URL) pairs of the staff menu this person may open; `base_url` is the
    assessment service's address on the intake and empty on the assessment service itself."""
    roles = roles_of(principal)
    base = base_url.rstrip("/")
    return [(item.label, base + item.path) for item in STAFF_MENU if item.roles & roles]
