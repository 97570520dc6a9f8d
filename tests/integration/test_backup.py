"""Backup and restore of every store (shared/backup.py, issue 16): a backup taken while events
are written and projected restores into a fresh data directory whose read models equal a rebuild
from the restored events, and whose events are a prefix of the live ones; a backup taken at rest
restores to exactly the live read models. The keys stay out; erasures before the backup stay
done, erasures after it come back until carried out again."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from assessment_service import projections
from assessment_service.projections.students import students
from intake_service.bootstrap import build_services
from intake_service.domain import RegisterStudent
from shared import backup
from shared.adapters.feed import StoreEventFeed
from shared.adapters.sql import make_engine
from shared.adapters.stores import open_event_store
from shared.application import RequestContext
from shared.config import Settings
from shared.outbox import Message, Outbox
from shared.projection import ProjectionRunner
from tests.integration.test_r9_rebuild import student_events

CTX = RequestContext(actor="test", correlation_id="backup-test")
KEYS = {"secret_key": "s" * 48, "vault_key": "v" * 48, "identity_key": "i" * 48}


class System:
    """One installation's stores, written and projected as the services and workers do."""

    def __init__(self, root: Path, **changes: Any) -> None:
        self.settings = Settings(data_dir=root, wakeup="none", credential_keys_dir=root / "credential-keys",
                                 **{**KEYS, **changes})
        self.store = open_event_store(self.settings.intake_db_url)
        self.store.create_schema()
        self.services = build_services(self.settings, store=self.store)
        self.feed = StoreEventFeed(self.store, opener=self.services.open_events)
        self.runner = ProjectionRunner(make_engine(self.settings.assessment_db_url, immediate=True), self.feed,
                                       projections.ALL, batch_size=200)
        self.runner.create_schema()
        self.outbox = Outbox.from_url(self.settings.identity_db_url, self.settings.identity_secret)
        self.outbox.create_schema()

    def register(self, name: str) -> str:
        outcome = self.services.register_student(RegisterStudent(
            name=name, email=f"{uuid.uuid4().hex[:10]}@example.org", university_id=f"u-{uuid.uuid4().hex[:6]}",
            department="SOCSW", programme="SSASK", expected_end_term="VT2028"), CTX)
        return str(outcome.result["student_id"])

    def name_of(self, student_id: str) -> str | None:
        with self.runner.reader.connect() as conn:
            return conn.execute(sa.select(students.c.name).where(students.c.student_id == student_id)).scalar()

    def events(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        while batch := self.store.read_all(out[-1][0] if out else 0, 1000):
            out += [(e.position, e.event_id) for e in batch]
        return out


def _rebuilt_digest(system: System, path: Path) -> str:
    fresh = ProjectionRunner(make_engine(f"sqlite:///{path}", immediate=True), system.feed, projections.ALL,
                             batch_size=500)
    fresh.create_schema()
    fresh.rebuild()
    return fresh.digest()


@pytest.mark.timeout(300)
def test_a_backup_taken_while_the_system_writes_restores_into_a_consistent_fresh_system(tmp_path: Path) -> None:
    live = System(tmp_path / "live")
    (live.settings.data_dir / "secrets.env").write_text("CIM_VAULT_KEY=not-for-backups\n")
    live.settings.upload_dir.mkdir(parents=True, exist_ok=True)
    (live.settings.upload_dir / "report.pdf").write_bytes(b"%PDF-1.4 synthetic")
    (live.settings.data_dir / "diplomas").mkdir()
    (live.settings.data_dir / "diplomas" / "SOCSW-2027-0001.pdf").write_bytes(b"%PDF-1.4 diploma")
    live.settings.credential_keys_dir.mkdir()
    (live.settings.credential_keys_dir / "SOCSW.json").write_text('{"synthetic": true}')
    live.outbox.enqueue(Message(key="test:1", template="sign_in_link", to_address="p1@example.org"))

    erased_before = live.register("Erased Beforebackup")
    live.services.erase_student(erased_before, "asked", CTX)
    erased_after = live.register("Erased Afterbackup")

    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        n = 0
        try:
            while not stop.is_set():
                live.store.append(f"student-{uuid.UUID(int=n)}", student_events(n), expected_version=0)
                n += 1
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    def project() -> None:
        try:
            while not stop.is_set():
                live.runner.catch_up()
                time.sleep(0.01)
        except BaseException as err:  # pragma: no cover
            errors.append(err)

    threads = [threading.Thread(target=write), threading.Thread(target=project)]
    for t in threads:
        t.start()
    try:
        while live.store.count() < 800 and not errors:
            time.sleep(0.05)
        manifest = backup.create(live.settings, tmp_path / "b1", credential_keys_to=tmp_path / "b1-keys")
        while live.store.count() < 1600 and not errors:  # the system goes on writing after the backup
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    live.services.erase_student(erased_after, "asked after the backup", CTX)
    live.runner.catch_up()

    # What the backup holds, and what it does not.
    assert set(manifest["stores"]) == {"assessment", "intake", "identity"}
    assert all(entry["integrity"] == "ok" for entry in manifest["stores"].values())
    assert max(e["write_lock_held_ms"] for e in manifest["stores"].values()) < 1000
    assert manifest["files"] == {"uploads": 1, "diplomas": 1}
    held = {p.name for p in (tmp_path / "b1").rglob("*")}
    assert "secrets.env" not in held
    assert "SOCSW.json" not in held  # the credential keys went apart
    assert (tmp_path / "b1-keys" / "SOCSW.json").is_file()
    with pytest.raises(backup.BackupError, match="apart"):
        backup.create(live.settings, tmp_path / "b-bad", credential_keys_to=tmp_path / "b-bad" / "keys")

    # Restore into a fresh data directory with the same keys.
    restored_root = tmp_path / "restored"
    target = Settings(data_dir=restored_root, wakeup="none", credential_keys_dir=restored_root / "credential-keys",
                      **KEYS)
    backup.restore(target, tmp_path / "b1", credential_keys_from=tmp_path / "b1-keys")
    restored = System(restored_root)
    live_events, restored_events = live.events(), restored.events()
    assert 800 <= len(restored_events) < len(live_events)
    assert restored_events == live_events[: len(restored_events)]  # a prefix: nothing torn or invented
    # The cut is consistent: no checkpoint is ahead of the restored feed.
    assert max(restored.runner.checkpoints().values()) <= restored.store.head()
    restored.runner.catch_up()
    assert set(restored.runner.checkpoints().values()) == {restored.store.head()}
    assert restored.runner.digest() == _rebuilt_digest(restored, tmp_path / "rebuilt.db")
    assert (restored.settings.upload_dir / "report.pdf").read_bytes() == b"%PDF-1.4 synthetic"
    assert (restored_root / "diplomas" / "SOCSW-2027-0001.pdf").is_file()
    assert (restored.settings.credential_keys_dir / "SOCSW.json").read_text() == '{"synthetic": true}'
    assert oct(restored.settings.credential_keys_dir.stat().st_mode & 0o777) == "0o700"
    assert restored.outbox.by_key("test:1") is not None

    # Erasure: the one before the backup stays done; the one after comes back until done again.
    assert live.name_of(erased_after) is None
    assert restored.name_of(erased_before) is None
    assert restored.name_of(erased_after) == "Erased Afterbackup"
    restored.services.erase_student(erased_after, "carried out again after the restore", CTX)
    restored.runner.catch_up()
    assert restored.name_of(erased_after) is None

    # A backup taken at rest restores to exactly the live read models.
    backup.create(live.settings, tmp_path / "b2")
    again_root = tmp_path / "again"
    backup.restore(Settings(data_dir=again_root, wakeup="none", **KEYS), tmp_path / "b2")
    again = System(again_root)
    assert again.events() == live_events
    assert again.runner.checkpoints() == live.runner.checkpoints()
    assert again.runner.digest() == live.runner.digest()


def test_a_restore_refuses_other_keys_a_damaged_backup_and_a_target_holding_data(tmp_path: Path) -> None:
    live = System(tmp_path / "live")
    live.register("Synthetic Person")
    backup.create(live.settings, tmp_path / "b")
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.create(live.settings, tmp_path / "b")

    fresh = Settings(data_dir=tmp_path / "fresh", wakeup="none", **{**KEYS, "vault_key": "w" * 48})
    with pytest.raises(backup.BackupError, match="CIM_VAULT_KEY differ"):
        backup.restore(fresh, tmp_path / "b")
    assert not (tmp_path / "fresh" / "intake.db").exists()  # nothing was written

    with pytest.raises(backup.BackupError, match="already hold data: assessment, intake, identity"):
        backup.restore(live.settings, tmp_path / "b")

    dump = tmp_path / "b" / "databases" / "intake.db"
    data = bytearray(dump.read_bytes())
    data[-1] ^= 0xFF
    dump.write_bytes(bytes(data))
    with pytest.raises(backup.BackupError, match="intake database in the backup is missing or changed"):
        backup.verify(tmp_path / "b")
    with pytest.raises(backup.BackupError, match="not a backup"):
        backup.verify(tmp_path)


def test_the_command_backs_up_and_restores_with_the_settings_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    live = System(tmp_path / "live")
    sid = live.register("Synthetic Person")
    live.runner.catch_up()
    env = {"CIM_ENV": "test", "CIM_DATA_DIR": str(tmp_path / "live"), "CIM_SECRET_KEY": KEYS["secret_key"],
           "CIM_VAULT_KEY": KEYS["vault_key"], "CIM_IDENTITY_KEY": KEYS["identity_key"],
           "CIM_CREDENTIAL_KEYS_DIR": str(tmp_path / "live" / "credential-keys")}
    for name in [n for n in os.environ if n.startswith("CIM_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert backup.main(["create", str(tmp_path / "b")]) == 0
    assert "the keys are not in it" in capsys.readouterr().out
    assert backup.main(["verify", str(tmp_path / "b")]) == 0
    monkeypatch.setenv("CIM_DATA_DIR", str(tmp_path / "new"))
    assert backup.main(["restore", str(tmp_path / "b")]) == 0
    assert "carry out again every erasure" in capsys.readouterr().out
    assert backup.main(["restore", str(tmp_path / "b")]) == 1  # now it holds data
    assert "already hold data" in capsys.readouterr().err
    assert System(tmp_path / "new").name_of(sid) == "Synthetic Person"


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_postgresql_stores_are_dumped_and_restored_with_pg_dump_and_pg_restore(tmp_path: Path, pg_database) -> None:
    def on_pg(root: Path) -> System:
        return System(root, intake_db_url=pg_database(), assessment_db_url=pg_database(),
                      identity_db_url=pg_database())

    live = on_pg(tmp_path / "live")
    erased = live.register("Erased Beforebackup")
    live.services.erase_student(erased, "asked", CTX)
    for n in range(30):
        live.store.append(f"student-{uuid.UUID(int=n)}", student_events(n), expected_version=0)
    live.runner.catch_up()
    manifest = backup.create(live.settings, tmp_path / "b")
    assert {e["kind"] for e in manifest["stores"].values()} == {"postgresql"}
    assert (tmp_path / "b" / "databases" / "intake.dump").stat().st_size > 0

    restored = on_pg(tmp_path / "restored")  # fresh databases (the schema made by the code: --force)
    backup.restore(restored.settings, tmp_path / "b", force=True)
    assert restored.events() == live.events()
    assert restored.runner.checkpoints() == live.runner.checkpoints()
    assert restored.runner.digest() == live.runner.digest()
    assert restored.name_of(erased) is None
