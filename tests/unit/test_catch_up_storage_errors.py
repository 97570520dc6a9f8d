"""Issue 16.5: a database that goes away during a catch-up task (a PostgreSQL restart) surfaces
as the storage-unavailable error, not the driver's raw OperationalError."""

from __future__ import annotations

import fakeredis
import pytest
import sqlalchemy as sa

from shared.errors import StorageUnavailable
from workers.tasks import projections as projection_tasks


@pytest.mark.parametrize("error", [
    sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly")),
    sa.exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")),
])
def test_a_lost_database_is_storage_unavailable(monkeypatch, error) -> None:
    def lost(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise error

    monkeypatch.setattr(projection_tasks.services, "catch_up_projections", lost)
    monkeypatch.setattr(projection_tasks, "assessment_context", lambda: object())
    monkeypatch.setattr(projection_tasks, "redis_client", lambda: fakeredis.FakeRedis())
    with pytest.raises(StorageUnavailable) as raised:
        projection_tasks.catch_up_projections(correlation_id="corr-1")
    assert raised.value.__cause__ is error
