"""Personal data is sealed with a per-student key: erasure destroys the key, the log stays."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from intake_service import create_app
from shared.clock import FixedClock
from shared.config import Settings
from tests.authkit import authed_client, bearer, make_identity
from tests.factories import blank_pdf
from tests.unit.test_intake_api import ACTIVITY, STUDENT

CANARY = "Canaryname Qzxw"
CANARY_MAIL = "canary.qzxw@example.org"


@pytest.fixture
def app(tmp_path: Path):
    clock = FixedClock(datetime(2026, 11, 28, tzinfo=UTC))
    return create_app(Settings(data_dir=tmp_path, wakeup="none", ratelimit_storage="memory://"), clock=clock,
                      identity=make_identity(clock))


def api_client(app):  # type: ignore[no-untyped-def]
    """An integration with every intake scope (register, write, read, feed)."""
    return authed_client(app, bearer(app.extensions["cim.identity"]))


def _bytes_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def _seed(client, name: str, mail: str, uid: str) -> str:
    sid = client.post("/api/v1/students", json={**STUDENT, "name": name, "email": mail, "university_id": uid}).json[
        "student_id"
    ]
    client.post(f"/api/v1/students/{sid}/activities", json={**ACTIVITY, "description": f"{name} went abroad"})
    client.post(f"/api/v1/students/{sid}/attachments", data=blank_pdf(100), content_type="application/pdf",
                headers={"X-Filename": f"{name}.pdf"})
    return sid


def test_personal_fields_never_reach_the_database_in_clear(app, tmp_path):
    client = api_client(app)
    sid = _seed(client, CANARY, CANARY_MAIL, "cq1234zz")
    blob = _bytes_under(tmp_path)
    assert CANARY.encode() not in blob
    assert CANARY_MAIL.encode() not in blob
    events = client.get(f"/api/v1/students/{sid}/events").json["events"]
    assert events[0]["data"]["name"] == CANARY
    assert events[1]["data"]["description"] == f"{CANARY} went abroad"


def test_erasure_destroys_the_key_and_keeps_the_facts(app, tmp_path):
    client = api_client(app)
    erased = _seed(client, CANARY, CANARY_MAIL, "cq1234zz")
    kept = _seed(client, "Keptname Vbnm", "kept.vbnm@example.org", "kv5678zz")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["students", "erase", erased, "--operator", "coordinator-1"])
    assert result.exit_code == 0, result.output
    feed = client.get("/api/v1/events?after=0&limit=100").json["events"]
    mine = [e for e in feed if e["stream_id"] == f"student-{erased}"]
    assert [e["type"] for e in mine][-1] == "StudentErased"
    assert mine[0]["data"]["name"] is None
    assert mine[0]["data"]["email"] is None
    assert mine[0]["data"]["department"] == "SOCSW"  # facts for statistics stay
    # What the student typed about the activity is sealed too; what kind of activity it was stays.
    typed = mine[1]["data"]
    assert (typed["title"], typed["organiser"], typed["description"]) == (None, None, None)
    assert (mine[1]["data"]["kind"], mine[1]["data"]["setting"]) == (ACTIVITY["kind"], ACTIVITY["setting"])
    theirs = [e for e in feed if e["stream_id"] == f"student-{kept}"]
    assert theirs[0]["data"]["name"] == "Keptname Vbnm"
    # Nothing more can be recorded for the erased student; a repeat is harmless.
    assert client.post(f"/api/v1/students/{erased}/activities", json=ACTIVITY).status_code == 404
    assert runner.invoke(args=["students", "erase", erased, "--operator", "coordinator-1"]).exit_code == 0
    assert len(list((tmp_path / "uploads").glob("*.pdf"))) == 1


def test_export_holds_everything_about_the_student_and_nothing_else(app):
    client = api_client(app)
    sid = _seed(client, CANARY, CANARY_MAIL, "cq1234zz")
    _seed(client, "Othername Plok", "other.plok@example.org", "op9999zz")
    result = app.test_cli_runner().invoke(args=["students", "export", sid])
    assert result.exit_code == 0
    assert CANARY in result.output
    assert CANARY_MAIL in result.output
    assert "Othername" not in result.output
