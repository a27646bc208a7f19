"""Checks every API route applies before its own parameters: app-wide dependencies, installed once in ``create_app``.

* A query parameter the route does not declare is refused: a misspelt filter (``?stauts=withdrawn``) must not
  silently return everything. The OAuth endpoints are the exception: RFC 6749 (section 3.1) says an authorization
  server must ignore parameters it does not recognise, and OAuth clients rely on that.
* Text in a JSON body that can be neither stored nor answered is refused: a lone surrogate (``"\\ud800"``, which
  UTF-8 cannot encode) or a NUL (``"\\u0000"``, which PostgreSQL text cannot hold), in a value or in a key.

Both answer the usual validation problem (422, each offending location in ``errors``). They are installed as one
dependency, ``guard_request``: FastAPI resolves each dependency node on every call.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice
from typing import Any

from fastapi import Request
from fastapi import params as fastapi_params
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

# Both arrive as JSON escapes, or (a surrogate) as its three UTF-8-like bytes, which ``json.loads`` lets through
# ("surrogatepass"); a body with neither is not walked for nothing.
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|\xed[\xa0-\xbf]")
# What ``json.loads`` leaves of such escapes: surrogate pairs are already joined, so any surrogate here is alone.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MAX_REPORTED = 20
OAUTH_PREFIX = "/oauth/"
# The console's pages are for people: they read the parameters they know and correct the URL themselves.
CONSOLE_PREFIX = "/console"
EXEMPT_PREFIXES = (OAUTH_PREFIX, CONSOLE_PREFIX)


async def guard_request(request: Request) -> None:
    """Both checks, in this order."""
    await refuse_unknown_query_parameters(request)
    await refuse_unstorable_text(request)


def declared_query_parameters(route: APIRoute) -> frozenset[str]:
    """The query parameter names the route and its dependencies declare (worked out once per route)."""
    declared: frozenset[str] | None = route.__dict__.get(_DECLARED)
    if declared is None:
        declared = route.__dict__[_DECLARED] = _declared_query_parameters(route)
    return declared


_DECLARED = "_alliance_declared_query_parameters"


def _declared_query_parameters(route: APIRoute) -> frozenset[str]:
    return frozenset(
        field.alias for field in get_flat_params(route.dependant) if isinstance(field.field_info, fastapi_params.Query)
    )


async def refuse_unknown_query_parameters(request: Request) -> None:
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute) or route.path.startswith(EXEMPT_PREFIXES):
        return
    unknown = sorted(set(request.query_params) - declared_query_parameters(route))
    if unknown:
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("query", name), "msg": "Unknown query parameter", "input": None}
                for name in unknown[:_MAX_REPORTED]
            ]
        )


def _unstorable_text(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The location of every string, key or value, that cannot be stored or encoded."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if _UNSTORABLE.search(key):
                yield (*path, key)
            yield from _unstorable_text(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable_text(item, (*path, index))


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type.startswith("application/") and (
        content_type.endswith("/json") or content_type.endswith("+json")
    )


async def refuse_unstorable_text(request: Request) -> None:
    route = request.scope.get("route")
    # Only bodies the framework has already read and parsed as JSON: a streamed upload is read by its route alone.
    if not isinstance(route, APIRoute) or route.body_field is None or not _is_json(request):
        return
    body = await request.body()
    if not _SUSPECT.search(body):
        return
    found = list(islice(_unstorable_text(await request.json()), _MAX_REPORTED))
    if found:
        raise RequestValidationError(
            [
                {
                    "type": "string_unstorable",
                    "loc": ("body", *path),
                    "msg": "Text must not contain NUL (U+0000) or an unpaired surrogate (U+D800 to U+DFFF)",
                    "input": None,
                }
                for path in found
            ]
        )
