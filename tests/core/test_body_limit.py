from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.core.database import Database
from app.main import create_app


@pytest.fixture
def app(settings: Settings, connection) -> FastAPI:  # type: ignore[no-untyped-def]
    small = settings.model_copy(update={"max_body_bytes": 2048})
    app = create_app(small, Database(connection, join_savepoint=True))

    @app.post("/_test/echo")
    async def echo(payload: dict[str, str]) -> dict[str, int]:
        return {"keys": len(payload)}

    return app


async def test_declared_oversized_body_is_refused_before_reading(client: httpx.AsyncClient) -> None:
    response = await client.post("/_test/echo", json={"x": "y" * 5000})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/payload-too-large")


async def test_streamed_oversized_body_is_cut_off(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"x": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    response = await client.post("/_test/echo", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["type"].endswith("/payload-too-large")


async def test_bodies_within_the_limit_pass(client: httpx.AsyncClient) -> None:
    response = await client.post("/_test/echo", json={"x": "y" * 100})
    assert response.status_code == 200
