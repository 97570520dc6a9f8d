"""Every staff read of a student's personal data, by page or API, in either service, is recorded
(`PersonalDataViewed`) before it is answered (issue 18.4).

A crawl of every GET route of both apps as each member of staff — signed in (pages) and with an
API token acting for their account — with the ids of a student whose name, e-mail, university id
and answers are canaries: every answer that carries one of them (or the student's file) must have
appended a `PersonalDataViewed` for that student naming that member of staff, in the app that
answered. The crawl finds the routes in the URL maps, so a new read is covered without a change
here."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from shared.errors import StorageUnavailable
from tests.authkit import ALL_INTAKE_SCOPES, authed_client, bearer
from tests.security.world import ANSWERS, ASSESSMENT_SCOPES, World, make_world

SCOPES = {"intake": ALL_INTAKE_SCOPES, "assessment": ASSESSMENT_SCOPES}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(Path(tmp_path_factory.mktemp("audit")))


def canaries(world: World) -> list[str]:
    """What only student 0's personal data contains (make_world's synthetic values)."""
    return ["Alva Provsson", "student0@example.org", "st0234ex", ANSWERS["learning"]]


def carries_personal_data(world: World, body: bytes, mimetype: str) -> bool:
    text = body.decode("utf-8", "replace")
    return mimetype == "application/pdf" or any(c in text for c in canaries(world))


def views_of(world: World, app_name: str, student_id: str, after: int) -> list[dict]:
    store = world.store if app_name == "intake" else world.assessment.extensions["cim.assessment"].store
    return [dict(e.data) for e in store.read_all(after, 10_000)
            if e.type == "PersonalDataViewed" and e.data.get("student_id") == student_id]


def head(world: World, app_name: str) -> int:
    store = world.store if app_name == "intake" else world.assessment.extensions["cim.assessment"].store
    return store.head()


def staff_clients(world: World, app_name: str) -> dict[str, tuple[str, FlaskClient]]:
    """(account id, client) per member of staff and way in: a signed-in browser, an account token."""
    app = world.apps[app_name]
    clients = {}
    for role, account in world.staff.items():
        clients[f"{role} page"] = (account.id, world.browser(app, account))
        token = bearer(world.identity, *SCOPES[app_name], account_id=account.id, name=f"{role}-token")
        clients[f"{role} token"] = (account.id, authed_client(app, token))
    return clients


def test_every_staff_read_of_personal_data_is_recorded(world: World) -> None:
    student = world.students[0]
    unrecorded: list[tuple[str, str, str]] = []
    personal_reads: set[tuple[str, str, str]] = set()
    for app_name, app in world.apps.items():
        rules = [r for r in app.url_map.iter_rules()
                 if r.methods and "GET" in r.methods and not r.rule.startswith(("/static", "/auth"))]
        for who, (account_id, client) in staff_clients(world, app_name).items():
            for rule in rules:
                url = world.url(rule, student)
                before = head(world, app_name)
                response = client.get(url)
                if response.status_code != 200 or not carries_personal_data(
                        world, response.get_data(), response.mimetype):
                    continue
                personal_reads.add((app_name, rule.rule, who.split()[1]))
                recorded = [v for v in views_of(world, app_name, student.student_id, before)
                            if v["viewer_account_id"] == account_id]
                if not recorded:
                    unrecorded.append((app_name, url, who))
    assert unrecorded == []
    # The crawl really reached the staff reads of both apps, by page and by API (a vacuous pass
    # would find none): the intake's My CIM, My data, files and the events API; the assessment's
    # queue, report, overview and My data.
    expected = {
        ("intake", "/students/<student_id>", "page"),
        ("intake", "/students/<student_id>/my-data", "page"),
        ("intake", "/students/<student_id>/my-data.json", "page"),
        ("intake", "/students/<student_id>/attachments/<attachment_id>", "page"),
        ("intake", "/api/v1/students/<student_id>/events", "token"),
        ("assessment", "/review-queue", "page"),
        ("assessment", "/reports/<report_id>", "page"),
        ("assessment", "/students/<student_id>/my-data", "page"),
        ("assessment", "/api/v1/review-queue", "token"),
        ("assessment", "/api/v1/reports/<report_id>", "token"),
        ("assessment", "/api/v1/students/<student_id>", "token"),
    }
    assert expected <= personal_reads, expected - personal_reads


def test_a_coordinators_token_read_of_the_event_history_is_recorded(world: World) -> None:
    """The audit's probe: GET /api/v1/students/<id>/events with a coordinator's account token."""
    student, coordinator = world.students[1], world.staff["coordinator"]
    client = authed_client(world.intake, bearer(world.identity, "intake:read", account_id=coordinator.id))
    before = head(world, "intake")
    response = client.get(f"/api/v1/students/{student.student_id}/events")
    assert response.status_code == 200
    assert "Bertil Exempelsson" in response.get_data(as_text=True)
    assert views_of(world, "intake", student.student_id, before) == [
        {"student_id": student.student_id, "viewer_account_id": coordinator.id, "what": "events"}]


def test_the_students_own_and_an_integrations_reads_are_not_staff_views(world: World) -> None:
    student = world.students[1]
    own = authed_client(world.intake, bearer(world.identity, "intake:read", account_id=student.account.id))
    integration = authed_client(world.intake, bearer(world.identity, "intake:read"))
    before = head(world, "intake")
    for client in (own, integration):
        assert client.get(f"/api/v1/students/{student.student_id}/events").status_code == 200
    assert views_of(world, "intake", student.student_id, before) == []


def test_when_the_view_cannot_be_recorded_nothing_is_answered(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded *before* it is answered: a failed record is a 503 without the data."""
    services = world.intake.extensions["cim.intake"]

    def unavailable(*args: object, **kwargs: object) -> None:
        raise StorageUnavailable("The database is unavailable.")

    monkeypatch.setattr(services, "record_staff_access", unavailable)
    coordinator = world.staff["coordinator"]
    client = authed_client(world.intake, bearer(world.identity, "intake:read", account_id=coordinator.id))
    response = client.get(f"/api/v1/students/{world.students[0].student_id}/events")
    assert response.status_code == 503
    assert not carries_personal_data(world, response.get_data(), response.mimetype)
