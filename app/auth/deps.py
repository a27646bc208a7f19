"""Resource protection: the one dependency that turns a bearer token into a ``Principal`` (whose ``tenant``
scopes partner-facing queries, see ``app.core.tenancy``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth.limits import TokenBuckets
from app.auth.rate_leases import NEEDS_LEASE, SharedTokenBuckets
from app.auth.scopes import SCOPES, PrincipalKind
from app.auth.standing import TokenStandings
from app.auth.tokens import InvalidToken, unverified_kid, verify_access_token
from app.auth.verified import VerifiedTokens
from app.core import clock
from app.core.clock import FrozenClock
from app.core.database import SessionDep
from app.core.problems import Forbidden, Problem, Unauthorized
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
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized(
            "Send an access token: `Authorization: Bearer <token>`.", headers={"WWW-Authenticate": "Bearer"}
        )
    token = authorization[7:].strip()
    app_state = request.app.state
    claims = await _verified_claims(app_state, session, token)
    # The rate is checked before any database work once this process knows the client's rate (from its standing).
    limits: TokenBuckets = app_state.api_rate_limits
    client_id = claims["client_id"]
    known_rate_wait = limits.take_known(client_id)
    if known_rate_wait == NEEDS_LEASE:
        known_rate_wait = await _lease(limits, session, client_id)
    _refuse_over_rate(known_rate_wait)
    standings: TokenStandings = app_state.token_standings
    standing = await standings.of(session, client_id, claims.get("partner_id"), claims["jti"])
    if standing is None or not standing.client_active or not standing.partner_active or standing.token_revoked:
        detail = "The access token was revoked or its client is no longer active."
        raise InvalidAccessToken(detail, headers=_challenge("invalid_token", detail))
    if known_rate_wait is None:
        wait = limits.take(client_id, standing.rate_limit_per_second)
        _refuse_over_rate(await _lease(limits, session, client_id) if wait == NEEDS_LEASE else wait)
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
    if missing := [scope for scope in security_scopes.scopes if scope not in principal.scopes]:
        needed = " ".join(missing)
        raise InsufficientScope(
            f"This call needs the scope(s): {needed}.",
            headers=_challenge("insufficient_scope", "The token lacks a scope this call needs.", needed),
        )
    if standing.test_clock_now is not None and principal.is_partner and app_state.settings.sandbox_enabled:
        # In a sandbox, the rest of a partner's request reads the partner's test clock (DESIGN.md, "Time").
        clock.enter_for_request(FrozenClock(standing.test_clock_now), app_state.settings)
    return principal


async def _verified_claims(app_state: Any, session: AsyncSession, token: str) -> dict[str, Any]:
    """The token's claims: verified once per process (``app.auth.verified``), then read from memory while the token
    is unexpired and its signing key still published."""
    verified: VerifiedTokens = app_state.verified_tokens
    key = verified.key(token)
    known = verified.get(key)
    if known is not None:
        claims, kid = known
        if await app_state.keyring.publishes(session, kid):
            return claims
        verified.forget(key)
    try:
        kid = unverified_kid(token)
        keys = await app_state.keyring.verification_keys(session, kid)
        claims = verify_access_token(token, keys, app_state.settings)
    except InvalidToken as exc:
        raise InvalidAccessToken(str(exc), headers=_challenge("invalid_token", str(exc))) from None
    verified.put(key, claims, kid)
    return claims


async def _lease(limits: TokenBuckets, session: AsyncSession, client_id: str) -> float:
    assert isinstance(limits, SharedTokenBuckets)  # only the shared buckets answer NEEDS_LEASE
    return await limits.lease(session, client_id)


def _refuse_over_rate(wait: float | None) -> None:
    if wait:
        retry_after = str(max(1, round(wait + 0.5)))
        raise RateLimited("This client's request rate is exceeded.", headers={"Retry-After": retry_after})


def requires(*scopes: str) -> Any:
    """``Depends`` on an authenticated principal holding every one of ``scopes``."""
    return Security(authenticate, scopes=list(scopes))
