"""The app's routes as the contract tests walk them: enumerated from the app itself, each with a principal it admits.

A route added tomorrow is walked by every test here without anyone listing it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from tests.conftest import Caller
from tests.factories.referrals import individual


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    route: RouteContext
    spec: dict[str, Any]  # the operation in the OpenAPI document

    @property
    def url(self) -> str:
        """The path with made-up (unknown) identifiers, and a valid period where one is needed."""
        return re.sub(r"\{[^}]+\}", "x_unknown", self.path.replace("{period}", "2020-01"))

    @property
    def json_body_schema(self) -> dict[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        return dict(schema) if schema is not None else None


def operations(app: FastAPI, document: dict[str, Any]) -> list[Operation]:
    """Every (method, path) the app routes to a documented API endpoint, with its OpenAPI operation."""
    found = []
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.original_route.include_in_schema:
            continue  # pages for people (docs, problem types) are walked by tests/core/test_html_pages.py
        assert route.path is not None and route.methods
        for method in sorted(route.methods):
            spec = document["paths"][route.path][method.lower()]
            found.append(Operation(method, route.path, route, spec))
    assert len(found) > 50, "the app's routes were not found"
    return found


def admitted_caller(operation: Operation, callers: dict[str, Caller]) -> Caller | None:
    """The first principal (in ``PRINCIPALS`` order) whose scopes satisfy the operation; None for a public route."""
    security = operation.spec.get("security")
    if not security:
        return None
    for who in callers.values():
        if any(set(requirement.get("oauth2", [])) <= set(who.client.scopes) for requirement in security):
            return who
    raise AssertionError(f"no principal is admitted to {operation.method} {operation.path}")


def resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def example(schema: dict[str, Any], document: dict[str, Any]) -> Any:
    """A body of the schema's shape with every optional member filled in (not necessarily valid as a whole)."""
    schema = resolve(schema, document)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            choices = [choice for choice in schema[key] if resolve(choice, document).get("type") != "null"]
            return example(choices[0], document) if choices else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: example(prop, document) for name, prop in schema.get("properties", {}).items()}
    if kind == "array":
        return [example(schema.get("items", {}), document) for _ in range(max(1, schema.get("minItems", 1)))]
    if kind == "string":
        return {"date": "2026-01-01", "date-time": "2026-01-01T00:00:00+08:00", "uri": "https://example.com/"}.get(
            schema.get("format", ""), "x" * max(3, schema.get("minLength", 0))
        )
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    return {} if kind is None else None


# Bodies whose validation stops at the first invalid part (a referral's subject is checked before the rest): a
# valid one, so that a change to one member is judged on its own.
VALID_BODIES: dict[tuple[str, str], Callable[[], Any]] = {
    ("POST", "/v1/referrals"): lambda: individual("prg_unknown"),
}


def base_body(operation: Operation, document: dict[str, Any]) -> Any:
    """The body the tests vary, one member at a time."""
    schema = operation.json_body_schema
    assert schema is not None
    valid = VALID_BODIES.get((operation.method, operation.path))
    return valid() if valid else example(schema, document)


def problem_errors(response: Any) -> list[dict[str, Any]]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return list(response.json().get("errors") or [])
