"""``SubmissionRoute`` answers the usual request by its own handler and any other by FastAPI's: both answer alike.

Each request is sent twice, once as ``Content-Type: application/json`` (the route's own handler) and once as
``application/json; charset=utf-8`` (the same body for FastAPI, which the route's handler leaves to FastAPI's), and
the two answers must be the same: status, and body but for the ids and times a new referral has."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import authenticate
from app.core.problems import Forbidden
from app.referrals.models import Referral
from tests.conftest import CallerFactory
from tests.referrals.conftest import PartnerDesk, individual

REFERRALS = "/v1/referrals"
OWN, GENERAL = "application/json", "application/json; charset=utf-8"
NEW_EACH_TIME = ("id", "external_ref", "window_ends_at", "created_at", "updated_at", "subject")


def _comparable(response: httpx.Response) -> tuple[int, Any]:
    content = response.json()
    if isinstance(content, dict):
        content = {name: value for name, value in content.items() if name not in NEW_EACH_TIME}
        content.pop("request_id", None)  # each request its own
    return response.status_code, content


async def _both(
    client: httpx.AsyncClient, make_body: Callable[[], Any], headers: Callable[[], dict[str, str]], url: str = REFERRALS
) -> tuple[httpx.Response, httpx.Response]:
    answers = []
    for content_type in (OWN, GENERAL):
        content = json.dumps(make_body(), ensure_ascii=False).encode()
        answers.append(await client.post(url, content=content, headers={**headers(), "Content-Type": content_type}))
    own, general = answers
    assert _comparable(own) == _comparable(general), (own.text, general.text)
    return own, general


def _mutated(program_id: str, change: Callable[[dict[str, Any]], object]) -> Callable[[], dict[str, Any]]:
    def make() -> dict[str, Any]:
        body = individual(program_id)
        change(body)
        return body

    return make


async def test_a_submission_is_answered_alike_by_both_handlers(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    own, _ = await _both(client, lambda: individual(bank.program.id), bank.headers)
    assert own.status_code == 201 and own.json()["status"] == "eligible"


@pytest.mark.parametrize(
    ("name", "change", "status"),
    [
        ("a wrong national id", lambda b: b["subject"].update(national_id="230102199302301234"), 422),
        ("no consent", lambda b: b.pop("consent"), 422),
        ("an unknown field", lambda b: b.update(extra="x"), 422),
        ("a NUL in the name", lambda b: b["subject"].update(name="张\u0000三"), 422),
        ("another partner's program", lambda b: b.update(program_id="prg_nobody"), 422),
    ],
)
async def test_a_refused_submission_is_answered_alike(
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    session: AsyncSession,
    name: str,
    change: Callable[[dict[str, Any]], object],
    status: int,
) -> None:
    own, _ = await _both(client, _mutated(bank.program.id, change), bank.headers)
    assert own.status_code == status, (name, own.text)
    assert await session.scalar(select(func.count()).select_from(Referral)) == 0


@pytest.mark.parametrize(
    "body",
    [None, [], "text", {}],
    ids=["null", "a list", "a string", "an empty object"],
)
async def test_a_body_that_is_no_referral_is_answered_alike(
    client: httpx.AsyncClient, bank: PartnerDesk, body: Any
) -> None:
    own, _ = await _both(client, lambda: body, bank.headers)
    assert own.status_code == 422


async def test_the_callers_errors_come_first_and_alike(
    client: httpx.AsyncClient, bank: PartnerDesk, caller: CallerFactory
) -> None:
    def no_token() -> dict[str, str]:
        return {"Idempotency-Key": "k"}

    def bad_token() -> dict[str, str]:
        return {"Authorization": "Bearer not-a-token", "Idempotency-Key": "k"}

    for headers in (no_token, bad_token):
        # The token is refused before the body is validated, as for FastAPI's handler.
        own, _ = await _both(client, lambda: individual(bank.program.id), headers)
        assert own.status_code == 401, own.text
        own, _ = await _both(client, lambda: {"program_id": 1}, headers)
        assert own.status_code == 401, own.text

    reader = await caller("partner", partner=bank.partner, scopes=["referrals:read"])
    reader_headers = {**reader.headers, "Idempotency-Key": "r"}
    own, _ = await _both(client, lambda: individual(bank.program.id), lambda: reader_headers)
    assert own.status_code == 403, own.text


async def test_a_key_reused_with_another_body_is_answered_alike(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    first = await client.post(REFERRALS, json=individual(bank.program.id), headers=bank.headers("reused"))
    assert first.status_code == 201
    own, _ = await _both(client, lambda: individual(bank.program.id), lambda: bank.headers("reused"))
    assert own.status_code == 422 and own.json()["type"].endswith("/idempotency-key-reused")


async def test_requests_of_another_shape_go_to_fastapis_handler(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    body = individual(bank.program.id)
    no_key = await client.post(REFERRALS, json=body, headers=bank.caller.headers)
    long_key = await client.post(REFERRALS, json=body, headers=bank.headers("k" * 201))
    query = await client.post(REFERRALS + "?dry_run=1", json=body, headers=bank.headers())
    not_json = await client.post(REFERRALS, content=b"{", headers={**bank.headers(), "Content-Type": OWN})
    assert [r.status_code for r in (no_key, long_key, query, not_json)] == [422] * 4
    assert [error["loc"] for error in no_key.json()["errors"]] == [["header", "Idempotency-Key"]]
    assert [error["loc"] for error in long_key.json()["errors"]] == [["header", "Idempotency-Key"]]
    assert [error["loc"] for error in query.json()["errors"]] == [["query", "dry_run"]]
    assert not_json.json()["errors"][0]["type"] == "json_invalid"


async def test_an_override_is_honoured(app: FastAPI, client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    """While a dependency is overridden, even the usual request is FastAPI's, which honours the override."""

    def refuse() -> None:
        raise Forbidden("refused by the override")

    app.dependency_overrides[authenticate] = refuse
    body = json.dumps(individual(bank.program.id), ensure_ascii=False).encode()
    answer = await client.post(REFERRALS, content=body, headers={**bank.headers(), "Content-Type": OWN})
    assert answer.status_code == 403 and answer.json()["detail"] == "refused by the override", answer.text
