"""The report's PDF, fetched from the intake for the report page's readers (issue 17).

The intake stores the files students upload; the assessment service knows who may read a report
(its coordinators and the assessors assigned to it). So the report page links to this service's
own address for the PDF, which checks access here and fetches the file from the intake's API with
the feed's token (`CIM_FEED_TOKEN`, scope `feed:read`; the feed already carries the report's
answers), bounded in time and size. The intake answers only for a file of that very student.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import quote

from shared.config import Settings
from shared.errors import CimError

#: Fetches (student id, attachment id) -> the PDF's bytes, or None when the intake has no such file.
Fetcher = Callable[[str, str], "bytes | None"]


class IntakeUnavailable(CimError):
    """The intake did not answer (down, slow, or refused this service's token): 503, try later."""

    status = 503
    code = "intake_unavailable"


def http_fetcher(settings: Settings, *, timeout: float = 10.0, max_bytes: int = 64 * 1024 * 1024) -> Fetcher:
    """The production fetcher: GET /api/v1/students/<id>/attachments/<id> on the intake."""
    base = settings.intake_url.rstrip("/")  # the intake app itself (the feed server has no files)

    def fetch(student_id: str, attachment_id: str) -> bytes | None:
        url = f"{base}/api/v1/students/{quote(student_id, safe='')}/attachments/{quote(attachment_id, safe='')}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {settings.feed_token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                content: bytes = answer.read(max_bytes + 1)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise IntakeUnavailable(f"the intake answered {error.code}") from error
        except (OSError, TimeoutError) as error:
            raise IntakeUnavailable(str(error)) from error
        if len(content) > max_bytes:
            raise IntakeUnavailable("the file is larger than any upload may be")
        return content

    return fetch
