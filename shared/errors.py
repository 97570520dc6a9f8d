"""Typed errors the domain and the store raise; each app maps them to one HTTP status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class CimError(Exception):
    """Base of every error the product raises on purpose."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(CimError):
    """Input broke a rule; `fields` maps each field name to what is wrong with it."""

    status = 422
    code = "validation_failed"

    def __init__(
        self, message: str, fields: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.fields: dict[str, list[str]] = {k: list(v) for k, v in (fields or {}).items()}


class RuleViolated(CimError):
    """A command is well formed but the domain refuses it in the current state."""

    status = 409
    code = "rule_violated"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(CimError):
    """An id names nothing this caller may see. Unknown and foreign ids answer alike."""

    status = 404
    code = "not_found"


class ConcurrencyConflict(CimError):
    """The stream moved on since the caller read it (expected version mismatch)."""

    status = 409
    code = "version_conflict"

    def __init__(self, stream_id: str, expected: int | None, actual: int) -> None:
        super().__init__(
            f"stream {stream_id} is at version {actual}, not the expected {expected}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class IdempotencyKeyReused(CimError):
    """The same Idempotency-Key came back with a different request."""

    status = 422
    code = "idempotency_key_reused"


class StorageUnavailable(CimError):
    """The database could not durably record the write (disk full, I/O error, locked)."""

    status = 503
    code = "storage_unavailable"


class UnknownEventType(CimError):
    """A stored event names a type or schema version this code cannot read."""

    status = 500
    code = "unknown_event_type"
