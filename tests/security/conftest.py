"""The sign-in pages' fixtures (an app's event store, identity, mailer and settings, and the
compiled Swedish catalogue), shared with tests/unit/test_auth_pages.py where they are declared."""

from tests.unit.test_auth_pages import _compiled_swedish, identity, mailer, settings, store  # noqa: F401
