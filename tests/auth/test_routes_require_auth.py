"""Every route of the OpenAPI document refuses a call without a token, except the public ones listed here."""

from __future__ import annotations

import re

import httpx

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth/introspect"),
    ("POST", "/oauth/revoke"),
}


async def test_every_non_public_route_is_401_without_a_token(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    checked = 0
    for path, operations in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x_unknown", path)
        for method in operations:
            if (method.upper(), path) in PUBLIC:
                continue
            response = await client.request(method.upper(), concrete, json={})
            assert response.status_code == 401, f"{method.upper()} {path} answered {response.status_code}"
            assert response.headers["content-type"] == "application/problem+json"
            checked += 1
    assert checked >= 6


async def test_public_routes_are_listed_in_the_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    assert documented >= PUBLIC
