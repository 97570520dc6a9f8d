"""The event envelope, and the registry that encodes, validates and upcasts event data by version."""

from __future__ import annotations

import dataclasses
import os
import time
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, NamedTuple

import marshmallow
from marshmallow import fields as mfields

from shared.errors import UnknownEventType, ValidationFailed

JSON = dict[str, Any]
Upcaster = Callable[[JSON], JSON]

_MS_MASK = (1 << 48) - 1


def new_event_id() -> str:
    """A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits. As unique
    as a version 4, but ordered by time, so the store's unique index on event ids grows at its
    right edge instead of touching a random page per event (bench/RESULTS.md, batched appends)."""
    value = (time.time_ns() // 1_000_000 & _MS_MASK) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC 4122/9562 variant
    return str(uuid.UUID(int=value))


@dataclass(frozen=True, slots=True)
class Metadata:
    """Who caused an event and why: carried on every event so a whole history can be shown."""

    actor: str
    correlation_id: str
    causation_id: str | None = None

    def as_dict(self) -> JSON:
        return {
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended: type, versioned data and when it happened (business time)."""

    type: str
    schema_version: int
    data: JSON
    metadata: JSON
    occurred_at: datetime
    event_id: str = field(default_factory=new_event_id)


class RecordedEvent(NamedTuple):
    """An event as stored: immutable, with its place in its stream and in the global order.

    A NamedTuple rather than a frozen dataclass: readers build one per stored event, and a
    tuple is built in a third of the time (bench/RESULTS.md, read_all)."""

    position: int
    event_id: str
    stream_id: str
    version: int
    type: str
    schema_version: int
    data: JSON
    metadata: JSON
    occurred_at: datetime
    recorded_at: datetime


# -- an event declared once: a dataclass whose fields carry their rules ---------------------------
Validator = Callable[[Any], Any]


def rules(
    *validate: Validator, personal: bool = False, email: bool = False, items: Sequence[Validator] = ()
) -> dict[str, Any]:
    """An event field's rules, declared where the field is: `name: str = field(metadata=rules(...))`.
    `validate` are marshmallow validators; `personal` fields are sealed with the subject's key
    (and may read as None once it is destroyed); `email` checks an address; `items` validate each
    item of a list. The event's schema is derived from these (`schema_for`)."""
    return {"validate": tuple(validate), "personal": personal, "email": email, "items": tuple(items)}


class _EventSchema(marshmallow.Schema):
    event_class: ClassVar[type]

    @marshmallow.post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Any:
        return self.event_class(**data)


_SCALARS: dict[Any, type[mfields.Field]] = {
    str: mfields.String, int: mfields.Integer, bool: mfields.Boolean, date: mfields.Date, datetime: mfields.DateTime,
}


def _plain(tp: Any, validate: Sequence[Validator] = ()) -> mfields.Field:
    kind = _SCALARS.get(tp)
    if kind is None:
        raise TypeError(f"no marshmallow field for {tp!r}")
    return kind(validate=list(validate)) if validate else kind()


def _marshmallow_field(tp: Any, spec: Mapping[str, Any]) -> mfields.Field:
    personal = bool(spec.get("personal"))
    allow_none = personal  # an erased subject's personal fields read as None
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        allow_none = True
        (tp,) = [a for a in args if a is not type(None)]
    options: dict[str, Any] = {"required": True, "allow_none": allow_none}
    if spec.get("validate"):
        options["validate"] = list(spec["validate"])
    if personal:
        options["metadata"] = {"personal": True}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict:
        return mfields.Dict(keys=_plain(args[0]), values=_plain(args[1]), **options)
    if origin is list:
        return mfields.List(_plain(args[0], spec.get("items", ())), **options)
    if tp is str and spec.get("email"):
        return mfields.Email(**options)
    kind = _SCALARS.get(tp)
    if kind is None:
        raise TypeError(f"no marshmallow field for {tp!r}")
    return kind(**options)


def schema_for(cls: type) -> marshmallow.Schema:
    """The marshmallow schema of an event dataclass, derived from its fields' types and their
    `rules`, in the dataclass's field order (the order data is stored in). Every
    field is required; `X | None` and personal fields allow None."""
    hints = typing.get_type_hints(cls)
    declared: dict[str, Any] = {
        f.name: _marshmallow_field(hints[f.name], f.metadata) for f in dataclasses.fields(cls)
    }
    schema_cls = type(f"{cls.__name__}Schema", (_EventSchema,), {"event_class": cls, **declared})
    return typing.cast(marshmallow.Schema, schema_cls())


def fields_of(cls: type, source: object) -> dict[str, Any]:
    """The values of `cls`'s dataclass fields read from `source` (an event carrying them)."""
    return {f.name: getattr(source, f.name) for f in dataclasses.fields(cls)}


@dataclass(frozen=True, slots=True)
class _EventType:
    name: str
    cls: type
    schema: marshmallow.Schema
    version: int
    upcasters: Mapping[int, Upcaster]


class EventRegistry:
    """Maps stored type names to dataclasses, their current marshmallow schema and upcasters.

    Writing validates with the current schema; reading upcasts old versions step by step
    (v1 -> v2 -> ...) and builds the dataclass, so old events stay readable forever.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, _EventType] = {}
        self._by_cls: dict[type, _EventType] = {}

    def register(
        self,
        cls: type,
        schema: marshmallow.Schema | None = None,
        *,
        version: int = 1,
        upcasters: Mapping[int, Upcaster] | None = None,
        name: str | None = None,
    ) -> None:
        """Register an event class, with its schema derived from the class unless one is given
        (`schema_for`). `upcasters[n]` turns version n data into version n + 1."""
        type_name = name or cls.__name__
        schema = schema if schema is not None else schema_for(cls)
        ups = dict(upcasters or {})
        missing = [n for n in range(1, version) if n not in ups]
        if missing:
            raise ValueError(f"{type_name}: no upcaster from version(s) {missing}")
        entry = _EventType(type_name, cls, schema, version, ups)
        self._by_name[type_name] = entry
        self._by_cls[cls] = entry

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def current_version(self, type_name: str) -> int:
        return self._entry(type_name).version

    def schema(self, type_name: str) -> marshmallow.Schema:
        return self._entry(type_name).schema

    def encode(self, event: object) -> tuple[str, int, JSON]:
        """Validate a domain event with its current schema and return (type, version, data)."""
        entry = self._by_cls.get(type(event))
        if entry is None:
            raise UnknownEventType(f"{type(event).__name__} is not a registered event")
        raw = entry.schema.dump(event)
        errors = entry.schema.validate(raw)
        if errors:
            raise ValidationFailed(f"{entry.name} is not valid", flatten_errors(errors))
        return entry.name, entry.version, raw

    def upcast(self, type_name: str, schema_version: int, data: JSON) -> JSON:
        """Bring stored data of any known version up to the current version."""
        entry = self._entry(type_name)
        if schema_version > entry.version or schema_version < 1:
            raise UnknownEventType(f"{type_name} v{schema_version} is not known here")
        if not isinstance(data, Mapping):
            raise UnknownEventType(f"{type_name} v{schema_version} data is not an object")
        for n in range(schema_version, entry.version):
            try:
                data = entry.upcasters[n](dict(data))
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                # Upcasters are written for well-formed old data; anything else is unreadable,
                # a declared error, not a crash (S8).
                raise UnknownEventType(f"{type_name} v{n} does not upcast: {type(exc).__name__}") from exc
        return data

    def decode(self, type_name: str, schema_version: int, data: JSON) -> Any:
        """Upcast and load stored data into the event's dataclass."""
        entry = self._entry(type_name)
        current = self.upcast(type_name, schema_version, data)
        try:
            loaded = entry.schema.load(current)
        except marshmallow.ValidationError as exc:
            raise UnknownEventType(f"{type_name} v{schema_version} does not load: {exc}") from exc
        if dataclasses.is_dataclass(loaded):
            return loaded
        return entry.cls(**loaded)

    def decode_recorded(self, event: RecordedEvent) -> Any:
        return self.decode(event.type, event.schema_version, event.data)

    def _entry(self, type_name: str) -> _EventType:
        try:
            return self._by_name[type_name]
        except KeyError:
            raise UnknownEventType(f"event type {type_name!r} is not known here") from None


def flatten_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow's nested error dict into {"a.b": [messages]}."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                out.update(flatten_errors(value, name))
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                out[name] = list(value)
            else:
                out[name] = [str(value)]
    else:
        out[prefix or "_schema"] = [str(errors)]
    return out

