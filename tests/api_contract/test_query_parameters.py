"""Every route refuses a query parameter it does not declare, naming it, and accepts every one it declares."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.api_contract.routes import Operation, admitted_caller, base_body, operations, problem_errors
from tests.conftest import CallerFactory
from tests.security.principals import disable_rate_limit, make_callers


async def _send(client: httpx.AsyncClient, operation: Operation, headers: dict[str, str], query: Any) -> httpx.Response:
    return await client.request(
        operation.method,
        operation.url,
        params=query,
        json={} if operation.json_body_schema is not None else None,
        headers={**headers, "Idempotency-Key": f"q-{operation.method}-{operation.path}-{len(str(query))}"},
    )


def _unknown(response: httpx.Response) -> list[list[Any]]:
    if response.status_code != 422:
        return []
    return [error["loc"] for error in problem_errors(response) if error["type"] == "extra_forbidden"]


async def test_every_route_refuses_an_unknown_query_parameter_by_name(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    disable_rate_limit(app)
    document = (await client.get("/openapi.json")).json()
    callers = await make_callers(caller)
    checked = 0
    for operation in operations(app, document):
        who = admitted_caller(operation, callers)
        headers = who.headers if who else {}
        declared = [p["name"] for p in operation.spec.get("parameters", []) if p["in"] == "query"]
        # A misspelt filter next to a real one: refused, and named.
        query = [("stauts", "withdrawn"), *((name, "x") for name in declared[:1])]
        response = await _send(client, operation, headers, query)
        if operation.path.startswith("/oauth/"):  # RFC 6749, 3.1: unrecognised parameters are ignored
            assert _unknown(response) == [], (operation.method, operation.path, response.text)
            assert response.status_code < 500, (operation.method, operation.path, response.text)
            continue
        assert response.status_code == 422, (operation.method, operation.path, response.status_code, response.text)
        assert _unknown(response) == [["query", "stauts"]], (operation.method, operation.path, response.text)
        # Every declared parameter is known, whatever its value.
        response = await _send(client, operation, headers, [(name, "x") for name in declared])
        assert _unknown(response) == [], (operation.method, operation.path, response.text)
        assert response.status_code < 500, (operation.method, operation.path, response.text)
        checked += 1
    assert checked > 50


async def test_a_misspelt_filter_no_longer_lists_everything(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    partner = await caller("partner")
    response = await client.get("/v1/referrals", params={"stauts": "withdrawn"}, headers=partner.headers)
    assert response.status_code == 422
    assert problem_errors(response) == [
        {"loc": ["query", "stauts"], "msg": "Unknown query parameter", "type": "extra_forbidden"}
    ]
    staff = await caller("staff", role="alliance_manager")
    response = await client.get("/v1/admin/referrals", params={"partner": "ptn_x", "limit": 5}, headers=staff.headers)
    assert [error["loc"] for error in problem_errors(response)] == [["query", "partner"]]


async def test_an_unknown_name_that_is_not_a_field_name_is_not_echoed(
    client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    partner = await caller("partner")
    for name in ("13800138000", "张三", "a\x00b", "x" * 300):
        response = await client.get("/v1/referrals", params={name: "1"}, headers=partner.headers)
        assert response.status_code == 422
        assert [error["loc"] for error in problem_errors(response)] == [["query", "(name not shown)"]]
        assert name not in response.text


def _declared_objects(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Where the body holds an object with declared members (a free-form object, empty in the example, is skipped)."""
    found = [path] if isinstance(value, dict) and value else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in items:
        found += _declared_objects(item, (*path, key))
    return found


async def test_every_body_refuses_an_unknown_member_by_name(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    disable_rate_limit(app)
    document = (await client.get("/openapi.json")).json()
    callers = await make_callers(caller)
    checked = 0
    for operation in operations(app, document):
        if operation.json_body_schema is None:
            continue
        who = admitted_caller(operation, callers)
        for path in _declared_objects(base_body(operation, document)):
            body = base_body(operation, document)
            holder = body
            for part in path:
                holder = holder[part]
            holder["stauts"] = "withdrawn"
            response = await client.request(
                operation.method,
                operation.url,
                json=body,
                headers={**(who.headers if who else {}), "Idempotency-Key": f"m-{operation.path}-{path}"},
            )
            where = (operation.method, operation.path, path)
            assert response.status_code == 422, (*where, response.status_code, response.text)
            locs = [error["loc"] for error in problem_errors(response) if error["type"] == "extra_forbidden"]
            assert any(loc[0] == "body" and loc[-1] == "stauts" for loc in locs), (*where, response.text)
            checked += 1
    assert checked > 20
