"""Only strong public signing keys are registered for (and accepted from) partners."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth import service
from app.auth.models import AuthMethod, OAuthClient
from app.auth.scopes import PrincipalKind
from app.core.config import Settings
from tests.auth.helpers import client_assertion, partner_key, token_with_assertion

# Weak keys are made on purpose here.
pytestmark = pytest.mark.filterwarnings("ignore:Key size should be")


def _rsa(bits: int, **parameters: Any) -> RSAKey:
    return RSAKey.import_key(rsa.generate_private_key(65537, bits).public_key(), parameters=parameters or None)


def _public(key: Any, **parameters: Any) -> dict[str, Any]:
    return {**key.as_dict(private=False), **parameters}


WEAK_OR_WRONG: dict[str, Callable[[], dict[str, Any]]] = {
    "rsa_1024": lambda: _public(_rsa(1024), alg="PS256"),
    "rsa_rs256": lambda: _public(partner_key("RSA"), alg="RS256"),
    "ec_p384": lambda: _public(ECKey.generate_key("P-384")),
    "ec_es384_alg": lambda: _public(partner_key("EC"), alg="ES384"),
    "ec_ps256_alg": lambda: _public(partner_key("EC"), alg="PS256"),
    "ec_for_encryption": lambda: _public(partner_key("EC"), use="enc"),
    "okp": lambda: _public(OKPKey.generate_key("Ed25519")),
    "oct": lambda: OctKey.generate_key(256).as_dict(),
    "private": lambda: partner_key("EC").as_dict(private=True),
}


@pytest.mark.parametrize("case", list(WEAK_OR_WRONG))
async def test_weak_or_unexpected_keys_are_not_registered(session: AsyncSession, make_partner: Any, case: str) -> None:
    partner = await make_partner()
    with pytest.raises(service.InvalidClientConfiguration):
        await service.create_client(
            session,
            Actor.system("test"),
            name="weak",
            kind=PrincipalKind.partner,
            partner_id=partner.id,
            auth_method=AuthMethod.private_key_jwt,
            jwks={"keys": [WEAK_OR_WRONG[case]()]},
        )


@pytest.mark.parametrize(
    "jwk",
    [
        lambda: _public(partner_key("EC")),
        lambda: _public(partner_key("EC"), alg="ES256", use="sig"),
        lambda: _public(partner_key("RSA")),
        lambda: _public(_rsa(3072)),
    ],
)
def test_p256_and_rsa_2048_plus_are_accepted(jwk: Callable[[], dict[str, Any]]) -> None:
    assert service.validate_public_jwks({"keys": [jwk()]})["keys"]


async def test_the_api_refuses_a_weak_key(client: httpx.AsyncClient, caller: Any) -> None:
    admin = await caller("staff", role="admin")
    partner = await caller("partner")
    response = await client.post(
        "/v1/admin/clients",
        headers=admin.headers,
        json={
            "name": "weak",
            "kind": "partner",
            "partner_id": partner.partner_id,
            "auth_method": "private_key_jwt",
            "jwks": {"keys": [WEAK_OR_WRONG["rsa_1024"]()]},
        },
    )
    assert response.status_code == 422
    assert "2048" in response.json()["detail"]


async def test_a_weak_key_registered_before_the_rules_is_not_accepted(
    client: httpx.AsyncClient, session: AsyncSession, make_partner: Any, settings: Settings
) -> None:
    strong = partner_key("EC")
    partner = await make_partner()
    created = await service.create_client(
        session,
        Actor.system("test"),
        name="legacy",
        kind=PrincipalKind.partner,
        partner_id=partner.id,
        auth_method=AuthMethod.private_key_jwt,
        jwks={"keys": [strong.as_dict(private=False)]},
    )
    weak = RSAKey.import_key(rsa.generate_private_key(65537, 1024), parameters={"alg": "PS256", "kid": "weak"})
    await session.execute(
        update(OAuthClient)
        .where(OAuthClient.id == created.client.id)
        .values(jwks={"keys": [weak.as_dict(private=False)]})
    )
    response = await token_with_assertion(client, client_assertion(weak, created.client.id, settings.token_endpoint))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"
