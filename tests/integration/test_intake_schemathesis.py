"""Schemathesis drives the intake API from its OpenAPI document against a real gunicorn
(bar S1; the key is in tests/README.md)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.authkit import ALL_INTAKE_SCOPES, IDENTITY_KEY, sql_identity

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Enough examples per operation for bar S1's at least 5,000 cases in all (S1).
DEFAULT_EXAMPLES = "400"


_ID = r"[^/]+"
#: The operations of the document, by the requests that reach them.
OPERATIONS = {
    name: re.compile(f"^{pattern}$")
    for name, pattern in {
        "registerStudent": "POST /api/v1/students",
        "logActivity": f"POST /api/v1/students/{_ID}/activities",
        "amendActivity": f"POST /api/v1/students/{_ID}/activities/{_ID}/amendments",
        "withdrawActivity": f"POST /api/v1/students/{_ID}/activities/{_ID}/withdrawal",
        "uploadAttachment": f"POST /api/v1/students/{_ID}/attachments",
        "submitReport": f"POST /api/v1/students/{_ID}/reports",
        "resubmitReport": f"POST /api/v1/students/{_ID}/reports/{_ID}/resubmission",
        "completeStudies": f"POST /api/v1/students/{_ID}/studies-completed",
        "withdrawRegistration": f"POST /api/v1/students/{_ID}/withdrawal",
        "studentEvents": f"GET /api/v1/students/{_ID}/events",
        "eventFeed": "GET /api/v1/events",
    }.items()
}


def access_log(path: Path) -> list[tuple[str, str, int]]:
    """(method, path, status) of every request gunicorn answered."""
    answers = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        method, _, rest = line.partition(" ")
        request_path, _, status = rest.rpartition(" ")
        if status.isdigit():
            answers.append((method, request_path, int(status)))
    return answers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def intake_server(tmp_path: Path):
    port = _free_port()
    # An integration's token with every intake scope, made in the identity database the served
    # app reads (the token is only ever stored as its sha256 there).
    identity_db = f"sqlite:///{tmp_path / 'identity.db'}"
    identity = sql_identity(identity_db)
    token = identity.api_tokens.create("schemathesis", ALL_INTAKE_SCOPES).token
    identity.store.dispose()  # type: ignore[attr-defined]
    env = {
        **os.environ,
        "CIM_DATA_DIR": str(tmp_path),
        "CIM_WAKEUP": "none",
        "CIM_IDENTITY_DB_URL": identity_db,
        "CIM_IDENTITY_KEY": IDENTITY_KEY,
        # Thousands of requests from one address in a few minutes: the rate limit (S5, tested on
        # its own) would answer most of them 429; here the API's own answers are under test.
        "CIM_RATELIMIT_STORAGE": "memory://",
        "CIM_RATELIMIT_POST": "1000000 per minute",
    }
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        # No request-line limit here: gunicorn's own 414 for an over-long query would count as
        # "invalid data accepted" to schemathesis, and it is the app's validation under test.
        [str(BIN / "gunicorn"), "-w", "1", "--limit-request-line", "0", "-b", f"127.0.0.1:{port}",
         "--access-logfile", str(tmp_path / "access.log"), "--access-logformat", "%(m)s %(U)s %(s)s",
         "intake_service:create_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/api/v1/openapi.json", timeout=1).ok:
                break
        except requests.RequestException:  # not listening yet, or the worker still loading the app
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("intake service did not start")
    # Without a token the API refuses (the published document above stays public).
    assert requests.get(f"{base}/api/v1/events", timeout=5).status_code == 401
    yield base, tmp_path, token
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_schema_violation_or_accepted_invalid_data(intake_server):
    base, tmp_path, token = intake_server
    examples = os.environ.get("CIM_SCHEMATHESIS_EXAMPLES", DEFAULT_EXAMPLES)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
        "CIM_SCHEMATHESIS_TOKEN": token,  # the hooks authenticate every request with it
    }
    # positive_data_acceptance is left out: the catalogue's rules (e.g. which settings an
    # activity kind allows) reject some schema-valid requests with a 422, as they should.
    run = subprocess.run(
        [str(BIN / "st"), "run", f"{base}/api/v1/openapi.json", "--checks", "all",
         "--exclude-checks", "positive_data_acceptance", "-n", examples, "-w", "1",
         "--max-failures", "20"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-8000:]
    generated = int(re.search(r"(\d+) generated", output).group(1))
    assert generated >= 5000 or examples != DEFAULT_EXAMPLES, f"only {generated} cases: {output[-2000:]}"
    summary = re.search(r"Test cases:\s*\n\s*(.*)", output)
    print(f"schemathesis test cases: {summary.group(1) if summary else generated}")
    assert "Stateful" in output
    # Every operation declares its bearer security, so schemathesis' `ignored_auth` check (in
    # "all") probed each one also without the token and with a wrong one; it found nothing (the
    # run passed), and the server's log shows the refusals (401) for every operation, next to the
    # authenticated successes.
    answers = access_log(tmp_path / "access.log")
    assert not [a for a in answers if a[2] >= 500], "server errors in the access log"
    for operation, pattern in OPERATIONS.items():
        statuses = {status for method, path, status in answers if pattern.match(f"{method} {path}")}
        assert 401 in statuses, f"{operation}: no request without a valid token was refused ({statuses})"
    assert any(m == "POST" and p == "/api/v1/students" and s == 201 for m, p, s in answers)
