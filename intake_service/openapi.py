"""The intake API's OpenAPI 3.1 document, generated from the marshmallow schemas."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from intake_service.web import schemas
from intake_service.web.api import SCOPE_FEED, SCOPE_READ, SCOPE_REGISTER, SCOPE_WRITE
from shared.catalogue import Catalogue
from shared.validation import UUID_PATTERN

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _json_body(schema: str, required: bool = True) -> dict[str, Any]:
    return {
        "required": required,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _responses(success: int, schema: str, *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        str(success): {
            "description": "Done",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
    }
    if success == 201:
        out["200"] = {
            "description": "Replayed: this Idempotency-Key was already used; the first answer again",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
    for status in (*errors, 503):
        out[str(status)] = {"description": _DESCRIPTIONS[status], "content": _PROBLEM}
    out.update(_AUTH_RESPONSES)
    out["414"] = _TOO_LONG
    return out


def _linked(responses: dict[str, Any], links: dict[str, Any]) -> dict[str, Any]:
    responses["201"]["links"] = links
    return responses


_DESCRIPTIONS = {
    400: "Malformed request (bad JSON, bad header)",
    404: "No such student or activity",
    409: "Version conflict (If-Match) or a rule refuses it in this state",
    413: "Body too large",
    415: "Wrong content type",
    422: "Invalid fields; `errors` names each field",
    503: "Storage unavailable; nothing was acknowledged, retry with the same Idempotency-Key",
}

_WRITE_ERRORS = (400, 404, 409, 413, 415, 422)

# Every operation but this document needs an API token (`Authorization: Bearer <token>`, issue 4).
BEARER = "bearerAuth"
_AUTH_RESPONSES: dict[str, Any] = {
    "401": {
        "description": "No API token, or one that is unknown, revoked or malformed",
        "headers": {
            "WWW-Authenticate": {
                "description": 'The Bearer challenge (`Bearer realm="cim"`)',
                "required": True,
                "schema": {"type": "string"},
            }
        },
        "content": _PROBLEM,
    },
    "403": {"description": "The API token does not carry the scope this operation needs", "content": _PROBLEM},
    "429": {
        "description": "Too many requests; retry after the Retry-After header's seconds",
        "content": _PROBLEM,
    },
}


def _write(
    spec: Any, path: str, operation_id: str, summary: str, body: str, status: int, parameters: list[dict[str, Any]],
    *, required: bool = True, links: dict[str, Any] | None = None,
) -> None:
    """A POST that records for a student: the write scope, its path parameters, the idempotency
    and version headers, a JSON body of schema `body`, and the write errors (and `links` from
    its 201 answer)."""
    responses = _responses(status, "Created", *_WRITE_ERRORS)
    spec.path(
        path=path,
        operations={
            "post": {
                "operationId": operation_id,
                "security": _security(SCOPE_WRITE),
                "summary": summary,
                "parameters": [*parameters, *_HEADERS, _IF_MATCH],
                "requestBody": _json_body(body, required=required),
                "responses": _linked(responses, links) if links else responses,
            }
        },
    )


def _security(scope: str) -> list[dict[str, list[str]]]:
    """The operation needs a bearer token with `scope` (OpenAPI 3.1 lets non-OAuth schemes name
    such roles in the requirement)."""
    return [{BEARER: [scope]}]

# gunicorn refuses request lines over 4094 bytes itself, before the app sees them.
_TOO_LONG = {"description": "Request line too long (refused by the HTTP server)"}

_HEADERS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
        "description": "Retry-safe key: the same key stores once and answers the same",
    },
]
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": '^"?[0-9]{1,9}"?$'},
    "description": "The stream version you expect (from ETag); 409 if it moved on",
}


def _path_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
    }


def _student_links() -> dict[str, Any]:
    """OpenAPI links: a registration's student_id feeds every per-student operation, so
    clients (and schemathesis' stateful phase) can follow the workflow."""
    ops = ["logActivity", "uploadAttachment", "submitReport", "completeStudies",
           "withdrawRegistration", "studentEvents"]
    return {
        op: {"operationId": op, "parameters": {"student_id": "$response.body#/student_id"}}
        for op in ops
    }


def _activity_links() -> dict[str, Any]:
    return {
        op: {
            "operationId": op,
            "parameters": {
                "student_id": "$request.path.student_id",
                "activity_id": "$response.body#/activity_id",
            },
        }
        for op in ("amendActivity", "withdrawActivity")
    }


def _with_catalogue(spec: dict[str, Any], catalogue: Catalogue | None) -> dict[str, Any]:
    """Document the catalogue's codes as enums, so generated requests use real ones."""
    if catalogue is None:
        return spec
    depts = list(catalogue.departments.values())
    schemas_ = spec["components"]["schemas"]
    register = schemas_["RegisterStudentRequest"]["properties"]
    register["department"]["enum"] = sorted(d.code for d in depts)
    register["programme"]["enum"] = sorted({p.code for d in depts for p in d.programmes})
    activity = schemas_["ActivityRequest"]["properties"]
    activity["kind"]["enum"] = sorted({k.code for d in depts for k in d.activity_kinds})
    return spec


def build_spec(catalogue: Catalogue | None = None) -> dict[str, Any]:
    return _with_catalogue(copy.deepcopy(_base_spec()), catalogue)


@cache
def _base_spec() -> dict[str, Any]:
    spec = APISpec(
        title="CIM intake API",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": "What students state: registration, activities, reports, studies completed."},
        servers=[{"url": "/"}],
    )
    for name in (
        "RegisterStudentRequest",
        "ActivityRequest",
        "WithdrawActivityRequest",
        "SubmitReportRequest",
        "CompleteStudiesRequest",
        "WithdrawRegistrationRequest",
        "CreatedResponse",
        "EventResponse",
        "StreamResponse",
        "FeedResponse",
    ):
        public = name if name == "EventResponse" else name.removesuffix("Response")
        spec.components.schema(public, schema=getattr(schemas, name))
    spec.components.schema("Problem", schema=schemas.ProblemResponse)
    spec.components.security_scheme(
        BEARER,
        {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API token (`cim_...`), sent as `Authorization: Bearer <token>`. Scopes: "
                "`intake:register` (register students), `intake:write` (record for "
                "a student), `intake:read` (a student's events), `feed:read` (the global feed). A token "
                "of an integration acts on any student its scopes allow; a token made for a person's "
                "account acts as that person (a student: only their own record; others answer 404)."
            ),
        },
    )
    student = _path_param("student_id")
    activity = _path_param("activity_id")
    write = [*_HEADERS, _IF_MATCH]

    spec.path(
        path="/api/v1/students",
        operations={
            "post": {
                "operationId": "registerStudent",
                "security": _security(SCOPE_REGISTER),
                "summary": "Register a student for CIM",
                "parameters": _HEADERS,
                "requestBody": _json_body("RegisterStudentRequest"),
                "responses": _linked(_responses(201, "Created", 400, 409, 413, 415, 422), _student_links()),
            }
        },
    )
    _write(
        spec,
        "/api/v1/students/{student_id}/activities",
        "logActivity",
        "Log an international activity",
        "ActivityRequest",
        201,
        [student],
        links=_activity_links(),
    )
    _write(
        spec,
        "/api/v1/students/{student_id}/activities/{activity_id}/amendments",
        "amendActivity",
        "Amend a logged activity (the new values replace the old)",
        "ActivityRequest",
        200,
        [student, activity],
    )
    _write(
        spec,
        "/api/v1/students/{student_id}/activities/{activity_id}/withdrawal",
        "withdrawActivity",
        "Withdraw a logged activity",
        "WithdrawActivityRequest",
        200,
        [student, activity],
        required=False,
    )
    spec.path(
        path="/api/v1/students/{student_id}/attachments",
        operations={
            "post": {
                "operationId": "uploadAttachment",
                "security": _security(SCOPE_WRITE),
                "summary": "Upload a PDF for a report (checked: a real PDF, no active content)",
                "parameters": [
                    student,
                    *write,
                    {"name": "X-Filename", "in": "header", "required": False,
                     "schema": {"type": "string", "maxLength": 200},
                     "description": "The file's name, shown to assessors (application/pdf bodies)"},
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {"file": {"type": "string", "format": "binary"}},
                            }
                        },
                    },
                },
                "responses": _responses(201, "Created", *_WRITE_ERRORS),
            }
        },
    )
    _write(
        spec,
        "/api/v1/students/{student_id}/reports",
        "submitReport",
        "Submit the CIM report (409 while another report waits, is in review, awaits revision or is approved)",
        "SubmitReportRequest",
        201,
        [student],
    )
    _write(
        spec,
        "/api/v1/students/{student_id}/reports/{report_id}/resubmission",
        "resubmitReport",
        "Resubmit a report whose revision was requested: a new round (409 if none was requested, or "
        "the report was resubmitted already)",
        "SubmitReportRequest",
        201,
        [student, _path_param("report_id")],
    )
    _write(
        spec,
        "/api/v1/students/{student_id}/studies-completed",
        "completeStudies",
        "Record that the student's studies ended",
        "CompleteStudiesRequest",
        200,
        [student],
    )
    _write(
        spec,
        "/api/v1/students/{student_id}/withdrawal",
        "withdrawRegistration",
        "Withdraw from CIM",
        "WithdrawRegistrationRequest",
        200,
        [student],
        required=False,
    )
    spec.path(
        path="/api/v1/students/{student_id}/events",
        operations={
            "get": {
                "operationId": "studentEvents",
                "security": _security(SCOPE_READ),
                "summary": "The student's event stream",
                "parameters": [student],
                "responses": {
                    "200": {
                        "description": "The stream",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Stream"}}},
                    },
                    "404": {"description": _DESCRIPTIONS[404], "content": _PROBLEM},
                    **_AUTH_RESPONSES,
                    "414": _TOO_LONG,
                    "503": {"description": _DESCRIPTIONS[503], "content": _PROBLEM},
                },
            }
        },
    )
    spec.path(
        path="/api/v1/events",
        operations={
            "get": {
                "operationId": "eventFeed",
                "security": _security(SCOPE_FEED),
                "summary": "The global feed in position order (what the workers read)",
                "parameters": [
                    {"name": "after", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 0, "maximum": 2**62}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 5000}},
                ],
                "responses": {
                    "200": {
                        "description": "A batch of events",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Feed"}}},
                    },
                    **_AUTH_RESPONSES,
                    "414": _TOO_LONG,
                    "422": {"description": _DESCRIPTIONS[422], "content": _PROBLEM},
                    "503": {"description": _DESCRIPTIONS[503], "content": _PROBLEM},
                },
            }
        },
    )
    return spec.to_dict()
