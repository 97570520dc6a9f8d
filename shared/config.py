"""Settings from the environment (12-factor): the only module that reads os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_DEFAULT_SECRET = "dev-only-insecure-secret-key-change-me"


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
    terms_file: Path = ROOT / "config" / "terms.toml"
    upload_dir: Path | None = None
    max_upload_bytes: int = 10 * 1024 * 1024
    max_request_bytes: int = 12 * 1024 * 1024
    intake_url: str = "http://127.0.0.1:8000"
    assessment_url: str = "http://127.0.0.1:8001"
    wakeup: str = "celery"
    default_locale: str = "en"
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        data_dir = Path(self.data_dir)
        object.__setattr__(self, "data_dir", data_dir)
        if not self.intake_db_url:
            object.__setattr__(self, "intake_db_url", f"sqlite:///{data_dir / 'intake.db'}")
        if not self.assessment_db_url:
            object.__setattr__(self, "assessment_db_url", f"sqlite:///{data_dir / 'assessment.db'}")
        object.__setattr__(self, "upload_dir", Path(self.upload_dir or data_dir / "uploads"))

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
        values: dict[str, Any] = {
            "env": env.get("CIM_ENV", "development"),
            "secret_key": env.get("CIM_SECRET_KEY", _DEFAULT_SECRET),
            "vault_key": env.get("CIM_VAULT_KEY", ""),
            "data_dir": data_dir,
            "intake_db_url": env.get("CIM_INTAKE_DB_URL", ""),
            "assessment_db_url": env.get("CIM_ASSESSMENT_DB_URL", ""),
            "redis_url": env.get("CIM_REDIS_URL", cls.redis_url),
            "departments_file": Path(env.get("CIM_DEPARTMENTS_FILE", str(cls.departments_file))),
            "terms_file": Path(env.get("CIM_TERMS_FILE", str(cls.terms_file))),
            "upload_dir": Path(env["CIM_UPLOAD_DIR"]) if env.get("CIM_UPLOAD_DIR") else None,
            "max_upload_bytes": int(env.get("CIM_MAX_UPLOAD_BYTES", cls.max_upload_bytes)),
            "max_request_bytes": int(env.get("CIM_MAX_REQUEST_BYTES", cls.max_request_bytes)),
            "intake_url": env.get("CIM_INTAKE_URL", cls.intake_url),
            "assessment_url": env.get("CIM_ASSESSMENT_URL", cls.assessment_url),
            "wakeup": env.get("CIM_WAKEUP", cls.wakeup),
            "default_locale": env.get("CIM_DEFAULT_LOCALE", cls.default_locale),
            "log_level": env.get("CIM_LOG_LEVEL", cls.log_level),
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
        if self.intake_db_url.startswith("sqlite") or self.assessment_db_url.startswith("sqlite"):
            problems.append("production needs PostgreSQL (CIM_INTAKE_DB_URL, CIM_ASSESSMENT_DB_URL)")
        if problems:
            raise RuntimeError("unsafe production settings: " + "; ".join(problems))
