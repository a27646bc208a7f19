"""Every boolean of every JSON request body, at any depth, is a JSON boolean: "yes", "true", 1 and "1" are refused."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI

from tests.api_contract.routes import admitted_caller, base_body, operations, problem_errors, resolve
from tests.conftest import CallerFactory
from tests.security.principals import disable_rate_limit, make_callers

LOOSE = ["yes", "true", 1, "1"]
Path = tuple[str | int, ...]


def _boolean_paths(schema: dict[str, Any], document: dict[str, Any], path: Path = ()) -> Iterator[Path]:
    """Where a boolean sits in a body of this schema (the first alternative of unions, one item of arrays)."""
    schema = resolve(schema, document)
    if schema.get("type") == "boolean":
        yield path
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for choice in schema.get(key, []):
            yield from _boolean_paths(choice, document, path)
    for name, prop in schema.get("properties", {}).items():
        yield from _boolean_paths(prop, document, (*path, name))
    if schema.get("type") == "array":
        yield from _boolean_paths(schema.get("items", {}), document, (*path, 0))


def _set(body: Any, path: Path, value: Any) -> Any:
    body = copy.deepcopy(body)
    if not path:
        return value
    holder = body
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = value
    return body


def _names_the_field(loc: list[Any], path: Path) -> bool:
    """The error's location runs through the path (a union may insert the alternative's name) and ends on it."""
    remaining = iter(loc[1:])
    return loc[0] == "body" and loc[-1] == path[-1] and all(part in remaining for part in path)


async def test_every_boolean_of_every_body_refuses_loose_values(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    disable_rate_limit(app)
    document = (await client.get("/openapi.json")).json()
    callers = await make_callers(caller)
    checked = set()
    for operation in operations(app, document):
        schema = operation.json_body_schema
        if schema is None:
            continue
        who = admitted_caller(operation, callers)
        base = base_body(operation, document)
        for path in set(_boolean_paths(schema, document)):
            for value in LOOSE:
                response = await client.request(
                    operation.method,
                    operation.url,
                    json=_set(base, path, value),
                    headers={**(who.headers if who else {}), "Idempotency-Key": f"b-{operation.path}-{path}-{value!r}"},
                )
                where = (operation.method, operation.path, path, value)
                assert response.status_code == 422, (*where, response.status_code, response.text)
                assert any(_names_the_field(error["loc"], path) for error in problem_errors(response)), (
                    *where,
                    response.text,
                )
            checked.add((operation.path, path))
    # Webhook endpoints (enabled), partners (vat_inclusive), products (active), consent (separate_consent) at least.
    assert len(checked) >= 6, checked
