"""In production, each unsafe setting makes `create_app` of both apps refuse to start;
Celery accepts JSON only (a pickle message from anyone who reaches Redis would run code); no
secret material is committed. (pip-audit and bandit: `make audit`, not part of the test run.)
(bar S10; the key is in tests/README.md)"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from assessment_service import create_app as create_assessment_app
from intake_service import create_app as create_intake_app
from shared.adapters.memory_store import InMemoryEventStore
from shared.clock import FixedClock
from shared.config import _DEFAULT_SECRET, ROOT, Settings
from tests.authkit import make_identity
from tests.conftest import CLOCK_START
from tests.factories import at_once


def safe_production(tmp_path: Path, **changes: object) -> Settings:
    base = Settings(
        env="production",
        secret_key=secrets.token_urlsafe(40),
        vault_key=secrets.token_urlsafe(40),
        identity_key=secrets.token_urlsafe(40),
        intake_db_url="postgresql://cim@db.invalid/intake",
        assessment_db_url="postgresql://cim@db.invalid/assessment",
        identity_db_url="postgresql://cim@db.invalid/identity",
        data_dir=tmp_path,
        wakeup="none",
        ratelimit_storage="redis",
    )
    return base.with_overrides(**changes)


def unsafe_cases() -> list[tuple[str, dict[str, object], str]]:
    return [
        ("default secret key", {"secret_key": _DEFAULT_SECRET}, "CIM_SECRET_KEY"),
        ("short secret key", {"secret_key": "x" * 31}, "CIM_SECRET_KEY"),
        ("missing vault key", {"vault_key": ""}, "CIM_VAULT_KEY"),
        ("short vault key", {"vault_key": "v" * 20}, "CIM_VAULT_KEY"),
        ("vault key = secret key", {"vault_key": "same" * 10, "secret_key": "same" * 10}, "CIM_VAULT_KEY"),
        ("missing identity key", {"identity_key": ""}, "CIM_IDENTITY_KEY"),
        ("identity key = secret key", {"identity_key": "same" * 10, "secret_key": "same" * 10}, "CIM_IDENTITY_KEY"),
        ("DEBUG on", {"debug": True}, "DEBUG"),
        ("cookies not Secure", {"cookie_secure": False}, "CIM_COOKIE_SECURE"),
        ("SQLite intake store", {"intake_db_url": "sqlite:///var/intake.db"}, "CIM_INTAKE_DB_URL"),
        ("SQLite assessment store", {"assessment_db_url": "sqlite:///var/assessment.db"}, "CIM_ASSESSMENT_DB_URL"),
        ("SQLite identity store", {"identity_db_url": "sqlite:///var/identity.db"}, "CIM_IDENTITY_DB_URL"),
        ("per-process rate limits", {"ratelimit_storage": "memory://"}, "CIM_RATELIMIT_STORAGE"),
        ("OIDC without a client secret", {"oidc_issuer": "https://idp.example.org", "oidc_client_id": "cim"},
         "CIM_OIDC_CLIENT_SECRET"),
    ]


def test_the_safe_baseline_passes(tmp_path: Path) -> None:
    """The control: the refusals below come from the one setting each case changes."""
    settings = safe_production(tmp_path)
    settings.check_production_safety()
    clock = FixedClock(CLOCK_START)
    app = create_intake_app(settings, store=InMemoryEventStore(clock), clock=clock, identity=make_identity(clock))
    assert app.test_client().get("/").status_code == 200
    assert app.debug is False


@pytest.mark.parametrize(("what", "changes", "named"), unsafe_cases(), ids=[c[0] for c in unsafe_cases()])
@pytest.mark.parametrize("create", [create_intake_app, create_assessment_app], ids=["intake", "assessment"])
def test_an_unsafe_production_setting_stops_the_app(tmp_path: Path, what: str, changes: dict[str, object],
                                                    named: str, create) -> None:  # type: ignore[no-untyped-def]
    settings = safe_production(tmp_path, **changes)
    clock = FixedClock(CLOCK_START)
    with pytest.raises(RuntimeError, match="unsafe production settings") as refused:
        create(settings, store=InMemoryEventStore(clock), clock=clock, identity=make_identity(clock))
    assert named in str(refused.value), (what, str(refused.value))


@pytest.mark.parametrize(
    "environ",
    [
        {"CIM_ENV": "production"},
        {"CIM_ENV": "production", "CIM_SECRET_KEY": "short"},
        {"CIM_ENV": "production", "FLASK_DEBUG": "1"},
    ],
)
def test_unsafe_settings_from_the_environment_are_refused(tmp_path: Path, environ: dict[str, str]) -> None:
    safe = {
        "CIM_SECRET_KEY": secrets.token_urlsafe(40), "CIM_VAULT_KEY": secrets.token_urlsafe(40),
        "CIM_IDENTITY_KEY": secrets.token_urlsafe(40), "CIM_DATA_DIR": str(tmp_path),
        "CIM_INTAKE_DB_URL": "postgresql://cim@db.invalid/intake",
        "CIM_ASSESSMENT_DB_URL": "postgresql://cim@db.invalid/assessment",
        "CIM_IDENTITY_DB_URL": "postgresql://cim@db.invalid/identity",
    }
    only_env = environ == {"CIM_ENV": "production"}  # nothing else set: every default is unsafe
    settings = Settings.from_env(environ if only_env else {**safe, **environ})
    with pytest.raises(RuntimeError, match="unsafe production settings"):
        settings.check_production_safety()
    assert Settings.from_env({**safe, "CIM_ENV": "production"}).check_production_safety() is None


def test_development_defaults_are_not_refused(tmp_path: Path) -> None:
    Settings(data_dir=tmp_path).check_production_safety()


def test_celery_speaks_json_only() -> None:
    from workers.celery_app import app

    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert list(conf.result_accept_content) == ["json"]
    assert conf.event_serializer == "json"
    for name in ("task_serializer", "result_serializer", "event_serializer", "accept_content",
                 "result_accept_content"):
        assert "pickle" not in str(conf.get(name)), name


# -- secret scan -----------------------------------------------------------------------------------
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "Stripe live key": re.compile(r"\bsk_live_[A-Za-z0-9]{16,}\b"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "password in a URL": re.compile(r"\b[a-z+]+://[^/\s:@]+:(?!\$|\{|password\b|pass\b|secret\b)[^/\s:@]{6,}@"),
}
SKIP_DIRS = {".venv", "var", ".git", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache",
             ".hypothesis", "__pycache__"}
TEXT_SUFFIXES = {".py", ".toml", ".md", ".txt", ".cfg", ".ini", ".yml", ".yaml", ".json", ".sh", ".html",
                 ".po", ".lock", ".env", ""}


def scanned_files() -> list[Path]:
    found = []
    for path in ROOT.rglob("*"):
        if any(part in SKIP_DIRS for part in path.relative_to(ROOT).parts):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES and path.stat().st_size < 2_000_000:
            found.append(path)
    return found


def test_no_secret_material_is_committed() -> None:
    files = scanned_files()
    assert len(files) > 50
    hits = []
    for path in files:
        text = path.read_text(errors="replace")
        for what, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                hits.append((str(path.relative_to(ROOT)), what, match.group(0)[:40]))
    assert not hits, hits


def test_the_secret_scan_would_find_one() -> None:
    # Built from parts, so that this file does not trip the scan itself.
    sample = "key = '-----BEGIN RSA " + "PRIVATE KEY-----'\nurl = 'postgresql://cim:" + "hunter2hunter2@db/cim'"
    assert SECRET_PATTERNS["private key"].search(sample)
    assert SECRET_PATTERNS["password in a URL"].search(sample)


def test_the_workers_refuse_unsafe_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import settings as worker_settings

    worker_settings.settings.cache_clear()
    monkeypatch.setenv("CIM_ENV", "production")
    monkeypatch.delenv("CIM_SECRET_KEY", raising=False)
    try:
        with pytest.raises(RuntimeError, match="CIM_SECRET_KEY"):
            worker_settings.settings()
    finally:
        worker_settings.settings.cache_clear()


# -- issue 18.2: the check cannot be skipped by a spelling; issue 18.1: no working secret -------------
def production_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "CIM_SECRET_KEY": secrets.token_urlsafe(40), "CIM_VAULT_KEY": secrets.token_urlsafe(40),
        "CIM_IDENTITY_KEY": secrets.token_urlsafe(40), "CIM_DATA_DIR": str(tmp_path),
        "CIM_INTAKE_DB_URL": "postgresql://cim@db.invalid/intake",
        "CIM_ASSESSMENT_DB_URL": "postgresql://cim@db.invalid/assessment",
        "CIM_IDENTITY_DB_URL": "postgresql://cim@db.invalid/identity",
        "CIM_ENV": "production",
    }


@pytest.mark.parametrize("spelling", ["Production", "prod", "PRODUCTION", "production ", "", "staging", "dev"])
def test_an_unknown_environment_name_refuses_to_start(tmp_path: Path, spelling: str) -> None:
    with pytest.raises(RuntimeError, match="CIM_ENV must be exactly one of development, test, production"):
        Settings.from_env({"CIM_ENV": spelling, "CIM_DATA_DIR": str(tmp_path)})
    with pytest.raises(RuntimeError, match="CIM_ENV"):
        Settings(env=spelling, data_dir=tmp_path)


def test_the_known_environments_start(tmp_path: Path) -> None:
    for name in ("development", "test"):
        assert Settings.from_env({"CIM_ENV": name, "CIM_DATA_DIR": str(tmp_path)}).env == name
    Settings.from_env(production_environ(tmp_path)).check_production_safety()


@pytest.mark.parametrize("variable", ["CIM_INTAKE_DB_URL", "CIM_ASSESSMENT_DB_URL", "CIM_IDENTITY_DB_URL"])
def test_every_store_left_on_sqlite_is_refused_in_production(tmp_path: Path, variable: str) -> None:
    environ = production_environ(tmp_path)
    for unset in (True, False):
        changed = dict(environ)
        if unset:
            del changed[variable]  # the default: SQLite under the data directory
        else:
            changed[variable] = f"sqlite:///{tmp_path / 'x.db'}"
        with pytest.raises(RuntimeError, match=variable):
            Settings.from_env(changed).check_production_safety()


def test_development_makes_its_own_keys_once_and_keeps_them_private(tmp_path: Path) -> None:
    first = Settings.from_env({"CIM_DATA_DIR": str(tmp_path)})
    kept = tmp_path / "secrets.env"
    assert kept.stat().st_mode & 0o777 == 0o600
    keys = {first.secret_key, first.vault_key, first.identity_key}
    assert len(keys) == 3
    assert all(len(k) >= 32 for k in keys)
    assert all(k in kept.read_text() for k in keys)
    again = Settings.from_env({"CIM_DATA_DIR": str(tmp_path)})
    assert (again.secret_key, again.vault_key, again.identity_key) == (
        first.secret_key, first.vault_key, first.identity_key)
    elsewhere = Settings.from_env({"CIM_DATA_DIR": str(tmp_path / "other")})
    assert elsewhere.secret_key not in keys
    # A key the operator sets wins over the kept one.
    chosen = secrets.token_urlsafe(40)
    assert Settings.from_env({"CIM_DATA_DIR": str(tmp_path), "CIM_SECRET_KEY": chosen}).secret_key == chosen


def test_production_never_makes_or_reads_kept_keys(tmp_path: Path) -> None:
    Settings.from_env({"CIM_DATA_DIR": str(tmp_path)})  # a development start left its keys here
    environ = production_environ(tmp_path)
    del environ["CIM_SECRET_KEY"]
    with pytest.raises(RuntimeError, match="CIM_SECRET_KEY"):
        Settings.from_env(environ).check_production_safety()


def test_processes_starting_together_agree_on_the_kept_keys(tmp_path: Path) -> None:
    seen = at_once(8, lambda: Settings.from_env({"CIM_DATA_DIR": str(tmp_path)}).vault_key)
    assert len(seen) == 8
    assert len(set(seen)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.env"]


def test_no_working_secret_is_in_the_repository() -> None:
    config = (ROOT / "shared" / "config.py").read_text()
    assert "dev-only-insecure" not in config
    assert _DEFAULT_SECRET not in config  # the code default is random per process
    compose = (ROOT / "docker-compose.yml").read_text()
    for name in ("CIM_SECRET_KEY", "CIM_VAULT_KEY", "CIM_IDENTITY_KEY"):
        [line] = [ln for ln in compose.splitlines() if ln.strip().startswith(f"{name}:")]
        assert f"${{{name}:?" in line, line  # taken from .env, refused when missing
    run = (ROOT / "scripts" / "run.sh").read_text()
    assert "shared.local_secrets" in run
