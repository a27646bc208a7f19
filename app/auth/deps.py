"""Resource protection: the one dependency that turns a bearer token into a ``Principal`` (whose ``tenant``
scopes partner-facing queries, see ``app.core.tenancy``)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import annotated_types
from fastapi import Depends, Request, Response, Security
from fastapi import params as fastapi_params
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.utils import get_flat_params
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.routing import APIRoute, serialize_response
from fastapi.security import OAuth2, SecurityScopes
from pydantic.fields import FieldInfo

from app.audit.service import Actor
from app.auth.limits import TokenBuckets
from app.auth.rate_leases import NEEDS_LEASE, SharedTokenBuckets
from app.auth.scopes import SCOPES, PrincipalKind
from app.auth.standing import TokenStandings
from app.auth.tokens import InvalidToken, unverified_kid, verify_access_token
from app.auth.verified import VerifiedTokens
from app.core import clock
from app.core.clock import FrozenClock
from app.core.compiled import ReadScope, request_reads
from app.core.database import SessionDep
from app.core.problems import Forbidden, Problem, Unauthorized
from app.core.request_guards import guard_request
from app.core.tenancy import Tenant


class RateLimited(Problem):
    status, slug, title = 429, "rate-limited", "Too many requests"


class InvalidAccessToken(Unauthorized):
    slug, title = "invalid-token", "Invalid access token"


class InsufficientScope(Forbidden):
    slug, title = "insufficient-scope", "Insufficient scope"


bearer = OAuth2(
    flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl="/oauth/token", scopes=SCOPES)),
    scheme_name="oauth2",
    description="OAuth 2.0 client credentials; send the access token as `Authorization: Bearer ...`.",
    auto_error=False,
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    client_id: str
    kind: PrincipalKind
    scopes: frozenset[str]
    partner_id: str | None
    role: str | None
    token_id: str

    @property
    def is_partner(self) -> bool:
        return self.kind is PrincipalKind.partner

    @property
    def sees_every_partner(self) -> bool:
        return self.kind is PrincipalKind.staff

    @property
    def tenant(self) -> Tenant:
        """Staff see every partner; a partner (or anyone else) only its own rows."""
        if self.sees_every_partner:
            return Tenant.everyone(self)
        return Tenant.of_partner(self.partner_id)

    def actor(self, request: Request) -> Actor:
        return request_actor(request, self.client_id, self.kind.value)


def request_actor(request: Request, actor_id: str, actor_kind: str) -> Actor:
    """The audit actor of an HTTP call: who, with the call's request id and the address it came from."""
    return Actor(
        id=actor_id,
        kind=actor_kind,
        request_id=getattr(request.state, "request_id", None),
        ip_address=request.client.host if request.client else None,
    )


def _challenge(error: str, description: str, scope: str | None = None) -> dict[str, str]:
    value = f'Bearer error="{error}", error_description="{description}"'
    if scope:
        value += f', scope="{scope}"'
    return {"WWW-Authenticate": value}


async def authenticate(
    security_scopes: SecurityScopes,
    request: Request,
    session: SessionDep,
    authorization: Annotated[str | None, Depends(bearer)],
) -> Principal:
    return await principal_of(request, ReadScope.joining(session), authorization, security_scopes.scopes)


async def principal_of(
    request: Request, reads: ReadScope, authorization: str | None, scopes: Sequence[str]
) -> Principal:
    """The caller of ``request``, holding every one of ``scopes``: what ``authenticate`` gives FastAPI, and
    ``HotRead`` its calls. Nothing is read from the database while this process knows the token, its key and its
    standing (``reads`` opens a session only then)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized(
            "Send an access token: `Authorization: Bearer <token>`.", headers={"WWW-Authenticate": "Bearer"}
        )
    token = authorization[7:].strip()
    app_state = request.app.state
    claims = await _verified_claims(app_state, reads, token)
    # The rate is checked before any database work once this process knows the client's rate (from its standing).
    limits: TokenBuckets = app_state.api_rate_limits
    client_id = claims["client_id"]
    known_rate_wait = limits.take_known(client_id)
    if known_rate_wait == NEEDS_LEASE:
        known_rate_wait = await _lease(limits, reads, client_id)
    _refuse_over_rate(known_rate_wait)
    standings: TokenStandings = app_state.token_standings
    known = standings.known(client_id, claims["jti"])
    standing = (
        known[0]
        if known is not None
        else await standings.of(await reads.session(), client_id, claims.get("partner_id"), claims["jti"])
    )
    if standing is None or not standing.client_active or not standing.partner_active or standing.token_revoked:
        detail = "The access token was revoked or its client is no longer active."
        raise InvalidAccessToken(detail, headers=_challenge("invalid_token", detail))
    if known_rate_wait is None:
        wait = limits.take(client_id, standing.rate_limit_per_second)
        _refuse_over_rate(await _lease(limits, reads, client_id) if wait == NEEDS_LEASE else wait)
    else:
        limits.remember_rate(client_id, standing.rate_limit_per_second)
    principal = Principal(
        client_id=claims["client_id"],
        kind=PrincipalKind(claims.get("kind", PrincipalKind.partner)),
        scopes=frozenset(str(claims["scope"]).split()),
        partner_id=claims.get("partner_id"),
        role=claims.get("role"),
        token_id=claims["jti"],
    )
    if missing := [scope for scope in scopes if scope not in principal.scopes]:
        needed = " ".join(missing)
        raise InsufficientScope(
            f"This call needs the scope(s): {needed}.",
            headers=_challenge("insufficient_scope", "The token lacks a scope this call needs.", needed),
        )
    if standing.test_clock_now is not None and principal.is_partner and app_state.settings.sandbox_enabled:
        # In a sandbox, the rest of a partner's request reads the partner's test clock (DESIGN.md, "Time").
        clock.enter_for_request(FrozenClock(standing.test_clock_now), app_state.settings)
    return principal


async def _verified_claims(app_state: Any, reads: ReadScope, token: str) -> dict[str, Any]:
    """The token's claims: verified once per process (``app.auth.verified``), then read from memory while the token
    is unexpired and its signing key still published."""
    verified: VerifiedTokens = app_state.verified_tokens
    key = verified.key(token)
    known = verified.get(key)
    if known is not None:
        claims, kid = known
        published = app_state.keyring.published(kid)
        if published is None:
            published = await app_state.keyring.publishes(await reads.session(), kid)
        if published:
            return claims
        verified.forget(key)
    try:
        kid = unverified_kid(token)
        keys = await app_state.keyring.verification_keys(await reads.session(), kid)
        claims = verify_access_token(token, keys, app_state.settings)
    except InvalidToken as exc:
        raise InvalidAccessToken(str(exc), headers=_challenge("invalid_token", str(exc))) from None
    verified.put(key, claims, kid)
    return claims


async def _lease(limits: TokenBuckets, reads: ReadScope, client_id: str) -> float:
    assert isinstance(limits, SharedTokenBuckets)  # only the shared buckets answer NEEDS_LEASE
    # With a pool of its own, the lease needs no session: a call waiting for it opens none.
    return await limits.lease(await reads.session() if limits.engine is None else None, client_id)


def _refuse_over_rate(wait: float | None) -> None:
    if wait:
        retry_after = str(max(1, round(wait + 0.5)))
        raise RateLimited("This client's request rate is exceeded.", headers={"Retry-After": retry_after})


def requires(*scopes: str) -> Any:
    """``Depends`` on an authenticated principal holding every one of ``scopes``."""
    return Security(authenticate, scopes=list(scopes))


# --- hot reads ----------------------------------------------------------------------------------------------------

# FastAPI builds a route's handler once for each router the route is included in, with that inclusion's
# dependencies and overrides provider (the app's guard, the app), and tells ``get_route_handler`` which inclusion it
# builds for only through this context variable (private, FastAPI 0.16x). Without it ``HotRead`` routes are ordinary
# routes, and tests/auth/test_hot_reads.py fails.
_inclusion: ContextVar[Any | None] | None
try:
    from fastapi.routing import _effective_route_context_var as _inclusion
except ImportError:  # pragma: no cover
    _inclusion = None

# Dependencies of an inclusion that a hot call satisfies by falling back to FastAPI whenever they could object: the
# app's guard refuses unknown query parameters (any unknown parameter falls back) and unstorable body text (a GET
# has no body).
_SATISFIED = frozenset({guard_request})
_UNUSUAL = object()
_DECLARATIONS = (fastapi_params.Depends, FieldInfo)


@dataclass(frozen=True, slots=True)
class _QueryParameter:
    """A plain query parameter (``int`` or ``str``, optional, with bounds): the values FastAPI's validation
    certainly accepts are read here, anything else is left to FastAPI (``_UNUSUAL``)."""

    name: str
    key: str
    integer: bool
    default: Any
    required: bool
    low: int | None = None
    high: int | None = None
    max_length: int | None = None
    min_length: int = 1

    @classmethod
    def of(cls, name: str, annotation: Any, info: FieldInfo | None, default: Any, where: str) -> _QueryParameter:
        origin = get_origin(annotation)
        if origin is None:
            kinds = {annotation}
        else:  # only an optional value: ``str | None``, ``Optional[int]``
            plain = origin is Union or origin is UnionType
            kinds = {arg for arg in get_args(annotation) if arg is not type(None)} if plain else {origin}
        if len(kinds) != 1 or not kinds <= {int, str}:
            raise TypeError(f"HotRead {where}: query parameter {name} is neither int nor str")
        bounds: dict[str, int] = {}
        for constraint in info.metadata if info is not None else ():
            if isinstance(constraint, annotated_types.Ge):
                bounds["low"] = int(constraint.ge)  # type: ignore[call-overload]
            elif isinstance(constraint, annotated_types.Le):
                bounds["high"] = int(constraint.le)  # type: ignore[call-overload]
            elif isinstance(constraint, annotated_types.MaxLen):
                bounds["max_length"] = constraint.max_length
            else:
                raise TypeError(f"HotRead {where}: query parameter {name} has a constraint it cannot check")
        required = default is inspect.Parameter.empty
        key = (info.alias if info is not None else None) or name
        return cls(name, key, int in kinds, None if required else default, required, **bounds)

    def value(self, raw: str) -> Any:
        if self.integer:
            # Plain decimal digits only: pydantic's other spellings ("+1", " 1", "1_0") are left to it.
            if not (raw.isdigit() and raw.isascii() and len(raw) <= 9 and (raw[0] != "0" or raw == "0")):
                return _UNUSUAL
            number = int(raw)
            if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
                return _UNUSUAL
            return number
        if len(raw) < self.min_length or (self.max_length is not None and len(raw) > self.max_length):
            return _UNUSUAL
        return raw


@dataclass(frozen=True, slots=True)
class _Call:
    """How one hot call resolves its endpoint's arguments: by name, each from the request, the reads, the
    principal, a query parameter or an ``async`` dependency of query parameters only (``page_params``)."""

    request: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    principal: tuple[str, tuple[str, ...]] | None = None
    queries: tuple[_QueryParameter, ...] = ()
    dependencies: tuple[tuple[str, Callable[..., Awaitable[Any]], _Call], ...] = ()

    @classmethod
    def of(cls, function: Callable[..., Any], where: str, top: bool = True) -> _Call:
        hints = get_type_hints(function, include_extras=True)
        request: list[str] = []
        reads: list[str] = []
        principal: tuple[str, tuple[str, ...]] | None = None
        queries: list[_QueryParameter] = []
        dependencies: list[tuple[str, Callable[..., Awaitable[Any]], _Call]] = []
        for name, parameter in inspect.signature(function).parameters.items():
            annotation, declared = hints[name], None
            if isinstance(parameter.default, _DECLARATIONS):
                raise TypeError(f"HotRead {where}: parameter {name} is declared in its default, not in Annotated")
            if get_origin(annotation) is Annotated:
                annotation, *metadata = get_args(annotation)
                declared = next((item for item in reversed(metadata) if isinstance(item, _DECLARATIONS)), None)
            if annotation is Request and declared is None:
                request.append(name)
            elif isinstance(declared, fastapi_params.Security) and declared.dependency is authenticate and top:
                principal = (name, tuple(declared.scopes or ()))
            elif isinstance(declared, fastapi_params.Depends) and declared.dependency is request_reads:
                reads.append(name)
            elif isinstance(declared, fastapi_params.Depends) and inspect.iscoroutinefunction(declared.dependency):
                dependencies.append((name, declared.dependency, cls.of(declared.dependency, where, top=False)))
            elif declared is None or isinstance(declared, fastapi_params.Query):
                queries.append(_QueryParameter.of(name, annotation, declared, parameter.default, where))
            else:
                raise TypeError(f"HotRead {where}: parameter {name} is not one it resolves")
        if not top and (request or reads or dependencies):
            raise TypeError(f"HotRead {where}: {function.__name__} takes more than query parameters")
        return cls(tuple(request), tuple(reads), principal, tuple(queries), tuple(dependencies))

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(query.key for query in self.queries).union(*(call.keys for _, _, call in self.dependencies))

    @property
    def calls(self) -> frozenset[Any]:
        resolved: set[Any] = {function for _, function, _ in self.dependencies}
        if self.principal is not None:
            resolved.add(authenticate)
        if self.reads:
            resolved.add(request_reads)
        return frozenset(resolved)

    async def arguments(
        self, request: Request, given: Mapping[str, str], reads: ReadScope | None
    ) -> dict[str, Any] | None:
        """The arguments, or None when a query value is one only FastAPI may judge (nothing was done yet)."""
        values: dict[str, Any] = {}
        for query in self.queries:
            raw = given.get(query.key)
            if raw is None:
                if query.required:
                    return None
                values[query.name] = query.default
            elif (value := query.value(raw)) is _UNUSUAL:
                return None
            else:
                values[query.name] = value
        for name, function, call in self.dependencies:
            inner = await call.arguments(request, given, None)
            if inner is None:
                return None
            values[name] = await function(**inner)
        for name in self.request:
            values[name] = request
        for name in self.reads:
            values[name] = reads
        return values


def as_included(route: APIRoute) -> Any:
    """The route whose handler FastAPI is building: as included (the app's dependencies, the app as its overrides
    provider), or as declared."""
    inclusion = _inclusion.get() if _inclusion is not None else None
    return inclusion if inclusion is not None and inclusion.original_route is route else route


def overridden(route: Any) -> bool:
    """Whether a dependency of ``route`` is overridden now (the tests'): a fast route then leaves the call to
    FastAPI, which honours overrides."""
    provider = route.dependency_overrides_provider
    return provider is not None and bool(getattr(provider, "dependency_overrides", None))


class HotRead(APIRoute):
    """A read-only GET whose calls skip FastAPI's dependency resolution (the cost of a call, more than its
    statement): the handler checks the query itself, resolves the principal with ``principal_of`` (the rate limit
    before any database work), gives the endpoint a ``ReadScope`` for its ``ReadsDep`` and serializes as FastAPI
    does. Whatever it does not certainly handle as FastAPI would (dependency overrides, a query value to validate,
    an unknown or repeated parameter) is handed to FastAPI's own handler, before anything was done.

    Endpoints take only ``Request``, ``ReadsDep``, a principal (``requires``), plain ``int``/``str`` query parameters
    and ``async`` dependencies of such parameters; another shape is a ``TypeError`` when the route is built.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        by_fastapi = super().get_route_handler()
        if _inclusion is None:
            return by_fastapi  # pragma: no cover
        route = as_included(self)
        where = route.path_format
        call = _Call.of(self.endpoint, where)
        unresolved = {dependant.call for dependant in route.dependant.dependencies} - call.calls - _SATISFIED
        if unresolved or route.dependant.path_params or route.body_field is not None or route.response_field is None:
            raise TypeError(f"HotRead {where}: a dependency, path parameter or body it does not resolve")
        if not isinstance(route.response_class, DefaultPlaceholder):
            raise TypeError(f"HotRead {where}: answers JSON of its response model only")
        declared = get_flat_params(route.dependant)
        if call.keys != {field.alias for field in declared if isinstance(field.field_info, fastapi_params.Query)}:
            raise TypeError(f"HotRead {where}: query parameters it does not read")
        return _hot_handler(route, call, by_fastapi)


def _hot_handler(
    route: Any, call: _Call, by_fastapi: Callable[[Request], Coroutine[Any, Any, Response]]
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    endpoint, keys = route.endpoint, call.keys
    status_code = route.status_code or 200
    serialization = {
        "field": route.response_field,
        "include": route.response_model_include,
        "exclude": route.response_model_exclude,
        "by_alias": route.response_model_by_alias,
        "exclude_unset": route.response_model_exclude_unset,
        "exclude_defaults": route.response_model_exclude_defaults,
        "exclude_none": route.response_model_exclude_none,
        "dump_json": True,
    }

    async def handle(request: Request) -> Response:
        if overridden(route):
            return await by_fastapi(request)
        given: Mapping[str, str] = {}
        if request.scope["query_string"]:
            query = request.query_params
            given = dict(query)
            if len(given) != len(query.multi_items()) or not given.keys() <= keys:
                return await by_fastapi(request)
        reads = ReadScope(request.app.state.database)
        values = await call.arguments(request, given, reads)
        if values is None:
            return await by_fastapi(request)
        try:
            if call.principal is not None:
                name, scopes = call.principal
                values[name] = await principal_of(request, reads, request.headers.get("authorization"), scopes)
            answer = await endpoint(**values)
            if isinstance(answer, Response):
                response = answer
            else:
                content = await serialize_response(response_content=answer, **serialization)
                response = Response(content=content, status_code=status_code, media_type="application/json")
        except BaseException:
            await reads.close(failed=True)
            raise
        await reads.close(failed=False)
        return response

    return handle
