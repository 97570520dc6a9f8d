"""The embedded default's own secrets: random keys made on first start and kept under var/.

`make run` (and any process of a development or test installation started without the keys in
its environment) reads CIM_SECRET_KEY, CIM_VAULT_KEY and CIM_IDENTITY_KEY from
`$CIM_DATA_DIR/secrets.env`, which the first start creates (mode 0600) with three distinct random
values. Nothing in the repository is a working secret. Production never uses this file: it must
set the keys itself (`Settings.check_production_safety`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from pathlib import Path

FILE_NAME = "secrets.env"
KEYS = ("CIM_SECRET_KEY", "CIM_VAULT_KEY", "CIM_IDENTITY_KEY")
_HEADER = (
    "# CIM's own random keys for this data directory, made on first start (development and test).\n"
    "# Keep this file private. Deleting it makes new keys: the sealed personal data, the TOTP\n"
    "# secrets and every session of this data directory then become unreadable.\n"
)


def parse(text: str) -> dict[str, str]:
    """`NAME=value` lines (comments and blanks skipped)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    return values


def load_or_create(path: Path) -> dict[str, str]:
    """The keys kept in `path`, made first if the file does not exist. Several processes starting
    at once agree: the file appears whole (written aside, then hard-linked into place) and the
    first one wins."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        body = _HEADER + "".join(f"{name}={secrets.token_urlsafe(48)}\n" for name in KEYS)
        aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(body)
            with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                os.link(aside, path)
        finally:
            aside.unlink(missing_ok=True)
    values = parse(path.read_text())
    missing = [name for name in KEYS if len(values.get(name, "")) < 32]
    if missing:
        raise RuntimeError(f"{path} lacks {', '.join(missing)} (at least 32 characters each); delete it to start anew")
    return {name: values[name] for name in KEYS}


def main(argv: list[str]) -> int:
    """`python -m shared.local_secrets PATH`: make PATH if it is missing (scripts/run.sh)."""
    if len(argv) != 2:
        print("usage: python -m shared.local_secrets PATH", file=sys.stderr)
        return 2
    load_or_create(Path(argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
