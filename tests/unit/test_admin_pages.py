"""The administrators' pages (assessment_service/web/admin_pages.py): accounts, roles per
department and API tokens in the browser, with the CLI's effects (sessions ended on a privilege
change, tokens shown once), bad input re-shown and nothing stored, administrators only."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.errors import ApiTokenInvalid
from shared.identity.models import Account, Principal, Role, RoleGrant
from shared.identity.scopes import KNOWN_SCOPES
from shared.web.workspace import landing_path, staff_menu
from tests.authkit import SESSION_COOKIE, make_account, sign_in
from tests.unit.test_assessment_access import World, build_world

OTHERS = ["assigned", "coordinator", "med_assessor", "student_A"]


@pytest.fixture
def world(tmp_path: Path, clock: FixedClock) -> World:
    return build_world(Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://"),
                       clock)


def admin(world: World):  # type: ignore[no-untyped-def]
    return world.browser("administrator")


def grants(world: World, account_id: str) -> frozenset[RoleGrant]:
    return world.identity.store.grants_of(account_id)


def new_staff(world: World, name: str = "Nova Granskare", email: str = "nova@example.org") -> Account:
    return make_account(world.identity, name, email)


# -- the done-when: an administrator gives a new assessor a role in the browser -------------------
def test_an_administrator_creates_an_account_and_gives_it_a_role(world: World) -> None:
    browser = admin(world)
    created = browser.post("/admin/accounts", data={"name": "Nova Granskare", "email": "Nova@Example.org"})
    assert created.status_code == 303
    account = world.identity.store.find_account_by_email("nova@example.org")
    assert account is not None
    assert account.display_name == "Nova Granskare"
    assert created.headers["Location"] == f"/admin/accounts/{account.id}"
    page = browser.get(created.headers["Location"])
    assert "The account of Nova Granskare is created" in page.text
    assert 'for="role"' in page.text
    assert 'for="department"' in page.text
    session = world.identity.sessions.create(account.id)  # they signed in before the grant
    granted = browser.post(f"/admin/accounts/{account.id}/grant", data={"role": "assessor", "department": "SOCSW"})
    assert granted.status_code == 303
    assert grants(world, account.id) == {RoleGrant(Role.ASSESSOR, "SOCSW")}
    assert world.identity.sessions.get(session) is None  # as `accounts grant`: sign in again
    after = browser.get(f"/admin/accounts/{account.id}").text
    assert "Nova Granskare now has the role Assessor in SOCSW." in after
    listing = browser.get("/admin/accounts?q=nova").text
    assert "Assessor in SOCSW" in listing
    assert "nova@example.org" in listing
    # …and the new assessor can now open the review queue.
    client = world.app.test_client()
    sign_in(client, world.identity, account)
    assert client.get("/queue").status_code == 200


def test_granting_an_administrator_role_and_a_coordinator_role(world: World) -> None:
    account = new_staff(world)
    browser = admin(world)
    assert browser.post(f"/admin/accounts/{account.id}/grant", data={"role": "administrator",
                                                                     "department": ""}).status_code == 303
    assert browser.post(f"/admin/accounts/{account.id}/grant", data={"role": "coordinator",
                                                                     "department": "MED"}).status_code == 303
    assert grants(world, account.id) == {RoleGrant(Role.ADMINISTRATOR, None), RoleGrant(Role.COORDINATOR, "MED")}


def test_an_administrator_granting_themselves_a_role_stays_signed_in(world: World) -> None:
    me = world.accounts["administrator"]
    client = world.app.test_client()
    old = sign_in(client, world.identity, me)
    answer = client.post(f"/admin/accounts/{me.id}/grant", data={"role": "assessor", "department": "SOCSW"})
    assert answer.status_code == 303
    assert world.identity.sessions.get(old) is None  # the old session ended (a privilege change)
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    assert cookie.value != old
    assert client.get(f"/admin/accounts/{me.id}").status_code == 200  # on a new one


def test_revoking_a_role_signs_the_account_out_everywhere(world: World) -> None:
    account = make_account(world.identity, "Nova Granskare", "nova@example.org", grants=[(Role.ASSESSOR, "SOCSW"),
                                                                                         (Role.ASSESSOR, "MED")])
    session = world.identity.sessions.create(account.id)
    answer = admin(world).post(f"/admin/accounts/{account.id}/revoke", data={"role": "assessor", "department": "MED"})
    assert answer.status_code == 303
    assert grants(world, account.id) == {RoleGrant(Role.ASSESSOR, "SOCSW")}
    assert world.identity.sessions.get(session) is None


def test_an_administrator_cannot_take_their_own_administrator_role_away(world: World) -> None:
    me = world.accounts["administrator"]
    page = admin(world).get(f"/admin/accounts/{me.id}").text
    assert "you cannot take it away yourself" in page  # the form says so
    assert f'action="/admin/accounts/{me.id}/revoke"' not in page
    answer = admin(world).post(f"/admin/accounts/{me.id}/revoke", data={"role": "administrator", "department": ""})
    assert answer.status_code == 422
    assert "You cannot take your own administrator role away" in answer.text
    assert RoleGrant(Role.ADMINISTRATOR, None) in grants(world, me.id)
    # Another administrator can.
    other = make_account(world.identity, "Ada Förvaltare", "ada@example.org", grants=[(Role.ADMINISTRATOR, None)])
    client = world.app.test_client()
    sign_in(client, world.identity, other)
    assert client.post(f"/admin/accounts/{me.id}/revoke",
                       data={"role": "administrator", "department": ""}).status_code == 303
    assert grants(world, me.id) == frozenset()


def test_disable_and_enable_an_account(world: World) -> None:
    account = new_staff(world)
    session = world.identity.sessions.create(account.id)
    assert admin(world).post(f"/admin/accounts/{account.id}/disable").status_code == 303
    stored = world.identity.store.get_account(account.id)
    assert stored is not None
    assert stored.disabled
    assert world.identity.sessions.get(session) is None
    page = admin(world).get(f"/admin/accounts/{account.id}").text
    assert "Disabled: cannot sign in" in page
    assert "Enable the account" in page
    assert admin(world).post(f"/admin/accounts/{account.id}/enable").status_code == 303
    assert world.identity.accounts.is_active(account.id)


def test_an_administrator_cannot_disable_their_own_account(world: World) -> None:
    me = world.accounts["administrator"]
    assert "you cannot disable it yourself" in admin(world).get(f"/admin/accounts/{me.id}").text
    answer = admin(world).post(f"/admin/accounts/{me.id}/disable")
    assert answer.status_code == 422
    assert "You cannot disable your own account." in answer.text
    assert world.identity.accounts.is_active(me.id)


# -- bad input: re-shown forms naming the problem, nothing stored ---------------------------------
@pytest.mark.parametrize(("data", "field", "message"), [
    ({"role": "student", "department": "SOCSW"}, "role", "Choose one of the roles listed."),
    ({"role": "superuser", "department": ""}, "role", "Choose one of the roles listed."),
    ({"role": "assessor", "department": "NOPE"}, "department", "Choose one of the departments listed."),
    ({"role": "assessor", "department": "../x"}, "department", "Choose one of the departments listed."),
    ({"role": "assessor", "department": ""}, "department", "Choose the department this role is for."),
    ({"role": "administrator", "department": "SOCSW"}, "department", "The administrator role has no department"),
])
def test_a_forged_grant_is_refused_beside_its_field(world: World, data: dict[str, str], field: str,
                                                    message: str) -> None:
    account = new_staff(world)
    answer = admin(world).post(f"/admin/accounts/{account.id}/grant", data=data)
    assert answer.status_code == 422
    assert message in answer.text
    assert f'id="{field}-error"' in answer.text
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*id="{field}"', answer.text)
    assert answer.text.count("There is a problem") == 1
    assert grants(world, account.id) == frozenset()


def test_revoking_a_role_the_account_does_not_hold_changes_nothing(world: World) -> None:
    account = make_account(world.identity, "Nova Granskare", "nova@example.org", grants=[(Role.ASSESSOR, "SOCSW")])
    for data in ({"role": "assessor", "department": "MED"}, {"role": "root", "department": ""}, {}):
        answer = admin(world).post(f"/admin/accounts/{account.id}/revoke", data=data)
        assert answer.status_code == 422
        assert "The account does not have that role: nothing was changed." in answer.text
    assert grants(world, account.id) == {RoleGrant(Role.ASSESSOR, "SOCSW")}


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"name": "", "email": "nova@example.org"}, "name", "Enter the person&#39;s name."),
    ({"name": "Nova", "email": ""}, "email", "Enter the e-mail address."),
    ({"name": "Nova", "email": "not an address"}, "email", "Enter an e-mail address like name@example.org."),
    ({"name": "x" * 201, "email": "nova@example.org"}, "name", "At most 200 characters."),
])
def test_a_bad_new_account_is_refused_beside_its_field(world: World, data: dict[str, str], field: str,
                                                       message: str) -> None:
    before = len(world.identity.store.list_accounts())
    answer = admin(world).post("/admin/accounts", data=data)
    assert answer.status_code == 422
    assert message in answer.text
    assert f'id="{field}-error"' in answer.text
    assert len(world.identity.store.list_accounts()) == before


def test_an_e_mail_address_already_taken_is_refused(world: World) -> None:
    new_staff(world)
    before = len(world.identity.store.list_accounts())
    answer = admin(world).post("/admin/accounts", data={"name": "Another", "email": "NOVA@example.org"})
    assert answer.status_code == 422
    assert "An account with this e-mail address already exists." in answer.text
    assert len(world.identity.store.list_accounts()) == before


@pytest.mark.parametrize("account_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_account_answers_404_everywhere(world: World, account_id: str) -> None:
    browser = admin(world)
    assert browser.get(f"/admin/accounts/{account_id}").status_code == 404
    for action in ("grant", "revoke", "disable", "enable"):
        answer = browser.post(f"/admin/accounts/{account_id}/{action}", data={"role": "assessor",
                                                                               "department": "SOCSW"})
        assert answer.status_code == 404, action
    assert world.identity.store.grants_of(account_id) == frozenset()


# -- the list --------------------------------------------------------------------------------------
def test_the_list_searches_and_filters(world: World) -> None:
    make_account(world.identity, "Nova Granskare", "nova@example.org", grants=[(Role.ASSESSOR, "MED")])
    make_account(world.identity, "Olle Samordnare", "olle@example.org", grants=[(Role.COORDINATOR, "SOCSW")])
    browser = admin(world)
    everyone = browser.get("/admin/accounts").text
    assert "Nova Granskare" in everyone
    assert "Olle Samordnare" in everyone
    assert "Student A" not in everyone  # staff accounts by default
    assert "Assessor in MED" in everyone
    assert "Coordinator in SOCSW" in everyone
    assert "Olle" not in browser.get("/admin/accounts?q=NOVA").text
    assert "Olle" not in browser.get("/admin/accounts?q=nova@example").text
    by_role = browser.get("/admin/accounts?role=coordinator").text
    assert "Olle Samordnare" in by_role
    assert "Nova Granskare" not in by_role
    by_department = browser.get("/admin/accounts?department=MED").text
    assert "Nova Granskare" in by_department
    assert "Olle Samordnare" not in by_department
    both = browser.get("/admin/accounts?role=coordinator&department=MED").text
    assert "Staff other_coordinator" in both
    assert "Nova Granskare" not in both
    # Unknown filter values are ignored, not an error.
    assert browser.get("/admin/accounts?role=root&department=NOPE&who=x").status_code == 200


def test_student_accounts_shown_to_an_administrator_are_recorded(world: World) -> None:
    page = admin(world).get("/admin/accounts?who=students")
    assert page.status_code == 200
    assert "Student A" in page.text
    assert "Student B" in page.text
    viewer = world.accounts["administrator"].id
    assert (viewer, "accounts") in world.audit("A")
    assert (viewer, "accounts") in world.audit("B")


def test_the_pages_in_swedish(world: World) -> None:
    account = new_staff(world)
    listing = admin(world).get("/admin/accounts?lang=sv").text
    assert "Konton och roller" in listing
    page = admin(world).get(f"/admin/accounts/{account.id}?lang=sv").text
    assert "Ge en roll" in page
    assert "API-nycklar" in admin(world).get("/admin/tokens?lang=sv").text


# -- API tokens ------------------------------------------------------------------------------------
def test_a_token_is_shown_once_and_works(world: World) -> None:
    browser = admin(world)
    answer = browser.post("/admin/tokens", data={"name": "grading-export", "scopes": ["assessment:read"]})
    assert answer.status_code == 201
    assert answer.headers["Cache-Control"] == "no-store"
    found = re.search(r'value="(cim_[^"]+)"', answer.text)
    assert found, answer.text
    token = found.group(1)
    record = world.identity.api_tokens.authenticate(token, "assessment:read")
    assert (record.name, record.scopes, record.account_id) == ("grading-export", {"assessment:read"}, None)
    listing = browser.get("/admin/tokens").text
    assert "grading-export" in listing
    assert "An integration" in listing
    assert token not in listing  # never again
    assert token not in browser.get("/admin/tokens").text


def test_a_token_acting_for_an_account(world: World) -> None:
    account = new_staff(world)
    answer = admin(world).post("/admin/tokens", data={"name": "nova-script", "scopes": ["assessment:read"],
                                                      "account_email": "NOVA@example.org"})
    assert answer.status_code == 201
    record = next(r for r in world.identity.api_tokens.list() if r.name == "nova-script")
    assert record.account_id == account.id
    assert "Nova Granskare" in admin(world).get("/admin/tokens").text


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"name": "x", "scopes": ["admin:everything"]}, "scopes", "Unknown scope: admin:everything"),
    ({"name": "x", "scopes": ["Not A Scope"]}, "scopes", "Unknown scope: Not A Scope"),
    ({"name": "x"}, "scopes", "Choose at least one scope."),
    ({"name": "", "scopes": ["feed:read"]}, "name", "Say what the token is for."),
    ({"name": "x", "scopes": ["feed:read"], "account_email": "nobody@example.org"}, "account_email",
     "No account has this e-mail address."),
])
def test_a_bad_token_form_is_refused_and_stores_nothing(world: World, data: dict[str, object], field: str,
                                                        message: str) -> None:
    before = world.identity.api_tokens.list()
    answer = admin(world).post("/admin/tokens", data=data)
    assert answer.status_code == 422
    assert message in answer.text
    assert f'id="{field}-error"' in answer.text
    assert "cim_" not in answer.text
    assert world.identity.api_tokens.list() == before


def test_revoking_a_token(world: World) -> None:
    issued = world.identity.api_tokens.create("old-worker", ["feed:read"])
    browser = admin(world)
    assert browser.post(f"/admin/tokens/{issued.record.id}/revoke").status_code == 303
    with pytest.raises(ApiTokenInvalid):
        world.identity.api_tokens.authenticate(issued.token)
    assert "is revoked" in browser.get("/admin/tokens").text
    assert browser.post(f"/admin/tokens/{issued.record.id}/revoke").status_code == 303  # says so again
    assert "was already revoked" in browser.get("/admin/tokens").text
    assert browser.post(f"/admin/tokens/{uuid.uuid4()}/revoke").status_code == 404
    assert browser.post("/admin/tokens/nope/revoke").status_code == 404


def test_every_scope_the_code_checks_is_offered() -> None:
    from assessment_service.web import api, presentation_api, queue_pages, reviews_api
    from intake_service.web import api as intake_api
    from shared.web import metrics

    checked = {getattr(m, n) for m in (api, presentation_api, queue_pages, reviews_api, intake_api, metrics)
               for n in dir(m) if n.startswith("SCOPE_")}
    assert checked <= set(KNOWN_SCOPES)


# -- access ----------------------------------------------------------------------------------------
ROUTES = [("GET", "/admin/accounts"), ("POST", "/admin/accounts"), ("GET", "/admin/accounts/{id}"),
          ("POST", "/admin/accounts/{id}/grant"), ("POST", "/admin/accounts/{id}/revoke"),
          ("POST", "/admin/accounts/{id}/disable"), ("POST", "/admin/accounts/{id}/enable"),
          ("GET", "/admin/tokens"), ("POST", "/admin/tokens"), ("POST", "/admin/tokens/{token}/revoke")]


@pytest.mark.parametrize("who", [*OTHERS, None])
def test_only_administrators_reach_the_pages(world: World, who: str | None) -> None:
    target = new_staff(world)
    issued = world.identity.api_tokens.create("kept", ["feed:read"])
    tokens_before = world.identity.api_tokens.list()
    client = world.browser(who)
    for method, path in ROUTES:
        url = path.format(id=target.id, token=issued.record.id)
        answer = client.open(url, method=method, data={"role": "administrator", "department": "", "name": "x",
                                                       "email": "x@example.org", "scopes": ["feed:read"]})
        if who is None:
            assert answer.status_code == 303, url
            assert "/auth/sign-in" in answer.headers["Location"], url
        else:
            assert answer.status_code == 403, (who, url)
    assert grants(world, target.id) == frozenset()
    assert world.identity.accounts.is_active(target.id)
    assert world.identity.api_tokens.list() == tokens_before
    assert world.identity.store.find_account_by_email("x@example.org") is None


def test_an_administrator_lands_on_the_accounts_and_sees_administration_in_the_menu(world: World) -> None:
    def principal(*grants: RoleGrant) -> Principal:
        return Principal(Account("a", "A", None, world.identity.accounts.clock.now()), frozenset(grants))

    administrator = principal(RoleGrant(Role.ADMINISTRATOR, None))
    assert landing_path(administrator) == "/admin/accounts"
    assert landing_path(principal(RoleGrant(Role.ADMINISTRATOR, None), RoleGrant(Role.ASSESSOR, "MED"))) == "/queue"
    assert ("/admin/accounts" in [url for _label, url in staff_menu(administrator)])
    assert "/admin/accounts" not in [url for _l, url in staff_menu(principal(RoleGrant(Role.COORDINATOR, "MED")))]
    header = admin(world).get("/admin/tokens").text
    assert 'href="/admin/accounts"' in header
    assert 'href="/admin/accounts"' not in world.browser("coordinator").get("/rules").text


def test_the_account_page_says_how_the_account_signs_in(world: World) -> None:
    account = new_staff(world)
    assert "No way to sign in yet" in admin(world).get(f"/admin/accounts/{account.id}").text
    world.identity.staff.set_password(account.id, "a long synthetic passphrase 4711")
    world.identity.staff.enrol_totp(account.id, "nova@example.org")
    page = admin(world).get(f"/admin/accounts/{account.id}").text
    assert "a password and an authenticator code" in page
    assert "No way to sign in yet" not in page
    assert "passphrase" not in page


def test_the_staff_menu_offers_presentations_to_coordinators_only() -> None:
    """The occasions page answers 404 to anyone who coordinates no department (found by the role
    walk, tests/e2e/test_role_walks.py): an assessor's menu does not link to it."""
    def principal(*grants: RoleGrant) -> Principal:
        return Principal(Account("a", "A", None, FixedClock(datetime(2026, 3, 1, tzinfo=UTC)).now()), frozenset(grants))

    assert "/presentations" in [url for _l, url in staff_menu(principal(RoleGrant(Role.COORDINATOR, "MED")))]
    assert "/presentations" not in [url for _l, url in staff_menu(principal(RoleGrant(Role.ASSESSOR, "MED")))]
