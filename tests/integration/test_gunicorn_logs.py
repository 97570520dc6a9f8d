"""gunicorn's own log lines are JSON like the apps' (config/gunicorn.conf.py, shared.web.gunicorn_logs)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_gunicorn_start_up_and_shut_down_are_logged_as_json_and_requests_are_not(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    env.update(CIM_DATA_DIR=str(tmp_path / "data"), CIM_WAKEUP="none", CIM_RATELIMIT_STORAGE="memory://")
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(GUNICORN), "--config", "config/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--threads", "2", "--no-control-socket", "intake_service:create_app()"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            answered = False
            while time.monotonic() < deadline and proc.poll() is None and not answered:
                with contextlib.suppress(requests.RequestException):
                    answered = requests.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=2).ok
                time.sleep(0.1)
            assert answered, log_path.read_text()[-2000:]
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line: one JSON object
    messages = [(r["logger"], r["message"]) for r in records]
    assert ("gunicorn.error", f"Listening at: http://127.0.0.1:{port} ({proc.pid})") in messages
    assert any(logger == "gunicorn.error" and m.startswith("Booting worker") for logger, m in messages)
    assert ("gunicorn.error", "Shutting down: Master") in messages
    # No access log unless asked for (--access-logfile): it would hold client addresses.
    assert not any("openapi.json" in m for _, m in messages)
