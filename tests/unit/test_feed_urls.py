"""The HTTP feed reader opens http(s) URLs only (urllib would also open file:// and ftp://)."""

from __future__ import annotations

import pytest

from shared.adapters.feed import HttpEventFeed


def test_a_feed_is_only_read_over_http() -> None:
    for url in ("file:///etc", "ftp://example.org", "intake:8000"):
        with pytest.raises(ValueError, match="http"):
            HttpEventFeed(url)
    assert HttpEventFeed("https://intake.example.org").url == "https://intake.example.org/api/v1/events"
