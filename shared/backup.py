"""Back up and restore every store of one installation (docs/operations.md, "Backups").

    python -m shared.backup create DIR [--credential-keys-to KEYDIR]
    python -m shared.backup restore DIR [--credential-keys-from KEYDIR] [--force]
    python -m shared.backup verify DIR

The settings (CIM_DATA_DIR, the CIM_*_DB_URL, CIM_UPLOAD_DIR, CIM_CREDENTIAL_KEYS_DIR) say where
the stores are, for `create` as for `restore`: restore into a fresh installation by pointing them
at empty places.

What a backup holds (DIR):

- `databases/`: the assessment, intake and identity databases. On SQLite (the embedded default)
  they are copied with SQLite's online backup API while the system runs, as ONE consistent cut:
  the backup briefly takes the write lock of all three files (writers wait; a few milliseconds),
  opens a read snapshot of each, lets go of the locks, and copies each file from its snapshot.
  The cut is what a power failure at that instant would have left, which the pipeline is built to
  resume from (every checkpoint is at or behind the feed it reads, every view behind its source).
  On PostgreSQL each database is dumped with `pg_dump --format=custom` in the order assessment,
  intake, identity (each dump is one snapshot of its database, but the three are not one cut:
  stop the worker and beat while dumping, as docs/operations.md says).
- `files/uploads/` (report PDFs) and `files/diplomas/` (rendered diploma PDFs), copied after the
  databases, so every file an event in the backup names is there.
- `manifest.json`: what is in it, with each file's SHA-256 (a restore checks them first), and a
  check value per secret key (HMAC of a fixed label: it does not reveal the key) so a restore
  with other keys is refused before anything is written.

What it never holds: the keys (`CIM_SECRET_KEY`, `CIM_VAULT_KEY`, `CIM_IDENTITY_KEY`, the file
`secrets.env`): keep them apart; a copy of the databases alone opens no personal field. The
credential signing keys go to a separate directory only when asked (`--credential-keys-to`,
never inside DIR): they can sign diplomas, so they are kept apart and encrypted.

Erasure: a backup taken before an erasure holds the student's wrapped key and their events
without the StudentErased event, so a restore brings them back: erasures recorded after the
backup must be carried out again (`students erase ID`). Erasures before it stay done (the event
is in the backup and the key is not; the read models replay StudentErased on catch-up)."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from shared.config import Settings

FORMAT = 1
#: In this order: a store's views of another are never ahead of it in the backup.
STORES = ("assessment", "intake", "identity")
FILE_DIRS = ("uploads", "diplomas")
MANIFEST = "manifest.json"
#: How long the backup waits for each database's write lock (a writer holds it for one commit).
LOCK_TIMEOUT_SECONDS = 10.0


class BackupError(Exception):
    """The backup or restore cannot be done as asked (nothing was changed by a restore)."""


@dataclass(frozen=True)
class Store:
    name: str
    url: str

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"

    @property
    def path(self) -> Path:
        database = make_url(self.url).database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            raise BackupError(f"the {self.name} database is in memory: nothing to back up")
        return Path(database)

    @property
    def backup_name(self) -> str:
        return f"{self.name}.db" if self.is_sqlite else f"{self.name}.dump"


def stores(settings: Settings) -> list[Store]:
    urls = {"assessment": settings.assessment_db_url, "intake": settings.intake_db_url,
            "identity": settings.identity_db_url}
    return [Store(name, urls[name]) for name in STORES]


def file_dirs(settings: Settings) -> dict[str, Path]:
    assert settings.upload_dir is not None
    return {"uploads": Path(settings.upload_dir), "diplomas": Path(settings.data_dir) / "diplomas"}


def key_checks(settings: Settings) -> dict[str, str]:
    """A check value per key: HMAC-SHA256 of a fixed label under the key (reveals nothing of it)."""
    keys = {"CIM_SECRET_KEY": settings.secret_key, "CIM_VAULT_KEY": settings.vault_secret,
            "CIM_IDENTITY_KEY": settings.identity_secret}
    return {name: hmac.new(key.encode(), b"cim-backup-key-check", hashlib.sha256).hexdigest()[:16]
            for name, key in keys.items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or parent in child.parents


# -- create ------------------------------------------------------------------------------------------
def create(settings: Settings, dest: Path, *, credential_keys_to: Path | None = None) -> dict[str, Any]:
    """Back up every store into `dest` (new or empty); returns the manifest."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: back up into a new directory")
    if credential_keys_to is not None and _inside(Path(credential_keys_to), dest):
        raise BackupError("the credential keys must be kept apart from the backup: not inside it")
    (dest / "databases").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    all_stores = stores(settings)
    manifest: dict[str, Any] = {
        "format": FORMAT, "created_at": datetime.now(UTC).isoformat(), "stores": {}, "files": {},
        "key_checks": key_checks(settings), "keys_included": False,
    }
    sqlite_stores = [s for s in all_stores if s.is_sqlite and s.path.exists()]
    cut = _sqlite_cut(sqlite_stores, dest / "databases") if sqlite_stores else {}
    for store in all_stores:
        target = dest / "databases" / store.backup_name
        if store.is_sqlite:
            if store.name not in cut:
                manifest["stores"][store.name] = {"kind": "sqlite", "absent": True}
                continue
            manifest["stores"][store.name] = {"kind": "sqlite", "file": f"databases/{store.backup_name}",
                                              "sha256": _sha256(target), "bytes": target.stat().st_size,
                                              **cut[store.name]}
        else:
            _pg_dump(store, target)
            manifest["stores"][store.name] = {"kind": "postgresql", "file": f"databases/{store.backup_name}",
                                              "sha256": _sha256(target), "bytes": target.stat().st_size}
    for name, source in file_dirs(settings).items():
        manifest["files"][name] = _copy_files(source, dest / "files" / name)
    if credential_keys_to is not None:
        manifest["credential_keys"] = {"copied_apart": True,
                                       "files": _copy_files(settings.credential_keys_dir, Path(credential_keys_to))}
    manifest["seconds"] = round(time.monotonic() - started, 3)
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _sqlite_cut(to_copy: Sequence[Store], into: Path) -> dict[str, dict[str, Any]]:
    """Copy the SQLite databases as one cut: hold every write lock at once just long enough to open
    a read snapshot of each, then copy each from its snapshot while writers go on."""
    lockers = [sqlite3.connect(s.path, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None) for s in to_copy]
    readers = [sqlite3.connect(s.path, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None) for s in to_copy]
    try:
        held_ms = _open_snapshots(lockers, readers)
        out: dict[str, dict[str, Any]] = {}
        for store, reader in zip(to_copy, readers, strict=True):
            target = into / store.backup_name
            copy = sqlite3.connect(target)
            try:
                reader.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                copy.close()
            reader.execute("COMMIT")
            if check != "ok":
                raise BackupError(f"the copy of the {store.name} database fails its integrity check: {check}")
            out[store.name] = {"integrity": check, "write_lock_held_ms": held_ms}
        return out
    finally:
        for conn in (*lockers, *readers):
            conn.close()


def _open_snapshots(lockers: Sequence[sqlite3.Connection], readers: Sequence[sqlite3.Connection]) -> float:
    """BEGIN IMMEDIATE on every database (in STORES order), a read transaction on each, release.
    A writer that holds one lock while waiting for another could wait on us: on a timeout let go
    of everything and try again."""
    for attempt in range(5):
        taken: list[sqlite3.Connection] = []
        try:
            for conn in lockers:
                conn.execute("BEGIN IMMEDIATE")
                taken.append(conn)
            started = time.monotonic()
            for conn in readers:
                conn.execute("BEGIN")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here
            return round((time.monotonic() - started) * 1000, 3)
        except sqlite3.OperationalError:
            for conn in readers:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
        finally:
            for conn in taken:
                conn.execute("ROLLBACK")
    raise AssertionError("unreachable")  # pragma: no cover


def _pg_url(url: str) -> str:
    """A libpq URL (SQLAlchemy's `postgresql+psycopg://` is not one)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
            return str(candidate)
        raise BackupError(f"{name} is not installed (PostgreSQL's client tools)")
    return found


def _pg_dump(store: Store, target: Path) -> None:
    done = subprocess.run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(target),
                           "--dbname", _pg_url(store.url)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_dump of the {store.name} database failed: {done.stderr.strip()[-500:]}")


def _copy_files(source: Path, target: Path) -> int:
    """Copy a directory's regular files (not following links); returns how many."""
    target.mkdir(parents=True, exist_ok=True)
    if not source.is_dir():
        return 0
    count = 0
    for path in sorted(source.rglob("*")):
        if path.is_file() and not path.is_symlink():
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
            count += 1
    return count


# -- verify and restore -------------------------------------------------------------------------------
def verify(src: Path) -> dict[str, Any]:
    """The manifest, once every database file in it matches its SHA-256."""
    try:
        manifest: dict[str, Any] = json.loads((Path(src) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BackupError(f"{src} holds no readable {MANIFEST}: not a backup") from err
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    for name, entry in manifest["stores"].items():
        if entry.get("absent"):
            continue
        path = Path(src) / entry["file"]
        if not path.is_file() or _sha256(path) != entry["sha256"]:
            raise BackupError(f"the {name} database in the backup is missing or changed since it was made")
    return manifest


def restore(settings: Settings, src: Path, *, credential_keys_from: Path | None = None,
            force: bool = False) -> dict[str, Any]:
    """Restore the backup in `src` into the stores `settings` name. Refuses (changing nothing) when
    the backup is damaged, the keys differ from the backup's, or a target already holds data and
    `force` is not given."""
    manifest = verify(src)
    mismatched = [k for k, v in key_checks(settings).items() if manifest["key_checks"].get(k) != v]
    if mismatched:
        raise BackupError(f"{', '.join(mismatched)} differ from the backed-up installation's: "
                          "with other keys the personal data would not open; set the original keys")
    targets = {s.name: s for s in stores(settings)}
    if not force:
        occupied = [name for name, s in targets.items()
                    if not manifest["stores"][name].get("absent") and _holds_data(s)]
        occupied += [name for name, d in file_dirs(settings).items() if d.is_dir() and any(d.iterdir())]
        if credential_keys_from is not None and settings.credential_keys_dir.is_dir() \
                and any(settings.credential_keys_dir.iterdir()):
            occupied.append("credential keys")
        if occupied:
            raise BackupError(f"these already hold data: {', '.join(occupied)}; restore into a fresh "
                              "installation, or give --force to replace them")
    for name, entry in manifest["stores"].items():
        if entry.get("absent"):
            continue
        store, source = targets[name], Path(src) / entry["file"]
        if entry["kind"] == "sqlite":
            if not store.is_sqlite:
                raise BackupError(f"the backup's {name} database is SQLite, the target is not")
            _restore_sqlite(source, store.path)
        else:
            if store.is_sqlite:
                raise BackupError(f"the backup's {name} database is PostgreSQL, the target is not")
            _pg_restore(store, source, clean=force)
    for name, target in file_dirs(settings).items():
        if force and target.is_dir():
            shutil.rmtree(target)
        _copy_files(Path(src) / "files" / name, target)
    if credential_keys_from is not None:
        _copy_files(Path(credential_keys_from), settings.credential_keys_dir)
        os.chmod(settings.credential_keys_dir, 0o700)
        for path in settings.credential_keys_dir.rglob("*"):
            if path.is_file():
                os.chmod(path, 0o600)
    return manifest


def _holds_data(store: Store) -> bool:
    if store.is_sqlite:
        return store.path.exists() and store.path.stat().st_size > 0
    import sqlalchemy as sa

    engine = sa.create_engine(store.url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")).scalar())
    finally:
        engine.dispose()


def _restore_sqlite(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target, timeout=LOCK_TIMEOUT_SECONDS)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def _pg_restore(store: Store, source: Path, *, clean: bool) -> None:
    args = [_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction",
            "--dbname", _pg_url(store.url)]
    if clean:
        args += ["--clean", "--if-exists"]
    done = subprocess.run([*args, str(source)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_restore of the {store.name} database failed: {done.stderr.strip()[-500:]}")


# -- the command -------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.backup", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="back up every store into DIR (new or empty)")
    make.add_argument("dir", type=Path)
    make.add_argument("--credential-keys-to", type=Path, help="also copy the credential signing keys here "
                      "(apart from DIR: keep it encrypted)")
    back = commands.add_parser("restore", help="restore DIR into the configured (fresh) stores")
    back.add_argument("dir", type=Path)
    back.add_argument("--credential-keys-from", type=Path, help="restore the credential keys from here")
    back.add_argument("--force", action="store_true", help="replace stores that already hold data")
    check = commands.add_parser("verify", help="check DIR's files against its manifest")
    check.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        if args.command == "create":
            manifest = create(settings, args.dir, credential_keys_to=args.credential_keys_to)
            print(f"backed up {', '.join(k for k, v in manifest['stores'].items() if not v.get('absent'))} "
                  f"and {sum(manifest['files'].values())} files into {args.dir} in {manifest['seconds']} s; "
                  "the keys are not in it: keep them apart")
        elif args.command == "restore":
            manifest = restore(settings, args.dir, credential_keys_from=args.credential_keys_from, force=args.force)
            print(f"restored the backup of {manifest['created_at']}. Next: start the system (the workers catch "
                  "the read models up), and carry out again every erasure recorded since that time "
                  "(`flask --app intake_service students erase ID --operator WHO`).")
        else:
            manifest = verify(args.dir)
            print(f"{args.dir}: a complete backup of {manifest['created_at']}")
    except BackupError as err:
        print(f"backup: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover - `python -m shared.backup …`
    sys.exit(main())
