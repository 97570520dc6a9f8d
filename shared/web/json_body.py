"""Request bodies as JSON, for both apps: one decoder (orjson), one bound on nesting.

The standard library's decoder recurses once per level: `[` × 100,000 or objects nested 3,000
deep raised `RecursionError`, a 500 (issues 16.6 and 18.5). orjson refuses more than 1,024 levels
and refuses lone surrogates (`"\\ud800x"`, which the stdlib accepts and sealing then failed on);
on top of that no body of ours needs more than a few levels, so anything past `MAX_DEPTH` is
refused before a schema sees it. Every refusal is a 400 problem document and nothing is stored.

`request_json()` is what views call; `install_json_decoder(app)` makes Flask's own
`request.get_json` (and `app.json.loads`) use the same decoder, so no path is left on the
stdlib's.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema, ValidationError

from shared.errors import CimError, UnsupportedMediaType, ValidationFailed
from shared.events import flatten_errors

#: Deeper than any body the APIs accept (a report's answers: object -> object -> string).
MAX_DEPTH = 32


class InvalidJson(CimError):
    """The body is not JSON the APIs read: malformed, not UTF-8, a lone surrogate, too deep."""

    status = 400
    code = "bad_request"


def nesting_depth(value: Any) -> int:
    """How deep lists and objects nest in a decoded value (a scalar is 0). Iterative: a deep
    value cannot exhaust the stack here either."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in item if isinstance(child, dict | list))
    return deepest


def decode_json(raw: bytes | str) -> Any:
    """`raw` decoded, or InvalidJson. orjson stops at 1,024 levels by itself (no recursion in
    Python); `MAX_DEPTH` is the bound the product sets."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "surrogate" in str(exc):
            raise InvalidJson("The body holds a lone surrogate (\\ud800-\\udfff): not valid Unicode text.") from None
        if "depth" in str(exc) or "recursion" in str(exc):
            raise InvalidJson(f"The body nests deeper than {MAX_DEPTH} levels.") from None
        raise InvalidJson("The body is not valid JSON.") from None
    if nesting_depth(value) > MAX_DEPTH:
        raise InvalidJson(f"The body nests deeper than {MAX_DEPTH} levels.")
    return value


def request_json() -> Any:
    """The current request's body, decoded by `decode_json` (the caller checks the media type)."""
    return decode_json(request.get_data(cache=True))


def load_json(schema: Schema) -> dict[str, Any]:
    """The request's JSON object body loaded by `schema`: 415 for another media type, 400 for a
    body that is not JSON, 422 naming each field for one that `schema` refuses."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Send the body as application/json.")
    body = request_json()
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object.", {"_schema": ["Expected an object."]})
    try:
        return schema.load(body)
    except ValidationError as exc:
        raise ValidationFailed("The request is not valid.", flatten_errors(exc.messages)) from None


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with `loads` on `decode_json`: `request.get_json()` can no longer
    reach the stdlib decoder. Writing JSON stays Flask's."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return decode_json(s)


def install_json_decoder(app: Flask) -> None:
    app.json = BoundedJSONProvider(app)
