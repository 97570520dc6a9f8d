"""S1: schemathesis drives the intake API from its OpenAPI document against a real gunicorn."""

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

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Enough examples per operation for the brief's bar of at least 5,000 cases in all (S1).
DEFAULT_EXAMPLES = "400"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def intake_server(tmp_path: Path):
    port = _free_port()
    env = {**os.environ, "CIM_DATA_DIR": str(tmp_path), "CIM_WAKEUP": "none"}
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        # No request-line limit here: gunicorn's own 414 for an over-long query would count as
        # "invalid data accepted" to schemathesis, and it is the app's validation under test.
        [str(BIN / "gunicorn"), "-w", "1", "--limit-request-line", "0", "-b", f"127.0.0.1:{port}",
         "intake_service:create_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/api/v1/openapi.json", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("intake service did not start")
    yield base, tmp_path
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_schema_violation_or_accepted_invalid_data(intake_server):
    base, _tmp_path = intake_server
    examples = os.environ.get("CIM_SCHEMATHESIS_EXAMPLES", DEFAULT_EXAMPLES)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
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
    assert "Stateful" in output
