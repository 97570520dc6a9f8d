"""The sign-in pages' fixtures (an app's event store, identity, mailer, settings, the app and its
client), shared with tests/unit/test_auth_pages.py where they are declared."""

from tests.unit.test_auth_pages import app, client, identity, mailer, settings, store  # noqa: F401
