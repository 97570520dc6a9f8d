"""The visual identity on the assessment service (issue 17): a report's pages wear its department's
look, the review queue the global one."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from shared.config import Settings
from tests.unit.test_assessment_app import (  # noqa: F401  (fixtures)
    app,
    catch_up,
    identity,
    intake,
    log_activity,
    register,
    reviewer,
    store,
    submit,
)
from tests.unit.test_branding import write_branding


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, upload_dir=tmp_path / "uploads", ratelimit_storage="memory://",
                    branding_file=write_branding(tmp_path / "config"))


def test_a_report_s_pages_wear_its_department_s_look(intake: FlaskClient, app: Flask) -> None:  # noqa: F811
    sid = register(intake)
    report = submit(intake, sid, [log_activity(intake, sid)])
    catch_up(app)
    coordinator = reviewer(app)
    for path in (f"/reports/{report}", f"/reports/{report}/reviews", f"/reports/{report}/changes"):
        page = coordinator.get(f"{path}?lang=en")
        assert page.status_code == 200, path
        assert '<span class="brand-department">School of Social Work</span>' in page.text, path
        assert '<link rel="stylesheet" href="/look/SOCSW/theme.css?v=' in page.text, path
        assert 'src="/look/SOCSW/logo?v=' in page.text, path
    queue = coordinator.get("/queue?lang=en").text
    assert 'class="brand-department"' not in queue
    assert '<span class="brand-university">Exempel University</span>' in queue
    assert 'src="/look/logo?v=' in queue
