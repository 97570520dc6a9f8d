"""docker-compose.yml loads as YAML and every web service has a health check on /health
(issue 16.2; no Docker engine here, so the file itself is what is checked)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_loads_and_web_services_check_health() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, port in (("intake", 8000), ("intake-feed", 8002), ("assessment", 8001)):
        check = services[name]["healthcheck"]
        assert check["test"][0] == "CMD"
        assert f"http://127.0.0.1:{port}/health" in " ".join(check["test"])
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name]
