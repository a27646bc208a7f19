"""RFC 9457 problem details: the one error envelope of the API, rendered in one place.

Domain code raises a ``Problem`` subclass (or ``Problem`` itself); every other failure is translated here too, so
a client always receives ``application/problem+json`` with a stable ``type``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, get_args

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from pydantic_core.core_schema import ErrorType
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

# Relative to the service (RFC 9457 resolves it against the request): each type is a page of the service itself,
# served by ``app.core.problem_types`` from the registry of every type.
PROBLEM_BASE = "/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = structlog.get_logger(__name__)
_BUILTIN_ERROR_TYPES = frozenset(get_args(ErrorType))


def problem_type(slug: str) -> str:
    """The ``type`` URI of a problem: the page of the service that explains it."""
    return PROBLEM_BASE + slug


class Problem(Exception):
    """An expected failure with its HTTP status. Subclasses name their ``slug`` and ``title`` once."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        if status is not None:
            self.status = status
        if slug is not None:
            self.slug = slug
        if title is not None:
            self.title = title
        self.headers = headers or {}
        self.extensions = extensions


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class Unprocessable(Problem):
    status, slug, title = 422, "unprocessable", "Unprocessable content"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ProblemDetails(BaseModel):
    """The body of every error response (RFC 9457); extensions may add members."""

    type: str = Field(examples=[problem_type("not-found")])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = Field(default=None, description="Each invalid field, on validation errors.")

    model_config = {"extra": "allow"}


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("rate-limited", "Too many requests"),
}


def problem_response(
    request: Request,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "instance": request.url.path,
    }
    if detail:
        body["detail"] = detail
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(extensions)
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(
        request,
        status=exc.status,
        slug=exc.slug,
        title=exc.title,
        detail=exc.detail,
        headers=exc.headers,
        **exc.extensions,
    )


# A name the client sent (an unknown member or parameter, a key of a free-form object) is echoed only when it looks
# like a field name: anything else may be personal data, or text the response cannot even encode.
_ECHOABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
UNECHOED_NAME = "(name not shown)"
# Error types whose message can carry part of the submitted value (a discriminator tag, a validator's own text).
_MESSAGES_WITH_INPUT = frozenset({"value_error", "assertion_error", "no_such_attribute", "datetime_object_invalid"})


def echoable_name(part: str | int) -> str | int:
    """A location part fit to appear in a response: an index, or a field-like name (else a placeholder)."""
    if isinstance(part, int) or _ECHOABLE_NAME.match(part):
        return part
    return UNECHOED_NAME


def _safe_message(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid":
        return f"Input tag does not match any of the expected tags: {ctx.get('expected_tags', '')}"
    message = str(error.get("msg", ""))
    value = error.get("input")
    builtin = kind in _BUILTIN_ERROR_TYPES and kind not in _MESSAGES_WITH_INPUT
    if not builtin and isinstance(value, str) and value and value in message:
        return "Invalid value"
    return message


def field_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors as a response may show them: location, message and type, never the submitted value."""
    return [
        {
            "loc": [echoable_name(part) for part in error.get("loc", ())],
            "msg": _safe_message(error),
            "type": error.get("type", ""),
        }
        for error in errors
    ]


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    return problem_response(
        request,
        status=422,
        slug="validation-error",
        title="Invalid request",
        detail=f"{len(errors)} field(s) failed validation",
        errors=errors,
    )


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    return problem_response(
        request, status=exc.status_code, slug=slug, title=title, detail=detail, headers=dict(exc.headers or {})
    )


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database_unavailable", error_class=type(exc).__name__)
    return problem_response(
        request,
        status=503,
        slug="service-unavailable",
        title="Service unavailable",
        detail="The database is unavailable; retry later.",
        headers={"Retry-After": "5"},
    )


# SQLSTATE 22021 (character_not_in_repertoire, in text) and 22P05 (untranslatable_character, in jsonb): text
# PostgreSQL can neither store nor compare, in practice a NUL (U+0000), which JSON bodies and URLs can carry into any
# string field or filter. The caller's input, not a fault.
_UNREPRESENTABLE_TEXT = {"22021", "22P05"}


async def unexpected_error_response(request: Request, exc: Exception) -> JSONResponse:
    """The answer to an exception nobody expected: 503 when the database is unreachable, 422 for text it cannot hold
    (NUL), else an opaque 500."""
    if _is_connection_failure(exc):
        return await _on_database_unavailable(request, exc)
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _UNREPRESENTABLE_TEXT:
        return problem_response(
            request,
            status=422,
            slug="invalid-text",
            title="Invalid text",
            detail="A text field or filter contains a character that cannot be stored (NUL, U+0000).",
        )
    log.exception("unhandled_error", error_class=type(exc).__name__)
    return problem_response(
        request,
        status=500,
        slug="internal-error",
        title="Internal server error",
        detail="An unexpected error occurred; quote the request id to support.",
    )


def _is_connection_failure(exc: BaseException) -> bool:
    # PoolTimeout: every connection of the pool stayed busy for longer than a request may wait for one.
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDetails, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": description}
    for status, description in {
        400: "Bad request",
        401: "Missing or invalid access token",
        403: "The token lacks the required scope or role",
        404: "Not found (or owned by another partner)",
        409: "Conflict with the current state",
        413: "Request too large",
        415: "Unsupported media type",
        422: "Validation error: each invalid field is listed in `errors`",
        429: "Rate limited: see `Retry-After`",
        500: "Internal error",
        503: "Service unavailable: see `Retry-After`",
    }.items()
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entry declaring these problem statuses."""
    return {status: PROBLEM_RESPONSES[status] for status in statuses}
