"""Every route of the OpenAPI document x every kind of principal: the outcome its documented scopes promise.

No token → 401; a token without one of the route's scopes → 403; a token with them → anything but 401/403 (the
objects named in the path do not exist, so 404 or 422 are expected there) and never a 500.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI

from app.auth.scopes import PrincipalKind, StaffRole
from tests.auth.test_routes_require_auth import PUBLIC
from tests.conftest import Caller, CallerFactory

PRINCIPALS: list[tuple[str, PrincipalKind, StaffRole | None]] = [
    ("partner", PrincipalKind.partner, None),
    ("back_office", PrincipalKind.back_office, None),
    *((role.value, PrincipalKind.staff, role) for role in StaffRole),
]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, list[set[str]]]]:
    """Each operation with its security requirements: alternatives, any one of which admits the caller."""
    operations = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if (method.upper(), path) in PUBLIC:
                continue
            requirements = [set(requirement.get("oauth2", [])) for requirement in operation.get("security", [])]
            operations.append((method.upper(), path, requirements))
    return operations


async def test_every_route_for_every_principal(app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory) -> None:
    app.state.api_rate_limits.take = lambda *args, **kwargs: (
        0.0
    )  # hundreds of calls: the rate limit is tested elsewhere
    document = (await client.get("/openapi.json")).json()
    operations = _operations(document)
    callers: dict[str, Caller] = {name: await caller(kind, role=role) for name, kind, role in PRINCIPALS}
    outcomes: list[tuple[str, str, str, int]] = []
    for method, path, requirements in operations:
        assert requirements and all(requirements), f"{method} {path} documents no scope"
        url = re.sub(r"\{[^}]+\}", "x_unknown", path)
        if "{period}" in path:
            url = path.replace("{period}", "2020-01")
        anonymous = await client.request(method, url, json={})
        assert anonymous.status_code == 401, (method, path)
        for name, who in callers.items():
            response = await client.request(
                method, url, json={}, headers={**who.headers, "Idempotency-Key": f"m-{name}"}
            )
            allowed = any(scopes <= set(who.client.scopes) for scopes in requirements)
            outcomes.append((method, path, name, response.status_code))
            assert response.status_code < 500, (method, path, name, response.text)
            if allowed:
                assert response.status_code not in (401, 403), (method, path, name, response.text)
            else:
                assert response.status_code == 403, (method, path, name, response.status_code)
            assert response.headers["content-type"].startswith(
                ("application/json", "application/problem+json", "text/", "application/vnd")
            )
    assert len(outcomes) >= 7 * 30
