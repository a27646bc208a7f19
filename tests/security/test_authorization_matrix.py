"""Every route of the OpenAPI document x every kind of principal: the outcome its documented scopes promise.

No token → 401; a token without one of the route's scopes → 403; a token with them → anything but 401/403 (the
objects named in the path do not exist, so 404 or 422 are expected there) and never a 500.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI

from app.core.problems import PROBLEM_MEDIA_TYPE
from tests.auth.test_routes_require_auth import PUBLIC
from tests.conftest import CallerFactory
from tests.security.principals import disable_rate_limit, make_callers


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
    disable_rate_limit(app)
    document = (await client.get("/openapi.json")).json()
    operations = _operations(document)
    callers = await make_callers(caller)
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
            if response.status_code >= 400:
                assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, (method, path, name)
            else:
                assert response.headers["content-type"].startswith(("application/json", "text/", "application/vnd"))
    assert len(outcomes) >= 7 * 30
