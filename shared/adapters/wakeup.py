"""Wake-up senders: after a commit, tell the workers "there is more". Losing one is harmless."""

from __future__ import annotations

from typing import Protocol


class WakeUp(Protocol):
    def after_commit(self, correlation_id: str | None = None) -> None:
        """Signal that new events were committed. Must never raise or block for long."""
        ...


class NullWakeUp:
    """Sends nothing: for unit tests and for a store nobody projects yet."""

    def after_commit(self, correlation_id: str | None = None) -> None:
        return None


class RecordingWakeUp:
    """Counts wake-ups, for tests."""

    def __init__(self) -> None:
        self.sent: list[str | None] = []

    def after_commit(self, correlation_id: str | None = None) -> None:
        self.sent.append(correlation_id)
