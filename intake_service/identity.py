"""The one seam that says who is acting: the authenticated caller of this request."""

from __future__ import annotations

from shared.web.access import current_caller


def current_actor() -> str:
    """The actor recorded on every event this request causes: `account:<id>` for a signed-in
    person (or a token acting for one), `token:<id>` for an integration, else `anonymous`."""
    return current_caller().actor
