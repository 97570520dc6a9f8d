"""Wires the intake use cases to real adapters (or to the fakes a test passes in)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from intake_service.events import REGISTRY
from intake_service.services import IntakeServices
from intake_service.uploads import UploadStore
from shared.adapters.memory_store import InMemoryEventStore
from shared.adapters.wakeup import NullWakeUp, WakeUp
from shared.catalogue import Catalogue
from shared.clock import configured_clock
from shared.config import Settings
from shared.personal import InMemoryKeyVault, PersonalDataCodec
from shared.validation import is_uuid


def make_wakeup(settings: Settings) -> WakeUp:
    if settings.wakeup == "celery":
        try:
            from shared.adapters.celery_wakeup import CeleryWakeUp
        except ImportError:  # the worker side is not installed in this build
            return NullWakeUp()
        return CeleryWakeUp(settings.redis_url)
    return NullWakeUp()


def build_services(settings: Settings, **overrides: Any) -> IntakeServices:
    store = overrides.get("store")
    vault = overrides.get("vault")
    if store is None:
        from shared.adapters.stores import open_event_store

        clock = overrides.get("clock") or configured_clock(settings.clock_file)
        store = open_event_store(settings.intake_db_url, clock)
        store.create_schema()
    if vault is None:
        if isinstance(store, InMemoryEventStore):
            vault = InMemoryKeyVault()
        else:
            from shared.adapters.sql_vault import SqlKeyVault

            vault = SqlKeyVault(settings.intake_db_url, settings.vault_secret)
            vault.create_schema()
    return IntakeServices(
        store=store,
        catalogue=overrides.get("catalogue") or Catalogue.load(settings.departments_file),
        clock=overrides.get("clock") or configured_clock(settings.clock_file),
        wakeup=overrides.get("wakeup") or make_wakeup(settings),
        uploads=UploadStore(settings.upload_dir or settings.data_dir / "uploads"),
        max_upload_bytes=settings.max_upload_bytes,
        codec=PersonalDataCodec(REGISTRY, vault),
    )


def department_finder(services: IntakeServices) -> Callable[[str], str | None]:
    """For object-level access rules: the department a student registered in, None if unknown."""

    def department_of(student_id: str) -> str | None:
        return services.registered_department(student_id) if is_uuid(student_id) else None

    return department_of
