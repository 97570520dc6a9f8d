"""Settings from the environment (12-factor): the only module that reads os.environ."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shared import local_secrets

ROOT = Path(__file__).resolve().parent.parent

#: The environments CIM knows; CIM_ENV must name one exactly (a typo must not skip the
#: production checks). "test" behaves as "development".
ENVIRONMENTS = ("development", "test", "production")

#: `Settings()` built in code (tests) gets a random key per process: no working secret lives in
#: the repository. `from_env` never uses it (the keys come from the environment, or in development
#: from $CIM_DATA_DIR/secrets.env); production refuses it, as it would not survive a restart.
_DEFAULT_SECRET = secrets.token_urlsafe(48)

#: Store URLs production must point at PostgreSQL, by the variable that sets each.
STORE_URL_VARIABLES = {
    "intake_db_url": "CIM_INTAKE_DB_URL",
    "assessment_db_url": "CIM_ASSESSMENT_DB_URL",
    "identity_db_url": "CIM_IDENTITY_DB_URL",
}


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the embedded default (SQLite under var/, local Redis)."""

    env: str = "development"
    secret_key: str = _DEFAULT_SECRET
    vault_key: str = ""
    data_dir: Path = ROOT / "var"
    intake_db_url: str = ""
    assessment_db_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    departments_file: Path = ROOT / "config" / "departments.toml"
    #: The term calendar deadlines are counted in (assessment_service/terms.py).
    terms_file: Path = ROOT / "config" / "terms.toml"
    #: The visual identity: names, logos and colours, global and per department (shared/branding.py).
    branding_file: Path = ROOT / "config" / "branding.toml"
    #: The departments' credential signing keys (assessment_service/credential_keys.py): never
    #: under the data directory a database backup copies (docs/operations.md, "Backups").
    credential_keys_dir: Path = ROOT / "var" / "credential-keys"
    #: TEST ONLY: a file holding seconds to add to the wall clock (shared.clock.OffsetFileClock);
    #: read from CIM_CLOCK_FILE only when CIM_ENV=test, ignored otherwise.
    clock_file: Path | None = None
    upload_dir: Path | None = None
    max_upload_bytes: int = 10 * 1024 * 1024
    max_request_bytes: int = 12 * 1024 * 1024
    #: The report forms' bodies: room for a PDF well over `max_upload_bytes`, so the form can say
    #: "too large" beside the file and keep the typed answers (the excess spools to a temp file).
    max_report_form_bytes: int = 64 * 1024 * 1024
    intake_url: str = "http://127.0.0.1:8000"
    #: Where the workers read the intake feed: the feed server (`create_feed_app`); empty = intake_url.
    intake_feed_url: str = ""
    assessment_url: str = "http://127.0.0.1:8001"
    wakeup: str = "celery"
    default_locale: str = "en"
    log_level: str = "INFO"
    # Identity (issue 4): accounts, sessions, sign-in.
    identity_db_url: str = ""
    identity_key: str = ""
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    email_link_minutes: int = 15
    setup_link_hours: int = 72
    # The session cookie is `__Host-` and Secure. Browsers accept Secure cookies from
    # http://127.0.0.1 and http://localhost, so only a plain-HTTP deployment on another host
    # needs this off (and then the cookie loses its `__Host-` prefix).
    cookie_secure: bool = True
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_redirect_uri: str = ""
    oidc_scopes: str = "openid email profile"
    # Outgoing mail: sign-in links now, reminders later. `make run` starts a local SMTP sink.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_from: str = "CIM <cim-noreply@example.org>"
    smtp_timeout_seconds: float = 10.0
    #: "none" (plain, the local sink), "starttls" (port 587) or "tls" (implicit TLS, port 465).
    smtp_security: str = "none"
    smtp_user: str = ""
    smtp_password: str = ""
    #: A PEM file of the CA certificates to trust for the SMTP server's certificate (starttls/tls),
    #: e.g. an internal CA; empty: the system's trust store. The host name is always checked.
    smtp_ca_file: str = ""
    # Rate limits (Flask-Limiter): "redis" shares counters across processes through CIM_REDIS_URL;
    # "memory://" keeps them per process (tests).
    ratelimit_storage: str = "memory://"  # Settings() in code and tests; from_env defaults to "redis"
    ratelimit_signin: str = "10 per minute;50 per hour"
    ratelimit_post: str = "120 per minute"
    debug: bool = False
    # The API token the workers and the intake status view present when they read a feed
    # (scope feed:read). `make run` mints one at start.
    feed_token: str = ""
    #: The clock guard (shared/clock_guard.py): the date-driven jobs (retention, deadline sweep,
    #: overdue-review mails, digests) refuse a date more than this many days after the last run.
    clock_jump_days: int = 3

    def __post_init__(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise RuntimeError(
                f"CIM_ENV must be exactly one of {', '.join(ENVIRONMENTS)}; got {self.env!r}: refusing to start"
            )
        data_dir = Path(self.data_dir)
        object.__setattr__(self, "data_dir", data_dir)
        if not self.intake_db_url:
            object.__setattr__(self, "intake_db_url", f"sqlite:///{data_dir / 'intake.db'}")
        if not self.assessment_db_url:
            object.__setattr__(self, "assessment_db_url", f"sqlite:///{data_dir / 'assessment.db'}")
        object.__setattr__(self, "upload_dir", Path(self.upload_dir or data_dir / "uploads"))
        if not self.identity_db_url:
            object.__setattr__(self, "identity_db_url", f"sqlite:///{data_dir / 'identity.db'}")
        if self.smtp_security not in ("none", "starttls", "tls"):
            raise RuntimeError(f"CIM_SMTP_SECURITY must be none, starttls or tls; got {self.smtp_security!r}")
        if self.clock_jump_days < 1:
            raise RuntimeError(f"CIM_CLOCK_JUMP_DAYS must be at least 1; got {self.clock_jump_days}")
        if self.smtp_ca_file and not Path(self.smtp_ca_file).is_file():
            raise RuntimeError(f"CIM_SMTP_CA_FILE names no file: {self.smtp_ca_file!r}")

    @property
    def identity_secret(self) -> str:
        """Keys e-mail links and seals TOTP secrets; apart from CIM_SECRET_KEY so that rotating
        the cookie key does not lock staff out of their authenticator."""
        return self.identity_key or self.secret_key

    @property
    def ratelimit_storage_uri(self) -> str:
        return self.redis_url if self.ratelimit_storage == "redis" else self.ratelimit_storage

    @property
    def session_cookie_name(self) -> str:
        return "__Host-cim_session" if self.cookie_secure else "cim_session"

    @property
    def vault_secret(self) -> str:
        """Wraps the per-student keys. Separate from the session secret so that rotating
        CIM_SECRET_KEY does not make every student's data unreadable."""
        return self.vault_key or self.secret_key

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("CIM_DATA_DIR", str(ROOT / "var")))
        environment = env.get("CIM_ENV", "development")
        keys = {name: env.get(name, "") for name in local_secrets.KEYS}
        if environment in ENVIRONMENTS and environment != "production" and not all(keys.values()):
            # The embedded default: keys made on first start and kept under the data directory.
            made = local_secrets.load_or_create(data_dir / local_secrets.FILE_NAME)
            keys = {name: keys[name] or made[name] for name in keys}
        values: dict[str, Any] = {
            "env": environment,
            "secret_key": keys["CIM_SECRET_KEY"],
            "vault_key": keys["CIM_VAULT_KEY"],
            "data_dir": data_dir,
            "intake_db_url": env.get("CIM_INTAKE_DB_URL", ""),
            "assessment_db_url": env.get("CIM_ASSESSMENT_DB_URL", ""),
            "redis_url": env.get("CIM_REDIS_URL", cls.redis_url),
            "departments_file": Path(env.get("CIM_DEPARTMENTS_FILE", str(cls.departments_file))),
            "terms_file": Path(env.get("CIM_TERMS_FILE", str(cls.terms_file))),
            "branding_file": Path(env.get("CIM_BRANDING_FILE", str(cls.branding_file))),
            "credential_keys_dir": Path(env.get("CIM_CREDENTIAL_KEYS_DIR", str(cls.credential_keys_dir))),
            "clock_file": Path(env["CIM_CLOCK_FILE"]) if env.get("CIM_CLOCK_FILE") and environment == "test" else None,
            "upload_dir": Path(env["CIM_UPLOAD_DIR"]) if env.get("CIM_UPLOAD_DIR") else None,
            "max_upload_bytes": int(env.get("CIM_MAX_UPLOAD_BYTES", cls.max_upload_bytes)),
            "max_request_bytes": int(env.get("CIM_MAX_REQUEST_BYTES", cls.max_request_bytes)),
            "max_report_form_bytes": int(env.get("CIM_MAX_REPORT_FORM_BYTES", cls.max_report_form_bytes)),
            "intake_url": env.get("CIM_INTAKE_URL", cls.intake_url),
            "intake_feed_url": env.get("CIM_INTAKE_FEED_URL", cls.intake_feed_url),
            "assessment_url": env.get("CIM_ASSESSMENT_URL", cls.assessment_url),
            "wakeup": env.get("CIM_WAKEUP", cls.wakeup),
            "default_locale": env.get("CIM_DEFAULT_LOCALE", cls.default_locale),
            "log_level": env.get("CIM_LOG_LEVEL", cls.log_level),
            "identity_db_url": env.get("CIM_IDENTITY_DB_URL", ""),
            "identity_key": keys["CIM_IDENTITY_KEY"],
            "session_idle_minutes": int(env.get("CIM_SESSION_IDLE_MINUTES", cls.session_idle_minutes)),
            "session_absolute_hours": int(env.get("CIM_SESSION_ABSOLUTE_HOURS", cls.session_absolute_hours)),
            "email_link_minutes": int(env.get("CIM_EMAIL_LINK_MINUTES", cls.email_link_minutes)),
            "setup_link_hours": int(env.get("CIM_SETUP_LINK_HOURS", cls.setup_link_hours)),
            "cookie_secure": _bool(env.get("CIM_COOKIE_SECURE"), True),
            "oidc_issuer": env.get("CIM_OIDC_ISSUER", ""),
            "oidc_client_id": env.get("CIM_OIDC_CLIENT_ID", ""),
            "oidc_client_secret": env.get("CIM_OIDC_CLIENT_SECRET", ""),
            "oidc_redirect_uri": env.get("CIM_OIDC_REDIRECT_URI", ""),
            "oidc_scopes": env.get("CIM_OIDC_SCOPES", cls.oidc_scopes),
            "smtp_host": env.get("CIM_SMTP_HOST", cls.smtp_host),
            "smtp_port": int(env.get("CIM_SMTP_PORT", cls.smtp_port)),
            "smtp_from": env.get("CIM_SMTP_FROM", cls.smtp_from),
            "smtp_timeout_seconds": float(env.get("CIM_SMTP_TIMEOUT_SECONDS", cls.smtp_timeout_seconds)),
            "smtp_security": env.get("CIM_SMTP_SECURITY", cls.smtp_security).strip().lower(),
            "smtp_user": env.get("CIM_SMTP_USER", ""),
            "smtp_password": env.get("CIM_SMTP_PASSWORD", ""),
            "smtp_ca_file": env.get("CIM_SMTP_CA_FILE", ""),
            "ratelimit_storage": env.get("CIM_RATELIMIT_STORAGE", "redis"),
            "ratelimit_signin": env.get("CIM_RATELIMIT_SIGNIN", cls.ratelimit_signin),
            "ratelimit_post": env.get("CIM_RATELIMIT_POST", cls.ratelimit_post),
            "feed_token": env.get("CIM_FEED_TOKEN", ""),
            "clock_jump_days": int(env.get("CIM_CLOCK_JUMP_DAYS", cls.clock_jump_days)),
            "debug": _bool(env.get("CIM_DEBUG") or env.get("FLASK_DEBUG"), False),
        }
        return cls(**values)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def check_production_safety(self) -> None:
        """Refuse to run in production with settings that are only fit for a laptop."""
        if not self.is_production:
            return
        problems = []
        if self.secret_key == _DEFAULT_SECRET or len(self.secret_key) < 32:
            problems.append("CIM_SECRET_KEY must be set to a random value of at least 32 characters")
        if len(self.vault_key) < 32:
            problems.append("CIM_VAULT_KEY must be set (at least 32 characters) and kept apart from backups")
        elif self.vault_key in (self.secret_key, self.identity_key):
            problems.append("CIM_VAULT_KEY must differ from CIM_SECRET_KEY and CIM_IDENTITY_KEY")
        not_postgres = [
            variable
            for name, variable in STORE_URL_VARIABLES.items()
            if not str(getattr(self, name)).startswith(("postgresql://", "postgresql+"))
        ]
        if not_postgres:
            problems.append(f"production needs PostgreSQL for every store ({', '.join(not_postgres)})")
        if self.identity_key == self.secret_key or len(self.identity_key) < 32:
            problems.append("CIM_IDENTITY_KEY must be set (at least 32 characters), apart from CIM_SECRET_KEY")
        if self.debug:
            problems.append("DEBUG must be off in production (CIM_DEBUG / FLASK_DEBUG)")
        if not self.cookie_secure:
            problems.append("production cookies must be Secure (CIM_COOKIE_SECURE)")
        if self.ratelimit_storage_uri.startswith("memory://"):
            problems.append("rate limits need shared storage in production (CIM_RATELIMIT_STORAGE=redis)")
        if self.oidc_issuer and not (self.oidc_client_id and self.oidc_client_secret):
            problems.append("CIM_OIDC_CLIENT_ID and CIM_OIDC_CLIENT_SECRET are required with CIM_OIDC_ISSUER")
        if problems:
            raise RuntimeError("unsafe production settings: " + "; ".join(problems))
