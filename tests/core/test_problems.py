from __future__ import annotations

from typing import Literal

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.core.database import SessionDep
from app.core.problems import PROBLEM_BASE, Conflict

PROBLEM = "application/problem+json"


class Payload(BaseModel):
    name: str = Field(min_length=1)
    amount_fen: int = Field(ge=0)


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    @app.post("/_test/validate")
    async def validate(payload: Payload) -> dict[str, str]:
        return {"name": payload.name}

    @app.get("/_test/conflict")
    async def conflict() -> None:
        raise Conflict("The partner reference is already taken.", external_ref="R-1")

    @app.get("/_test/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals 110101199003074578")

    @app.get("/_test/database-down")
    async def database_down() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    @app.get("/_test/nul/{column_type}")
    async def nul(column_type: Literal["text", "jsonb"], session: SessionDep) -> None:
        value = "a\x00b" if column_type == "text" else '{"name": "a\\u0000b"}'
        await session.execute(text(f"SELECT CAST(:value AS {column_type})"), {"value": value})

    return app


async def test_unknown_route_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == PROBLEM_BASE + "not-found"
    assert body["status"] == 404
    assert body["instance"] == "/nowhere"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_wrong_method_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert response.status_code == 405
    assert response.json()["type"] == PROBLEM_BASE + "method-not-allowed"


async def test_validation_error_lists_each_field_without_echoing_values(client: httpx.AsyncClient) -> None:
    response = await client.post("/_test/validate", json={"name": "", "amount_fen": -5})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == PROBLEM_BASE + "validation-error"
    locations = {tuple(error["loc"]) for error in body["errors"]}
    assert locations == {("body", "name"), ("body", "amount_fen")}
    assert "-5" not in response.text


async def test_malformed_json_is_a_validation_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/_test/validate", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["type"] == PROBLEM_BASE + "validation-error"


async def test_domain_problem_keeps_status_type_and_extensions(client: httpx.AsyncClient) -> None:
    response = await client.get("/_test/conflict")
    assert response.status_code == 409
    body = response.json()
    assert body["type"] == PROBLEM_BASE + "conflict"
    assert body["detail"] == "The partner reference is already taken."
    assert body["external_ref"] == "R-1"


async def test_unexpected_error_is_an_opaque_500_with_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/_test/boom", headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"] == "trace-42"
    body = response.json()
    assert body["type"] == PROBLEM_BASE + "internal-error"
    assert body["request_id"] == "trace-42"
    assert "secret" not in response.text and "110101" not in response.text


async def test_lost_database_connection_is_a_503_with_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.get("/_test/database-down")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"] == PROBLEM_BASE + "service-unavailable"


@pytest.mark.parametrize("column_type", ["text", "jsonb"])
async def test_text_the_database_cannot_hold_is_a_422(client: httpx.AsyncClient, column_type: str) -> None:
    # Found by the schema fuzzer: a NUL in any string field or filter reached PostgreSQL and came back as a 500.
    response = await client.get(f"/_test/nul/{column_type}")
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == PROBLEM_BASE + "invalid-text"


async def test_openapi_declares_problem_responses(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["info"]["title"] == "Alliance"
    assert "ProblemDetails" in document["components"]["schemas"]
    readyz = document["paths"]["/readyz"]["get"]["responses"]
    assert PROBLEM in readyz["503"]["content"]
    # Every route parses something (a body, a cursor) that can be malformed: a 400 is declared everywhere.
    for operations in document["paths"].values():
        for operation in operations.values():
            assert {"400", "422", "500"} <= set(operation["responses"])
