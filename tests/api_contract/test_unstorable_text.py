"""Text no column can hold, or no response can encode, sent into every string and every key of every JSON body.

A lone surrogate (``"\\ud800"`` on the wire: UTF-8 cannot encode it), a NUL (PostgreSQL text cannot store it) and a
very long string: never a 5xx, and the answer never contains what was sent.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI

from tests.api_contract.routes import Operation, admitted_caller, base_body, operations, problem_errors
from tests.conftest import CallerFactory
from tests.factories.referrals import PartnerDesk, individual
from tests.security.principals import disable_rate_limit, make_callers

Path = tuple[str | int, ...]

# Each value carries a marker that appears nowhere else, so that any echo, whole or in part, is seen.
VALUES = {
    "Qsurr": "Qsurr\ud800Qsurr",  # sent as the JSON escape \ud800
    "Qraw": "Qraw\udfffQraw",  # sent as the bytes ED BF BF, which json.loads decodes to a lone surrogate
    "Qnul": "Qnul\x00Qnul",
    "Qlong": "Qlong" * 4000,
}


def encode(body: Any, marker: str) -> bytes:
    if marker == "Qraw":
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
        assert b"\xed\xbf\xbf" in raw
        return raw
    escaped = json.dumps(body).encode()
    assert marker != "Qsurr" or b"\\ud800" in escaped
    return escaped


def _strings(value: Any, path: Path = ()) -> Iterator[Path]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def _objects(value: Any, path: Path = ()) -> Iterator[Path]:
    if isinstance(value, dict):
        yield path
        for key, item in value.items():
            yield from _objects(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _objects(item, (*path, index))


def _at(body: Any, path: Path) -> Any:
    for part in path:
        body = body[part]
    return body


def _variants(base: Any) -> Iterator[tuple[str, Path, Any]]:
    """(marker, where, body): each string replaced by each value, and each object given each value as a key."""
    for path in _strings(base):
        for marker, value in VALUES.items():
            body = copy.deepcopy(base)
            _at(body, path[:-1])[path[-1]] = value
            yield marker, path, body
    for path in _objects(base):
        for marker, value in VALUES.items():
            body = copy.deepcopy(base)
            _at(body, path)[value] = "x"
            yield marker, (*path, "<key>"), body


async def _send(
    client: httpx.AsyncClient, operation: Operation, headers: dict[str, str], body: Any, marker: str
) -> httpx.Response:
    return await client.request(
        operation.method,
        operation.url,
        content=encode(body, marker),
        headers={**headers, "Content-Type": "application/json", "Idempotency-Key": f"t-{id(body)}"},
    )


async def test_unstorable_and_huge_text_in_every_body_is_refused_and_never_echoed(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    disable_rate_limit(app)
    document = (await client.get("/openapi.json")).json()
    callers = await make_callers(caller)
    sent = 0
    for operation in operations(app, document):
        schema = operation.json_body_schema
        if schema is None:
            continue
        who = admitted_caller(operation, callers)
        headers = who.headers if who else {}
        for marker, path, body in _variants(base_body(operation, document)):
            response = await _send(client, operation, headers, body, marker)
            where = (operation.method, operation.path, path, marker)
            assert response.status_code < 500, (*where, response.text)
            assert marker not in response.text, (*where, response.text[:500])
            if marker != "Qlong":
                assert response.status_code == 422, (*where, response.status_code, response.text)
            sent += 1
    assert sent > 100


async def test_a_lone_surrogate_in_a_conversion_event_is_refused_with_its_location(
    client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    back_office = await caller("back_office")
    raw = b'{"events": [{"source_event_id": "a\\ud800b", "type": "account_opened", "client_ref": "C1"}]}'
    response = await client.post(
        "/v1/conversion-events",
        content=raw,
        headers={**back_office.headers, "Content-Type": "application/json", "Idempotency-Key": "surrogate-1"},
    )
    assert response.status_code == 422
    assert [error["loc"] for error in problem_errors(response)] == [["body", "events", 0, "source_event_id"]]


CLOSED = {
    "source_event_id": "e1",
    "type": "account_closed",
    "occurred_at": "2026-11-01T10:00:00+08:00",
    "client_ref": "C1",
}


async def test_a_rejected_event_does_not_echo_an_unknown_member(
    client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    back_office = await caller("back_office")
    unknown = "客户" + "z" * 5000
    response = await client.post(
        "/v1/conversion-events",
        json={"events": [{**CLOSED, unknown: 1}]},
        headers={**back_office.headers, "Idempotency-Key": "unknown-member-1"},
    )
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["result"] == "rejected" and result["source_event_id"] == "e1"
    assert "z" * 20 not in response.text and "客户" not in response.text


async def test_a_batch_line_does_not_echo_an_unknown_member(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    line = {**individual(bank.program.id), "客户" + "z" * 50: 1}
    submitted = await client.post(
        "/v1/referral-batches",
        content=json.dumps(line).encode(),
        headers={**bank.caller.headers, "Content-Type": "application/x-ndjson", "Idempotency-Key": "batch-unknown-1"},
    )
    assert submitted.status_code == 202, submitted.text
    results = await client.get(f"/v1/referral-batches/{submitted.json()['id']}/results", headers=bank.caller.headers)
    [result] = results.json()["data"]
    assert result["outcome"] == "error"
    assert result["errors"] == [{"field": "(name not shown)", "message": "Extra inputs are not permitted"}]
    assert "z" * 20 not in results.text and "客户" not in results.text
