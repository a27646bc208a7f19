"""The route of a single submission (``POST /v1/referrals``), the hottest write: a handler of its own for the usual
request, the general one of FastAPI for any other.

FastAPI's handler solves the route's dependencies anew on every call (the request guard, the session, the principal,
the idempotency key, the body), which costs more CPU than the submission itself. ``SubmissionRoute`` does the same
work in the same order by hand when the request has the usual shape: no query string, a JSON body (``Content-Type:
application/json``) that parses, an ``Idempotency-Key`` of 1 to 200 characters. Any other request, and any while a
dependency is overridden, goes to FastAPI's handler, which answers it as before: up to that decision nothing was done
that the general handler does not do again (the body is read once, Starlette keeps it). From the principal on, the
order is FastAPI's: the guard, then the session and the principal (its errors come first), then the body's
validation, then the endpoint; the session's transaction commits before the answer is sent, as ``SessionDep``'s
does. The OpenAPI document is the route's own.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.utils import request_body_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import SecurityScopes

from app.auth.deps import as_included, authenticate, bearer, overridden
from app.core.database import Database
from app.core.idempotency import OnceOnly
from app.core.request_guards import guard_request

# What the handler does by hand, dependency by dependency (checked when the route is built: a dependency added to
# the route or to the app must be added here too). The app's guard is there once the route is included in the app.
_GUARD = "guard_request"
_DEPENDENCIES = ("_request_session", "authenticate", "_once_only_key_required")
_KEY_HEADER, _KEY_LENGTHS = "idempotency-key", range(1, 201)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class SubmissionRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        general = super().get_route_handler()
        route = as_included(self)
        dependant = route.dependant
        calls = tuple(getattr(dependency.call, "__name__", None) for dependency in dependant.dependencies)
        guarded = calls[:1] == (_GUARD,)
        if calls[guarded:] != _DEPENDENCIES:
            raise RuntimeError(f"SubmissionRoute runs {(_GUARD, *_DEPENDENCIES)} by hand, the route depends on {calls}")
        principal_dependency = dependant.dependencies[guarded + 1]
        scopes = SecurityScopes(scopes=list(principal_dependency.own_oauth_scopes or []))
        assert self.body_field is not None
        body_fields, endpoint = [self.body_field], self.endpoint

        async def handler(request: Request) -> Response:
            key = request.headers.get(_KEY_HEADER)
            if (
                overridden(route)
                or request.scope["query_string"]
                or key is None
                or len(key) not in _KEY_LENGTHS
                or request.headers.get("content-type") != "application/json"
            ):
                return await general(request)
            try:
                received = await request.json()  # the general handler parses the body first
            except ValueError:
                return await general(request)
            if guarded:
                await guard_request(request)
            database: Database = request.app.state.database
            # SessionDep's session and its one transaction, begun on first use (a submission run alone uses none):
            # committed once the endpoint returned, before the answer is sent; rolled back on any error.
            async with database.sessionmaker() as session:
                principal = await authenticate(scopes, request, session, await bearer(request))
                values, errors = await request_body_to_args(body_fields, received, embed_body_fields=False)
                if errors:
                    raise RequestValidationError(errors, body=received)
                [body] = values.values()
                response: Response = await endpoint(
                    body=body,
                    request=request,
                    session=session,
                    principal=principal,
                    once=OnceOnly(request, session, key),
                )
                if session.in_transaction():
                    await session.commit()
            return response

        return handler
