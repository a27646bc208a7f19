from __future__ import annotations

import json

import httpx
import pytest


async def test_request_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_request_id_is_echoed_when_given(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "bank-7f3a:42"})
    assert response.headers["x-request-id"] == "bank-7f3a:42"


async def test_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32


async def test_access_log_is_json_and_carries_the_request_id(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    await client.get("/healthz", headers={"X-Request-ID": "log-check-1"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "request"]
    assert access, "no access log line written"
    assert access[-1]["request_id"] == "log-check-1"
    assert access[-1]["route"] == "/healthz"
    assert access[-1]["status"] == 200


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/no/such/path")
    body = (await client.get("/metrics")).text
    assert 'alliance_http_requests_total{method="GET",route="/healthz",status="200"}' in body
    assert 'route="unmatched",status="404"' in body
    assert "alliance_http_request_duration_seconds_bucket" in body
