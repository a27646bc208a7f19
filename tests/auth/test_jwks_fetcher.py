"""Fetching partners' ``jwks_uri``: cached, one fetch at a time, failures backed off, bounded, checked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, RSAKey

from app.auth.server import JwksFetcher
from app.core.config import Settings
from tests.auth.helpers import partner_key

URI = "https://partner.example/jwks.json"
# Weak keys are made on purpose here.
pytestmark = pytest.mark.filterwarnings("ignore:Key size should be")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _jwks(key: ECKey | RSAKey) -> dict[str, object]:
    return {"keys": [key.as_dict(private=False)]}


def _fetcher(settings: Settings, handler: Callable[[httpx.Request], httpx.Response], clock: Clock) -> JwksFetcher:
    return JwksFetcher(settings, transport=httpx.MockTransport(handler), clock=clock)


async def test_keys_are_cached_then_refreshed(settings: Settings) -> None:
    clock, calls, key = Clock(), [], partner_key()

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json=_jwks(key))

    fetcher = _fetcher(settings, handler, clock)
    assert (await fetcher.get(URI)) is not None
    assert (await fetcher.get(URI)) is not None
    assert len(calls) == 1
    clock.now += settings.jwks_uri_cache_s + 1
    assert (await fetcher.get(URI)) is not None
    assert len(calls) == 2


async def test_a_failed_fetch_is_not_retried_before_the_backoff(settings: Settings) -> None:
    clock, calls = Clock(), []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("down", request=request)

    fetcher = _fetcher(settings, handler, clock)
    for _ in range(5):
        assert (await fetcher.get(URI)) is None
    assert len(calls) == 1
    clock.now += JwksFetcher.FAILURE_BACKOFF_S + 1
    assert (await fetcher.get(URI)) is None
    assert len(calls) == 2


async def test_concurrent_requests_share_one_fetch(settings: Settings) -> None:
    calls: list[httpx.Request] = []
    key = partner_key()

    async def slow(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        await asyncio.sleep(0.05)
        return httpx.Response(200, json=_jwks(key))

    fetcher = JwksFetcher(settings, transport=httpx.MockTransport(slow))
    results = await asyncio.gather(*[fetcher.get(URI) for _ in range(10)])
    assert all(result is not None for result in results)
    assert len(calls) == 1


async def test_concurrent_requests_share_one_failure(settings: Settings) -> None:
    calls: list[httpx.Request] = []

    async def slow_failure(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        await asyncio.sleep(0.05)
        raise httpx.ConnectTimeout("timeout", request=request)

    fetcher = JwksFetcher(settings, transport=httpx.MockTransport(slow_failure))
    assert await asyncio.gather(*[fetcher.get(URI) for _ in range(10)]) == [None] * 10
    assert len(calls) == 1


async def test_stale_keys_are_served_for_at_most_an_hour(settings: Settings) -> None:
    clock, key = Clock(), partner_key()
    up = True

    def handler(request: httpx.Request) -> httpx.Response:
        if not up:
            return httpx.Response(503)
        return httpx.Response(200, json=_jwks(key))

    fetcher = _fetcher(settings, handler, clock)
    assert (await fetcher.get(URI)) is not None
    up = False
    clock.now += settings.jwks_uri_cache_s + 1
    assert (await fetcher.get(URI)) is not None  # stale, while the partner's server is down
    clock.now = 1000.0 + JwksFetcher.MAX_STALE_S + 1
    assert (await fetcher.get(URI)) is None


async def test_a_response_past_64_kb_is_refused(settings: Settings) -> None:
    key = partner_key()
    padded = json.dumps({**_jwks(key), "padding": "x" * (64 * 1024)}).encode()

    def declared(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=padded, headers={"content-type": "application/json"})

    def streamed(request: httpx.Request) -> httpx.Response:
        chunks = [padded[offset : offset + 4096] for offset in range(0, len(padded), 4096)]
        return httpx.Response(200, stream=httpx.ByteStream(b"".join(chunks)))

    assert (await _fetcher(settings, declared, Clock()).get(URI)) is None
    assert (await _fetcher(settings, streamed, Clock()).get(URI)) is None


async def test_a_slow_response_is_abandoned(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(JwksFetcher, "TIMEOUT_S", 0.05)

    async def dripping(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(1)
        return httpx.Response(200, json={"keys": []})

    fetcher = JwksFetcher(settings, transport=httpx.MockTransport(dripping))
    assert (await fetcher.get(URI)) is None


def _weak_rsa() -> RSAKey:
    return RSAKey.import_key(rsa.generate_private_key(65537, 1024).public_key(), parameters={"alg": "PS256"})


@pytest.mark.parametrize(
    "document",
    [
        lambda: {"keys": [_weak_rsa().as_dict()]},
        lambda: {"keys": [ECKey.generate_key("P-384").as_dict(private=False)]},
        lambda: {"keys": [partner_key().as_dict(private=True)]},
        lambda: {"keys": []},
        lambda: [1, 2],
        lambda: "[" * 20_000 + "]" * 20_000,
    ],
)
async def test_fetched_keys_obey_the_rules_of_registered_keys(
    settings: Settings, document: Callable[[], object]
) -> None:
    body = document()
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content)

    assert (await _fetcher(settings, handler, Clock()).get(URI)) is None
