"""The identity core wired as an app will wire it: Flask-free, connecting to nothing at import."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import fakeredis
from argon2 import PasswordHasher

from shared.clock import FixedClock
from shared.identity.sql_store import SqlIdentityStore
from shared.identity.wiring import build_identity

ROOT = Path(__file__).resolve().parents[2]


def test_identity_core_imports_no_flask_and_no_service() -> None:
    code = (
        "import sys, shared.identity.wiring, shared.identity.oidc;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'flask', 'intake_service', 'assessment_service', 'workers'}];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_a_wired_identity_signs_a_student_in_and_out(tmp_path: Path, clock: FixedClock) -> None:
    identity = build_identity(
        clock=clock,
        identity_key="k" * 40,
        db_url=f"sqlite:///{tmp_path / 'identity.db'}",
        redis=fakeredis.FakeRedis(),
        password_hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )
    assert isinstance(identity.store, SqlIdentityStore)
    identity.store.create_schema()
    student = identity.accounts.create_account("Ada", "ada@student.lu.se", student_id=str(uuid.uuid4()))
    link = identity.links.request_link("ada@student.lu.se")
    assert link is not None
    account = identity.links.redeem(link.token)
    sid = identity.sessions.create(account.id, auth_method="email-link")
    session = identity.sessions.get(sid)
    assert session is not None
    assert session.account_id == student.id
    identity.accounts.disable_account(student.id)
    assert identity.sessions.get(sid) is None
    assert identity.oidc is None
    identity.store.dispose()


def test_disabling_is_seen_even_if_the_sessions_were_not_revoked(clock: FixedClock) -> None:
    identity = build_identity(
        clock=clock, identity_key="k" * 40, password_hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    account = identity.accounts.create_account("Ada", "ada@lu.se")
    sid = identity.sessions.create(account.id)
    identity.store.set_disabled(account.id, True)  # e.g. by another process, bypassing revoke_all
    assert identity.sessions.get(sid) is None
