"""The free-text reasons students give when withdrawing an activity or their registration are
personal data: sealed in the log with the student's key, and gone with it at erasure."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_personal_data import _bytes_under, _seed, api_client, app  # noqa: F401  (fixture)

REASON = "Caring for my sick brother Qwpzk"
PLAN = "Moved to Malmö with Qwpzk"


def test_withdrawal_reasons_are_sealed_and_erased(app, tmp_path: Path) -> None:  # noqa: F811
    client = api_client(app)
    sid = _seed(client, "Reasonname Tfgh", "reason.tfgh@example.org", "rt1234zz")
    activity = client.get(f"/api/v1/students/{sid}/events").json["events"][1]["data"]["activity_id"]
    assert client.post(f"/api/v1/students/{sid}/activities/{activity}/withdrawal",
                       json={"reason": REASON}).status_code == 200
    assert client.post(f"/api/v1/students/{sid}/withdrawal", json={"reason": PLAN}).status_code == 200
    stored = _bytes_under(tmp_path)
    assert REASON.encode() not in stored
    assert b"Qwpzk" not in stored
    events = client.get(f"/api/v1/students/{sid}/events").json["events"]
    assert [e["data"].get("reason") for e in events if "Withdrawn" in e["type"]] == [REASON, PLAN]

    result = app.test_cli_runner().invoke(args=["students", "erase", sid, "--operator", "coordinator-1"])
    assert result.exit_code == 0, result.output
    feed = client.get("/api/v1/events?after=0&limit=100").json["events"]
    reasons = [e["data"]["reason"] for e in feed if e["type"] in ("ActivityWithdrawn", "RegistrationWithdrawn")]
    assert reasons == [None, None]
