"""The API scopes the services check (`token_scope`, `with_token_scope`, `student_record`): the
list the administrators' token page offers. A scope the code checks must be here
(tests/unit/test_admin_pages.py reads the services' SCOPE_ constants)."""

from __future__ import annotations

#: Every scope a token may hold, in the order the token page lists them.
KNOWN_SCOPES: tuple[str, ...] = (
    "intake:register",
    "intake:write",
    "intake:read",
    "feed:read",
    "assessment:read",
    "assessment:review",
    "assessment:presentations",
    "assessment:statistics",
    "ops:read",
)
