"""The Celery wake-up sender: after a commit, queue "catch up" BY NAME (the services never import workers).

The message carries only the correlation id: the event itself stays in the store, and the
worker reads from its checkpoint. Wake-ups are coalesced: while one catch-up is queued and has
not started, further commits send nothing (shared.task_names.CATCH_UP_PENDING_KEY), so a burst
of writes costs the workers one catch-up, not one per commit.

Losing a message is harmless (beat catches up every few seconds), so sending must never fail or
slow a request: short socket timeouts, no publish retries, and after a failure a short pause in
which wake-ups are skipped outright.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery import Celery

from shared import task_names

log = logging.getLogger(__name__)


class CeleryWakeUp:
    def __init__(
        self,
        redis_url: str,
        *,
        task_name: str = task_names.CATCH_UP_PROJECTIONS,
        queue: str = task_names.QUEUE,
        timeout: float = 0.25,
        pause_after_failure: float = 5.0,
        expires: float = 60.0,
        app: Any = None,
        client: Any = None,
        pending_key: str = task_names.CATCH_UP_PENDING_KEY,
        pending_ttl_ms: int = task_names.CATCH_UP_PENDING_TTL_MS,
    ) -> None:
        self.task_name = task_name
        self.pending_key = pending_key
        self.pending_ttl_ms = pending_ttl_ms
        self.queue = queue
        self.expires = expires
        self.pause_after_failure = pause_after_failure
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._client = client or redis.Redis.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        self._app = app or Celery("cim-wakeup", broker=redis_url, set_as_current=False)
        self._app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_timeout=timeout,
            broker_connection_retry=False,
            broker_connection_max_retries=0,
            broker_transport_options={
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                "retry_on_timeout": False,
                "max_retries": 0,
            },
        )

    def after_commit(self, correlation_id: str | None = None) -> None:
        """Queue one catch-up unless one is already pending. Never raises; returns at once while
        the broker is known to be down."""
        if time.monotonic() < self._paused_until:
            return
        try:
            first = self._client.set(self.pending_key, correlation_id or "-", nx=True, px=self.pending_ttl_ms)
            if not first:
                return  # a queued catch-up that has not started yet will see this commit
            self._app.send_task(
                self.task_name,
                kwargs={"correlation_id": correlation_id},
                queue=self.queue,
                # A wake-up older than this is worthless: beat has caught up meanwhile.
                expires=self.expires,
                retry=False,
                ignore_result=True,
            )
        except Exception as exc:  # any broker trouble: log and move on, beat heals it
            clear_pending(self._client, quiet=True, key=self.pending_key)
            with self._lock:
                self._paused_until = time.monotonic() + self.pause_after_failure
            log.warning(
                "wake-up not sent (%s); beat will catch up", type(exc).__name__,
                extra={"correlation_id": correlation_id},
            )


def clear_pending(client: Any, *, quiet: bool = False, key: str = task_names.CATCH_UP_PENDING_KEY) -> None:
    """Called by the catch-up before it reads the feed: later commits must queue a new one."""
    try:
        client.delete(key)
    except Exception as exc:  # Redis down: the catch-up runs anyway; the key expires by itself
        if not quiet:
            log.warning("could not clear the pending wake-up (%s)", type(exc).__name__)
