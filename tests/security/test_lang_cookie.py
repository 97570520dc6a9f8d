"""The `lang` cookie is Secure whenever the session cookie is (issue 18.9), on both apps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.world import make_world


def lang_cookie(headers: list[str]) -> str:
    (cookie,) = [h for h in headers if h.startswith("lang=")]
    return cookie


@pytest.mark.parametrize("secure", [True, False])
def test_the_language_cookie_is_secure_like_the_session_cookie(tmp_path: Path, secure: bool) -> None:
    world = make_world(tmp_path, cookie_secure=secure)
    pages = {"intake": "/", "assessment": "/auth/sign-in"}
    for name, app in world.apps.items():
        response = app.test_client().get(pages[name] + "?lang=sv")
        cookie = lang_cookie(response.headers.getlist("Set-Cookie"))
        assert cookie.startswith("lang=sv;")
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert ("secure" in attributes) is secure, (name, cookie)
        assert {"httponly", "samesite"} <= attributes
