"""Servers take their start-up heap out of the collector's walks (shared.runtime.settle_heap):
gunicorn's post_worker_init hook and the Celery processes' start-up signals call it."""

from __future__ import annotations

import functools
import gc
import runpy
from pathlib import Path

import pytest

from shared.config import ROOT


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_gunicorn_hook_freezes_the_heap_the_app_was_built_in(unfrozen) -> None:
    config = runpy.run_path(str(Path(ROOT) / "config" / "gunicorn.conf.py"))
    alive = [object() for _ in range(10)]
    assert gc.get_freeze_count() == 0
    config["post_worker_init"](worker=None)
    assert gc.get_freeze_count() >= len(alive)


def test_the_celery_processes_settle_after_start_up(unfrozen, monkeypatch) -> None:
    from workers import base

    monkeypatch.setattr(base, "intake_view", functools.cache(lambda: None))  # no database here
    base._fresh_process()
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    base._settle_consumer()
    assert gc.get_freeze_count() > 0
