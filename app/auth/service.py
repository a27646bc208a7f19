"""Credential rules: creating, rotating and revoking OAuth clients; what the token endpoint and the resource
check need to know about a client, in one query each."""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import delete, null, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.auth.models import AuthMethod, ClientSecret, ClientStatus, OAuthClient, RevokedToken, UsedClientAssertion
from app.auth.scopes import PrincipalKind, StaffRole, allowance
from app.catalog.models import RATE_LIMIT_TIERS, Partner, PartnerStatus
from app.catalog.service import get_partner
from app.core import clock
from app.core.outbound_urls import UnsafeTarget, normalise_target
from app.core.pagination import PageParams, paginate_query
from app.core.problems import NotFound, Unprocessable
from app.sandbox.models import SandboxClock

# OWASP's minimum argon2id profile: client secrets are 256-bit random, so the hash guards against a stolen
# table, not against guessing; a heavier profile would only slow every token request.
SECRET_HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
SECRET_PREFIX = "acs_"


class InvalidClientConfiguration(Unprocessable):
    slug, title = "invalid-client-configuration", "Invalid client configuration"


def new_client_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def verify_secret(secret_hash: str, secret: str) -> bool:
    try:
        return SECRET_HASHER.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_secret_hash() -> str:
    return SECRET_HASHER.hash(new_client_secret())


def verify_any_secret(secret_hashes: Sequence[str], secret: str) -> bool:
    """Whether ``secret`` matches one of the hashes.

    Every hash is tried, so that timing does not tell which one (old or new) matched; a client without any
    secret (or one that does not exist) is checked against a dummy hash, so that it costs the same argon2 work
    as a wrong secret and timing does not tell whether a client id exists.
    """
    if not secret_hashes:
        verify_secret(_dummy_secret_hash(), secret)
        return False
    return any([verify_secret(secret_hash, secret) for secret_hash in secret_hashes])


# The only partner signing keys accepted, for the only algorithms accepted (see ``app.auth.tokens``).
PARTNER_KEY_ALGS = {"EC": "ES256", "RSA": "PS256"}
MIN_RSA_BITS = 2048
MAX_PARTNER_KEYS = 20


def partner_key_set(jwks: Any, *, source: str = "`jwks`") -> KeySet:
    """A partner's signing keys (registered, or fetched from its ``jwks_uri``), checked.

    Only public EC P-256 keys (ES256) and public RSA keys of at least 2048 bits (PS256); ``alg``, when given,
    must be that algorithm and ``use``, when given, ``sig``. Raises ``InvalidClientConfiguration``.
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise InvalidClientConfiguration(f"{source} is not a JSON Web Key Set.")
    if not jwks["keys"]:
        raise InvalidClientConfiguration(f"{source} holds no key.")
    if len(jwks["keys"]) > MAX_PARTNER_KEYS:
        raise InvalidClientConfiguration(f"{source} holds more than {MAX_PARTNER_KEYS} keys.")
    try:
        key_set = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidClientConfiguration(f"{source} is not a valid JSON Web Key Set.") from exc
    for key in key_set.keys:
        if key.is_private:
            raise InvalidClientConfiguration(f"{source} must hold public keys only; keep the private key with you.")
        expected_alg = PARTNER_KEY_ALGS.get(key.key_type)
        if expected_alg is None:
            raise InvalidClientConfiguration(f"{source}: only EC P-256 (ES256) and RSA (PS256) keys are accepted.")
        if isinstance(key, ECKey) and key.curve_name != "P-256":
            raise InvalidClientConfiguration(f"{source}: EC keys must be on the P-256 curve (ES256).")
        if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
            raise InvalidClientConfiguration(f"{source}: RSA keys must have at least {MIN_RSA_BITS} bits.")
        alg = key.get("alg")
        if alg is not None and alg != expected_alg:
            raise InvalidClientConfiguration(f"{source}: a {key.key_type} key may only declare `alg` {expected_alg}.")
        use = key.get("use")
        if use is not None and use != "sig":
            raise InvalidClientConfiguration(f"{source}: keys must be signing keys (`use` sig).")
    return key_set


def validate_public_jwks(jwks: dict[str, Any]) -> dict[str, Any]:
    """A partner's registered keys, as they are stored (see ``partner_key_set``)."""
    return dict(partner_key_set(jwks).as_dict(private=False))


@dataclass(frozen=True, slots=True)
class NewClient:
    client: OAuthClient
    secret: str | None


async def create_client(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str,
    kind: PrincipalKind,
    role: StaffRole | None = None,
    partner_id: str | None = None,
    scopes: list[str] | None = None,
    auth_method: AuthMethod = AuthMethod.client_secret_basic,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    rate_limit_per_second: int | None = None,
    client_id: str | None = None,
    secret: str | None = None,
    private_targets_allowed: bool = False,
) -> NewClient:
    """Register a client. A secret (for the secret methods) is returned here once and stored only as a hash.

    ``jwks_uri`` obeys the rules of outbound targets (``app.core.outbound_urls``; private addresses only when
    ``private_targets_allowed``) and is stored normalised. ``client_id`` and ``secret`` are chosen by the caller
    only for the demo alliance.
    """
    if kind is PrincipalKind.partner:
        if not partner_id:
            raise InvalidClientConfiguration("A partner client needs `partner_id`.")
        partner = await get_partner(session, partner_id)
        if partner.status is PartnerStatus.terminated:
            raise InvalidClientConfiguration("The partner is terminated.")
    elif partner_id is not None:  # an empty id too: stored, it would break the foreign key (a 500)
        raise InvalidClientConfiguration("Only partner clients belong to a partner.")
    if kind is PrincipalKind.staff and role is None:
        raise InvalidClientConfiguration("A staff client needs a `role`.")
    if kind is not PrincipalKind.staff and role is not None:
        raise InvalidClientConfiguration("Only staff clients have a role.")
    allowed = allowance(kind, role)
    granted = list(scopes) if scopes else list(allowed)
    if outside := sorted(set(granted) - set(allowed)):
        raise InvalidClientConfiguration(f"Scopes outside this kind's allowance: {', '.join(outside)}.")
    if auth_method is AuthMethod.private_key_jwt:
        if bool(jwks) == bool(jwks_uri):
            raise InvalidClientConfiguration("private_key_jwt needs exactly one of `jwks` or `jwks_uri`.")
        jwks = validate_public_jwks(jwks) if jwks else None
        if jwks_uri:
            try:
                jwks_uri = normalise_target(jwks_uri, allow_private=private_targets_allowed)
            except UnsafeTarget as exc:
                raise InvalidClientConfiguration(f"`jwks_uri`: {exc}") from exc
    elif jwks or jwks_uri:
        raise InvalidClientConfiguration("`jwks` and `jwks_uri` are only for private_key_jwt clients.")

    client = OAuthClient(
        name=name,
        kind=kind,
        role=role,
        partner_id=partner_id,
        scopes=granted,
        auth_method=auth_method,
        jwks=jwks,
        jwks_uri=jwks_uri,
        rate_limit_per_second=rate_limit_per_second,
    )
    if client_id:
        client.id = client_id
    session.add(client)
    await session.flush()
    if auth_method is AuthMethod.private_key_jwt:
        secret = None
    else:
        secret = secret or new_client_secret()
        session.add(ClientSecret(client_id=client.id, secret_hash=SECRET_HASHER.hash(secret)))
        await session.flush()
    await audit.record(
        session,
        actor,
        "client.created",
        object_type="oauth_client",
        object_id=client.id,
        kind=kind.value,
        role=role.value if role else None,
        partner_id=partner_id,
        auth_method=auth_method.value,
        scopes=granted,
    )
    return NewClient(client, secret)


async def get_client(session: AsyncSession, client_id: str) -> OAuthClient:
    client = await session.get(OAuthClient, client_id)
    if client is None:
        raise NotFound("No such client.")
    return client


async def list_clients(
    session: AsyncSession, params: PageParams, *, partner_id: str | None = None, kind: PrincipalKind | None = None
) -> list[OAuthClient]:
    statement = select(OAuthClient)
    if partner_id:
        statement = statement.where(col(OAuthClient.partner_id) == partner_id)
    if kind:
        statement = statement.where(col(OAuthClient.kind) == kind)
    statement = paginate_query(statement, params, col(OAuthClient.created_at), col(OAuthClient.id))
    return list((await session.scalars(statement)).all())


async def rotate_client_secret(
    session: AsyncSession, actor: Actor, client_id: str, *, grace_s: int
) -> tuple[OAuthClient, str, datetime]:
    """A new secret; the current ones keep working until the end of the grace period (returned).

    The client row is locked first: concurrent rotations of one client run one after the other, so each one
    sees (and ends) the secret the previous one created, and at most one secret is left without an end.
    """
    client = await session.scalar(
        select(OAuthClient)
        .where(col(OAuthClient.id) == client_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if client is None:
        raise NotFound("No such client.")
    if client.status is not ClientStatus.active:
        raise InvalidClientConfiguration("A revoked client cannot be rotated.")
    if client.auth_method is AuthMethod.private_key_jwt:
        raise InvalidClientConfiguration("A private_key_jwt client has no secret; publish a new key instead.")
    now = clock.real_now()
    old_until = now + timedelta(seconds=grace_s)
    await session.execute(
        update(ClientSecret)
        .where(
            col(ClientSecret.client_id) == client_id,
            or_(col(ClientSecret.expires_at).is_(None), col(ClientSecret.expires_at) > old_until),
        )
        .values(expires_at=old_until)
    )
    secret = new_client_secret()
    session.add(ClientSecret(client_id=client_id, secret_hash=SECRET_HASHER.hash(secret)))
    await session.flush()
    await audit.record(
        session, actor, "client.secret_rotated", object_type="oauth_client", object_id=client_id, grace_s=grace_s
    )
    return client, secret, old_until


async def revoke_client(session: AsyncSession, actor: Actor, client_id: str) -> OAuthClient:
    """Revoke at once: no new tokens, and tokens already issued stop working on their next use."""
    client = await get_client(session, client_id)
    if client.status is ClientStatus.revoked:
        return client
    client.status = ClientStatus.revoked
    client.revoked_at = clock.real_now()
    session.add(client)
    await session.flush()
    await audit.record(session, actor, "client.revoked", object_type="oauth_client", object_id=client_id)
    return client


@dataclass(frozen=True, slots=True)
class TokenClient:
    """What the token endpoint knows of a client: loaded before Authlib's synchronous checks run."""

    client: OAuthClient
    secret_hashes: tuple[str, ...]
    partner_active: bool

    @property
    def active(self) -> bool:
        return self.client.status is ClientStatus.active and self.partner_active


async def load_token_client(session: AsyncSession, client_id: str) -> TokenClient | None:
    now = clock.real_now()
    row = (
        await session.execute(
            select(OAuthClient, col(Partner.status))
            .outerjoin(Partner, col(Partner.id) == col(OAuthClient.partner_id))
            .where(col(OAuthClient.id) == client_id)
        )
    ).first()
    if row is None:
        return None
    client: OAuthClient = row[0]
    partner_status = row[1]
    hashes = (
        await session.scalars(
            select(col(ClientSecret.secret_hash)).where(
                col(ClientSecret.client_id) == client_id,
                or_(col(ClientSecret.expires_at).is_(None), col(ClientSecret.expires_at) > now),
            )
        )
    ).all()
    partner_active = partner_status is None or partner_status == PartnerStatus.active
    return TokenClient(client, tuple(hashes), partner_active)


@dataclass(frozen=True, slots=True)
class TokenStanding:
    client_active: bool
    partner_active: bool
    token_revoked: bool
    rate_limit_per_second: int | None
    # A sandbox partner's test clock, read with the standing so that a partner's call costs no extra round trip
    # (``None``: the partner follows real time; production has no test clocks).
    test_clock_now: datetime | None = None


async def token_standing(
    session: AsyncSession, client_id: str, jti: str, partner_id: str | None = None
) -> TokenStanding | None:
    """Whether a verified token may still be used: one query on every protected call. For a partner's token (its
    ``partner_id`` claim) the partner's sandbox test clock is read with it."""
    row = (
        await session.execute(
            select(
                col(OAuthClient.status),
                col(Partner.status),
                select(col(RevokedToken.jti)).where(col(RevokedToken.jti) == jti).exists(),
                col(OAuthClient.rate_limit_per_second),
                col(Partner.rate_limit_tier),
                select(col(SandboxClock.now)).where(col(SandboxClock.partner_id) == partner_id).scalar_subquery()
                if partner_id
                else null(),
            )
            .outerjoin(Partner, col(Partner.id) == col(OAuthClient.partner_id))
            .where(col(OAuthClient.id) == client_id)
        )
    ).first()
    if row is None:
        return None
    client_status, partner_status, revoked, client_rate, tier, test_clock_now = row
    return TokenStanding(
        client_active=client_status == ClientStatus.active,
        partner_active=partner_status is None or partner_status == PartnerStatus.active,
        token_revoked=bool(revoked),
        rate_limit_per_second=client_rate or (RATE_LIMIT_TIERS[tier] if tier else None),
        test_clock_now=test_clock_now,
    )


async def revoke_token(session: AsyncSession, *, jti: str, client_id: str, expires_at: datetime) -> bool:
    """Deny-list a token until it would have expired; False if it already was."""
    inserted = await session.scalar(
        insert(RevokedToken)
        .values(jti=jti, client_id=client_id, expires_at=expires_at, created_at=clock.real_now())
        .on_conflict_do_nothing()
        .returning(col(RevokedToken.jti))
    )
    return inserted is not None


# Kept beyond the assertion's own acceptance window (``exp`` plus the clock-skew leeway) by this much more.
ASSERTION_RETENTION_MARGIN_S = 60


async def accept_client_assertion(
    session: AsyncSession, *, client_id: str, jti: str, exp: float, leeway_s: int
) -> bool:
    """Record a private_key_jwt assertion's ``jti``; False when it was already used (a replay).

    The ``jti`` is remembered for as long as the assertion itself could be accepted: its ``exp`` is checked
    with ``leeway_s`` of clock skew, so it is kept until ``exp + leeway_s`` (and a margin).
    """
    keep_until = datetime.fromtimestamp(math.ceil(exp), UTC) + timedelta(
        seconds=leeway_s + ASSERTION_RETENTION_MARGIN_S
    )
    await session.execute(
        delete(UsedClientAssertion).where(
            col(UsedClientAssertion.client_id) == client_id, col(UsedClientAssertion.expires_at) < clock.real_now()
        )
    )
    inserted = await session.scalar(
        insert(UsedClientAssertion)
        .values(client_id=client_id, jti=jti, expires_at=keep_until)
        .on_conflict_do_nothing()
        .returning(col(UsedClientAssertion.jti))
    )
    return inserted is not None
