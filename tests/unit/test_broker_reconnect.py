"""The worker and beat retry the broker every second (PromptReconnectConnection), not on kombu's
default back-off of 2, 4, 6 … 30 s, which kept them away up to 12 s after Redis returned (the
Redis-outage bar R5, tests/README.md)."""

from __future__ import annotations

import socket

import pytest
from kombu.exceptions import OperationalError

from workers.celery_app import PromptReconnectConnection, app


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_apps_connections_are_the_prompt_kind() -> None:
    assert isinstance(app.connection_for_read(), PromptReconnectConnection)
    assert isinstance(app.connection_for_write(), PromptReconnectConnection)


def test_reconnect_attempts_come_at_most_a_second_apart() -> None:
    waits: list[float] = []
    conn = PromptReconnectConnection(f"redis://127.0.0.1:{closed_port()}/0", connect_timeout=0.2)
    with pytest.raises(OperationalError):
        conn.ensure_connection(lambda exc, interval: waits.append(interval), max_retries=4)
    assert len(waits) >= 3
    assert max(waits) <= 1.0
    conn.release()


def test_a_caller_naming_its_own_intervals_keeps_them() -> None:
    waits: list[float] = []
    conn = PromptReconnectConnection(f"redis://127.0.0.1:{closed_port()}/0", connect_timeout=0.2)
    with pytest.raises(OperationalError):
        conn.ensure_connection(lambda exc, interval: waits.append(interval), max_retries=2,
                               interval_start=0.05, interval_step=0.05, interval_max=0.1)
    assert waits
    assert max(waits) <= 0.1
    conn.release()
