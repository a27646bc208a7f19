"""A token's signature is checked once per process (``app.auth.verified``): what is remembered never lets through
a token that differs from the verified one, nor one that has expired since, and stays bounded."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from fastapi import FastAPI

from app.auth import verified
from app.auth.verified import VerifiedTokens
from tests.conftest import CallerFactory

AUDIT = "/v1/admin/audit-events"


def _b64(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def test_a_token_that_differs_from_a_verified_one_is_verified_in_full(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    admin = await caller("staff", role="admin")
    assert (await client.get(AUDIT, headers=admin.headers)).status_code == 200
    assert len(app.state.verified_tokens) >= 1
    head, claims, signature = admin.token.split(".")
    widened = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    widened["scope"] += " keys:manage"
    for forged in (f"{head}.{_b64(widened)}.{signature}", f"{head}.{claims}.{signature[:-2]}AA"):
        answer = await client.get(AUDIT, headers={"Authorization": f"Bearer {forged}"})
        assert answer.status_code == 401, answer.text
    assert (await client.get(AUDIT, headers=admin.headers)).status_code == 200


async def test_a_verified_token_is_refused_once_expired(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await caller("staff", role="admin")
    assert (await client.get(AUDIT, headers=admin.headers)).status_code == 200
    claims = admin.token.split(".")[1]
    expires = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["exp"]
    later = expires + app.state.settings.clock_skew_s + 1
    # The real time, past the token's end (joserfc's verification reads the same clock).
    monkeypatch.setattr(verified.time, "time", lambda: later)
    answer = await client.get(AUDIT, headers=admin.headers)
    assert answer.status_code == 401, answer.text


def test_remembered_tokens_are_bounded_the_oldest_forgotten_first() -> None:
    tokens = VerifiedTokens(leeway_s=30, max_entries=3)
    far = 4_000_000_000
    for number in range(5):
        tokens.put(tokens.key(f"token-{number}"), {"exp": far, "n": number}, "kid")
    assert len(tokens) == 3
    assert tokens.get(tokens.key("token-0")) is None
    assert tokens.get(tokens.key("token-4")) == ({"exp": far, "n": 4}, "kid")
    tokens.put(tokens.key("no-expiry"), {"n": 9}, "kid")  # never remembered without an exp
    assert tokens.get(tokens.key("no-expiry")) is None
