"""Right of access: for 50 students, "My data" (page and JSON download) holds every personal
field stored for that student (events opened, account data, files) and nothing of anyone else;
a coordinator's look is logged as PersonalDataViewed in the audit stream, the student's is not
(bar G2; the key is in tests/README.md)."""

from __future__ import annotations

import io
import json
import secrets
from datetime import UTC, datetime

import pytest

from intake_service import create_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import Settings
from shared.identity.models import ExternalIdentity, Role
from tests.authkit import authed_client, integration_token, make_account, make_identity, sign_in, sign_out
from tests.factories import blank_pdf, canary

#: Seeds 50 students and reads every export: the full run's, not the local lane's.
pytestmark = pytest.mark.thorough

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STUDENTS = 50
ANSWERS = ("learning", "profession", "perspective")


@pytest.fixture(scope="module")
def world(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp_path = tmp_path_factory.mktemp("g2")
    clock = FixedClock(NOW)
    store = InMemoryEventStore(clock)
    identity = make_identity(clock)
    settings = Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://",
                        ratelimit_post="100000 per minute", ratelimit_signin="100000 per minute")
    app = create_app(settings, store=store, clock=clock, identity=identity)
    _, headers = integration_token(identity)
    api = authed_client(app, headers)
    people = []
    for n in range(STUDENTS):
        fields = {
            "name": f"Synthetic {canary()}",
            "email": f"{canary()}@example.org",
            "university_id": f"u{n}-{secrets.token_hex(4)}",
            "description": f"desc {canary()}",
            "answer": f"answer {canary()}",
            "filename": f"{canary()}.pdf",
            "subject": f"sub-{canary()}",
        }
        response = api.post("/api/v1/students", json={
            "name": fields["name"], "email": fields["email"], "university_id": fields["university_id"],
            "department": "SOCSW", "programme": "SSASK", "expected_end_term": "VT2028",
        })
        assert response.status_code == 201, response.json
        sid = response.json["student_id"]
        activity = api.post(f"/api/v1/students/{sid}/activities", json={
            "kind": "exchange", "title": "Exchange term", "organiser": "A university", "setting": "abroad",
            "country_code": "DE", "start_date": "2026-01-10", "end_date": "2026-06-01", "hours": 400,
            "description": fields["description"],
        })
        assert activity.status_code == 201, activity.json
        upload = api.post(
            f"/api/v1/students/{sid}/attachments",
            data={"file": (io.BytesIO(blank_pdf()), fields["filename"])},
            content_type="multipart/form-data",
        )
        assert upload.status_code == 201, upload.json
        report = api.post(f"/api/v1/students/{sid}/reports", json={
            "answers": {code: fields["answer"] for code in ANSWERS},
            "activity_ids": [activity.json["activity_id"]],
            "attachment_id": upload.json["attachment_id"],
        })
        assert report.status_code == 201, report.json
        account = make_account(identity, fields["name"], fields["email"], student_id=sid,
                               grants=[(Role.STUDENT, "SOCSW")])
        identity.accounts.link_identity(account.id, ExternalIdentity("https://idp.example.org", fields["subject"]))
        people.append({"sid": sid, "account": account, "attachment": upload.json["attachment_id"], **fields})
    return app, identity, store, people


PERSONAL = ("name", "email", "university_id", "description", "answer", "filename", "subject")


def test_every_student_sees_all_their_personal_data_and_none_of_anyone_elses(world) -> None:  # type: ignore[no-untyped-def]
    app, identity, store, people = world
    client = app.test_client()
    for person in people:
        sign_in(client, identity, person["account"])
        page = client.get(f"/students/{person['sid']}/my-data")
        download = client.get(f"/students/{person['sid']}/my-data.json")
        assert page.status_code == 200
        assert download.status_code == 200
        assert download.headers["Content-Disposition"].startswith("attachment;")
        assert download.headers["X-Content-Type-Options"] == "nosniff"
        data = json.loads(download.data)
        html = page.get_data(as_text=True)
        for field in PERSONAL:
            assert person[field] in download.get_data(as_text=True), field
            assert person[field] in html, field
        assert data["account"]["email"] == person["email"]
        assert data["account"]["roles"] == [{"role": "student", "department": "SOCSW"}]
        assert data["attachments"][0]["attachment_id"] == person["attachment"]
        for other in people:
            if other is person:
                continue
            for field in PERSONAL:
                assert other[field] not in html
                assert other[field] not in download.get_data(as_text=True)
        sign_out(client)
    # The student's own looks are not staff access: their audit streams stay empty.
    for person in people:
        assert store.read_stream(f"audit-{person['sid']}") == []


def test_secrets_are_reported_as_existing_never_shown(world) -> None:  # type: ignore[no-untyped-def]
    app, identity, _, people = world
    person = people[0]
    identity.staff.set_password(person["account"].id, "a long synthetic passphrase 4711")
    client = app.test_client()
    sign_in(client, identity, person["account"])
    data = client.get(f"/students/{person['sid']}/my-data.json").json
    assert data["account"]["password_set"] is True
    hashed = identity.store.password_hash(person["account"].id)
    assert hashed is not None
    assert hashed not in json.dumps(data)
    assert "a long synthetic passphrase" not in json.dumps(data)


def test_attachment_download_is_an_attachment_with_nosniff_and_only_the_owners(world) -> None:  # type: ignore[no-untyped-def]
    app, identity, _, people = world
    mine, theirs = people[0], people[1]
    client = app.test_client()
    sign_in(client, identity, mine["account"])
    response = client.get(f"/students/{mine['sid']}/attachments/{mine['attachment']}")
    assert response.status_code == 200
    assert response.data.startswith(b"%PDF-")
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{mine["attachment"]}.pdf"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # Another student's file through my own id, their id, or an unknown id: all the same 404.
    assert client.get(f"/students/{mine['sid']}/attachments/{theirs['attachment']}").status_code == 404
    assert client.get(f"/students/{theirs['sid']}/attachments/{theirs['attachment']}").status_code == 404
    assert client.get(f"/students/{mine['sid']}/attachments/not-an-id").status_code == 404
    assert client.get(f"/students/{theirs['sid']}/my-data.json").status_code == 404


def test_a_coordinators_look_is_logged_in_the_audit_stream_without_moving_the_students_stream(world) -> None:  # type: ignore[no-untyped-def]
    app, identity, store, people = world
    person = people[2]
    coordinator = make_account(identity, "Coordinator", "coord@example.org", grants=[(Role.COORDINATOR, "SOCSW")])
    other_dept = make_account(identity, "Other", "other@example.org", grants=[(Role.COORDINATOR, "MED")])
    before = store.stream_version(f"student-{person['sid']}")
    client = app.test_client()
    sign_in(client, identity, coordinator)
    assert client.get(f"/students/{person['sid']}").status_code == 200
    assert client.get(f"/students/{person['sid']}/my-data").status_code == 200
    assert client.get(f"/students/{person['sid']}/my-data.json").status_code == 200
    assert client.get(f"/students/{person['sid']}/attachments/{person['attachment']}").status_code == 200
    sign_out(client)
    sign_in(client, identity, other_dept)
    assert client.get(f"/students/{person['sid']}/my-data").status_code == 404
    assert store.stream_version(f"student-{person['sid']}") == before
    logged = store.read_stream(f"audit-{person['sid']}")
    assert [e.data["what"] for e in logged] == ["my_cim", "export", "export", "attachment"]
    assert {e.data["viewer_account_id"] for e in logged} == {coordinator.id}
    assert {e.data["student_id"] for e in logged} == {person["sid"]}
    # Ids only: nothing personal of the student or the coordinator in the audit events.
    dumped = json.dumps([e.data for e in logged] + [e.metadata for e in logged])
    for field in PERSONAL:
        assert person[field] not in dumped
    assert "coord@example.org" not in dumped
    # And the student sees who looked (by account id) on their own page.
    sign_out(client)
    sign_in(client, identity, person["account"])
    data = client.get(f"/students/{person['sid']}/my-data.json").json
    assert [a["viewer_account_id"] for a in data["staff_access"]] == [coordinator.id] * 4


def test_my_data_page_is_in_swedish_too(world) -> None:  # type: ignore[no-untyped-def]
    app, identity, _, people = world
    client = app.test_client()
    sign_in(client, identity, people[0]["account"])
    page = client.get(f"/students/{people[0]['sid']}/my-data?lang=sv")
    assert page.status_code == 200
    assert "Mina uppgifter" in page.get_data(as_text=True)
    my_cim = client.get(f"/students/{people[0]['sid']}")
    assert f"/students/{people[0]['sid']}/my-data" in my_cim.get_data(as_text=True)
