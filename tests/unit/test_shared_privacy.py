"""The downloads both services' "My data" views hand out (shared.web.privacy): always a download,
never sniffed or cached, and the JSON readable as the student will open it."""

from __future__ import annotations

import json

from flask import Flask

from shared.web.privacy import download, json_download


def test_the_json_export_is_a_readable_download_that_is_never_cached_or_sniffed() -> None:
    with Flask(__name__).test_request_context():
        response = json_download({"name": "Åsa Exempel", "n": 1}, "cim-my-data-1.json")
    body = response.get_data(as_text=True)
    assert "Åsa Exempel" in body  # not \\u00c5sa: the file is for a person to read
    assert json.loads(body) == {"name": "Åsa Exempel", "n": 1}
    assert "\n  " in body  # indented
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == 'attachment; filename="cim-my-data-1.json"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_stored_file_is_sent_as_an_attachment_under_the_given_name() -> None:
    with Flask(__name__).test_request_context():
        response = download(b"%PDF-1.7", "application/pdf", "0f0e.pdf")
    assert response.get_data() == b"%PDF-1.7"
    assert response.headers["Content-Disposition"] == 'attachment; filename="0f0e.pdf"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
