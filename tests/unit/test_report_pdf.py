"""The report's PDF on the assessment service's report page (issue 17): linked, served to the
report's readers only, fetched from the intake over HTTP with the feed's token."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from assessment_service.intake_files import IntakeUnavailable, http_fetcher
from shared.config import Settings
from tests.security.pdfkit import simple_pdf
from tests.security.world import World, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(Path(tmp_path_factory.mktemp("report-pdf")))


def _views(world: World, student_id: str) -> list[dict]:
    store = world.assessment.extensions["cim.assessment"].store
    return [dict(e.data) for e in store.read_all(0, 10_000)
            if e.type == "PersonalDataViewed" and e.data["student_id"] == student_id]


def test_the_coordinator_opens_the_student_s_pdf_from_the_report_page(world: World) -> None:
    student = world.students[0]
    browser = world.browser(world.assessment, world.staff["coordinator"])
    page = browser.get(f"/reports/{student.report_id}").get_data(as_text=True)
    assert f'href="/reports/{student.report_id}/report.pdf"' in page
    before = len(_views(world, student.student_id))
    pdf = browser.get(f"/reports/{student.report_id}/report.pdf")
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert pdf.data == simple_pdf()  # the very file the student uploaded
    assert pdf.headers["Cache-Control"] == "no-store"
    assert len(_views(world, student.student_id)) == before + 1  # a staff read, recorded


@pytest.mark.parametrize("who", ["assessor", "administrator"])
def test_staff_who_may_not_read_the_report_get_no_pdf(world: World, who: str) -> None:
    report_id = world.students[0].report_id
    assert world.browser(world.assessment, world.staff[who]).get(f"/reports/{report_id}/report.pdf").status_code in (
        403, 404)


def test_the_intake_being_down_is_a_clear_503_not_a_crash(world: World) -> None:
    def down(student_id: str, attachment_id: str) -> bytes | None:
        raise IntakeUnavailable("connection refused")

    saved = world.assessment.extensions["cim.intake_files"]
    world.assessment.extensions["cim.intake_files"] = down
    try:
        answer = world.browser(world.assessment, world.staff["coordinator"]).get(
            f"/reports/{world.students[0].report_id}/report.pdf")
    finally:
        world.assessment.extensions["cim.intake_files"] = saved
    assert answer.status_code == 503
    assert "text/html" in answer.content_type


class _Intake(BaseHTTPRequestHandler):
    """A stand-in intake: the PDF for the right token and path, 404 for another, 500 otherwise."""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer feed-token":
            self.send_response(403)
            self.end_headers()
            return
        if self.path == "/api/v1/students/s1/attachments/a1":
            body = b"%PDF-1.7 the file"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/api/v1/students/s1/"):
            self.send_response(404)
            self.end_headers()
        else:
            self.send_response(500)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def intake_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Intake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_http_fetcher_presents_the_feed_token_and_tells_missing_from_down(intake_url: str) -> None:
    fetch = http_fetcher(Settings(intake_url=intake_url, feed_token="feed-token"), timeout=5)
    assert fetch("s1", "a1") == b"%PDF-1.7 the file"
    assert fetch("s1", "a2") is None  # no such file: the page answers 404
    with pytest.raises(IntakeUnavailable):
        fetch("s2", "a1")  # the intake failed
    with pytest.raises(IntakeUnavailable):
        http_fetcher(Settings(intake_url=intake_url, feed_token="wrong"), timeout=5)("s1", "a1")  # refused
    with pytest.raises(IntakeUnavailable):
        http_fetcher(Settings(intake_url="http://127.0.0.1:9", feed_token="feed-token"), timeout=2)("s1", "a1")


def test_the_intake_serves_the_file_to_the_feed_s_token_only(world: World) -> None:
    from tests.authkit import authed_client, bearer

    student = world.students[0]
    path = f"/api/v1/students/{student.student_id}/attachments/{student.attachment_id}"
    assert authed_client(world.intake, bearer(world.identity, "feed:read")).get(path).data == simple_pdf()
    reader = authed_client(world.intake, bearer(world.identity, "intake:read", name="reader"))
    assert reader.get(path).status_code == 403
    other = world.students[1]
    wrong = f"/api/v1/students/{other.student_id}/attachments/{student.attachment_id}"
    assert authed_client(world.intake, bearer(world.identity, "feed:read", name="feed2")).get(wrong).status_code == 404
