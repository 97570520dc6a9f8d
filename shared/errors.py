"""Typed errors the domain and the store raise; each app maps them to one HTTP status.

What is wrong is a `Problem`: a code with parameters, which the pages translate (by code, never
by matching the English text), and the English text the JSON API and the logs show. A domain
declares its kinds of problem once as `Reason`s and raises `REASON(param=...)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong: its `code`, the `params` a translation fills in, and the English `message`."""

    code: str
    message: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Reason:
    """A kind of problem: its code and English template (`str.format`; a list parameter is
    written comma-separated in English and handed to translations as it is)."""

    code: str
    template: str

    def __call__(self, **params: Any) -> Problem:
        shown = {k: ", ".join(map(str, v)) if isinstance(v, list | tuple) else v for k, v in params.items()}
        return Problem(self.code, self.template.format(**shown), params)


class CimError(Exception):
    """Base of every error the product raises on purpose. `code` names the kind of error (and its
    HTTP status); `problem` says what exactly is wrong (a plain message becomes a problem with
    the error's own code)."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str | Problem) -> None:
        problem = message if isinstance(message, Problem) else Problem(self.code, message)
        super().__init__(problem.message)
        self.message = problem.message
        self.problem = problem
        #: What is wrong with each named field (empty when no field is to blame).
        self.problems: dict[str, list[Problem]] = {}


class ValidationFailed(CimError):
    """Input broke a rule; `problems` maps each field name to what is wrong with it, `fields`
    the same in English (what the JSON API answers)."""

    status = 422
    code = "validation_failed"

    def __init__(
        self, message: str | Problem, fields: Mapping[str, Sequence[str | Problem]] | None = None
    ) -> None:
        super().__init__(message)
        self.problems: dict[str, list[Problem]] = {
            name: [p if isinstance(p, Problem) else Problem(self.code, p) for p in found]
            for name, found in (fields or {}).items()
        }
        self.fields: dict[str, list[str]] = {name: [p.message for p in found] for name, found in self.problems.items()}


class RuleViolated(CimError):
    """A command is well formed but the domain refuses it in the current state."""

    status = 409
    code = "rule_violated"

    def __init__(self, message: str | Problem, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        if field:
            self.problems = {field: [self.problem]}


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


class UnsupportedMediaType(CimError):
    """The request body is not in a media type the endpoint reads (JSON endpoints: application/json)."""

    status = 415
    code = "unsupported_media_type"


class StorageUnavailable(CimError):
    """The database could not durably record the write (disk full, I/O error, locked)."""

    status = 503
    code = "storage_unavailable"


class UnknownEventType(CimError):
    """A stored event names a type or schema version this code cannot read."""

    status = 500
    code = "unknown_event_type"
