"""Every route of the app x every principal, against the policy written in ``tests.security.policy``.

The expectations come from the policy table, never from the app's own security declarations: a route the app
serves without an entry fails, and so does an entry for a route the app no longer serves. For each route: no token
is 401; a principal the policy does not admit is 403 (authenticated, wrong role or scope); one it admits gets
anything but 401/403, and never a 5xx; the same principal with a token lacking the scope the policy names is 403.
Objects in paths do not exist here (admitted callers then get 404 or 422): ``test_cross_tenant`` uses real ones.
"""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from app.core.problems import PROBLEM_MEDIA_TYPE
from tests.conftest import Caller, CallerFactory
from tests.security.policy import EVERY_PRINCIPAL, POLICY, app_routes
from tests.security.principals import PRINCIPALS, disable_rate_limit, make_callers


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x_unknown", path.replace("{period}", "2020-01"))


def test_every_route_of_the_app_has_a_policy_entry(app: FastAPI) -> None:
    served = app_routes(app)
    missing = [route for route in served if route not in POLICY]
    assert not missing, "Routes without an entry in tests/security/policy.py POLICY (add one each):\n" + "\n".join(
        f'    ("{method}", "{path}"): <who may call it>,' for method, path in missing
    )
    stale = sorted(set(POLICY) - set(served))
    assert not stale, f"POLICY entries for routes the app does not serve: {stale}"


def test_the_policy_names_only_known_principals() -> None:
    assert set(PRINCIPALS) == set(EVERY_PRINCIPAL)
    for route, access in POLICY.items():
        assert set(access.needs) <= set(EVERY_PRINCIPAL), route
        assert access.public != bool(access.needs), f"{route}: public, or admits someone; not both, not neither"


async def _request(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    if method == "MOUNT":
        return await client.get(path + "/", headers=headers)
    body: dict[str, object] | None = {} if method in ("POST", "PUT", "PATCH") else None
    return await client.request(method, _url(path), json=body, headers=headers)


async def test_every_route_for_every_principal(app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory) -> None:
    disable_rate_limit(app)
    callers = await make_callers(caller)
    narrowed: dict[tuple[str, str], Caller] = {}
    failures: list[str] = []
    checked = 0
    for method, path in app_routes(app):
        access = POLICY.get((method, path))
        if access is None:
            failures.append(f"{method} {path} has no entry in tests/security/policy.py POLICY")
            continue
        anonymous = await _request(client, method, path, {})
        checked += 1
        if access.public:
            # The OAuth endpoints authenticate their clients themselves (401 invalid_client is theirs to answer).
            refused = (403,) if path.startswith("/oauth/") else (401, 403)
            if anonymous.status_code in refused or anonymous.status_code >= 500:
                failures.append(f"{method} {path} is public but answered {anonymous.status_code} without a token")
            continue
        if anonymous.status_code != 401:
            failures.append(f"{method} {path} without a token: {anonymous.status_code}, expected 401")
        for name, who in callers.items():
            headers = {**who.headers, "Idempotency-Key": f"matrix-{name}"}
            response = await _request(client, method, path, headers)
            checked += 1
            status = response.status_code
            if status >= 500:
                failures.append(f"{method} {path} as {name}: {status} {response.text[:200]}")
            elif access.admits(name) and status in (401, 403):
                failures.append(f"{method} {path} as {name}: {status}, but the policy admits {name}")
            elif not access.admits(name) and status != 403:
                failures.append(f"{method} {path} as {name}: {status}, expected 403 (the policy refuses {name})")
            if status >= 400 and response.headers.get("content-type") != PROBLEM_MEDIA_TYPE:
                failures.append(f"{method} {path} as {name}: {status} is not a problem document")
        for name, scope in access.needs.items():
            if (name, scope) not in narrowed:
                kind, role = PRINCIPALS[name]
                without = [granted for granted in callers[name].client.scopes if granted != scope]
                narrowed[(name, scope)] = await caller(kind, role=role, scopes=without)
            response = await _request(client, method, path, narrowed[(name, scope)].headers)
            checked += 1
            if response.status_code != 403:
                failures.append(f"{method} {path} as {name} without {scope}: {response.status_code}, expected 403")
    assert not failures, "\n".join(failures)
    assert checked >= len(POLICY) * 7
