"""The SDK's two clients are one implementation: every operation is written once (as a plan, see
``alliance_partner._plans``), and ``Client`` and ``AsyncClient`` differ only in how they carry out its I/O. So
they expose the same methods with the same parameters, and send the same requests for the same calls."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import httpx
from alliance_partner import OPERATIONS, AsyncClient, AsyncPager, Batch, Client, Program, RetryPolicy, SyncPager

#: Public methods that are not one API operation each (the token, and the batch helpers built on several).
COMPOSED = ("fetch_token", "revoke_token", "wait_for_batch", "upload_batch")
METHODS = (*OPERATIONS, *COMPOSED)


def owner_and_method(client: type[Any], name: str) -> tuple[type[Any], Any]:
    """The class holding ``name`` on ``client`` and its method: a dotted name is a method of a group
    (``sandbox.simulate`` is ``client.sandbox.simulate``, on the group's class for that client)."""
    *groups, leaf = name.split(".")
    owner = client
    for group in groups:
        owner = getattr(owner, group)
    return owner, getattr(owner, leaf)


def test_every_method_is_written_once_for_both_clients() -> None:
    for name in METHODS:
        (sync_owner, sync_method), (async_owner, async_method) = (
            owner_and_method(Client, name),
            owner_and_method(AsyncClient, name),
        )
        assert inspect.unwrap(sync_method) is inspect.unwrap(async_method), name
        leaf = name.rsplit(".", 1)[-1]
        assert leaf not in vars(sync_owner) and leaf not in vars(async_owner), f"{name} is written in a client"


def test_the_same_parameters_and_answers_on_both_clients() -> None:
    for name in METHODS:
        sync_method, async_method = owner_and_method(Client, name)[1], owner_and_method(AsyncClient, name)[1]
        sync_signature = inspect.signature(sync_method)
        async_signature = inspect.signature(async_method)
        assert sync_signature.parameters == async_signature.parameters, name
        sync_hints = typing.get_type_hints(sync_method)
        async_hints = typing.get_type_hints(async_method)
        sync_returns, async_returns = sync_hints.pop("return"), async_hints.pop("return")
        assert sync_hints == async_hints, name
        if typing.get_origin(sync_returns) is SyncPager:
            assert async_returns == AsyncPager[typing.get_args(sync_returns)[0]], name  # type: ignore[misc]
        else:
            assert sync_returns == async_returns and sync_returns is not SyncPager, name
    assert inspect.signature(Client.get_program).return_annotation is Program
    assert typing.get_type_hints(AsyncClient.list_programs)["return"] == AsyncPager[Program]


class FakeAlliance:
    """A scripted service: a 503 to retry, two pages, a batch that completes on the second poll, and a token
    the API refuses once (``invalid-token``), so that the client must renew it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._answered: dict[str, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        call = f"{request.method} {request.url.path}" + (f"?{request.url.query.decode()}" if request.url.query else "")
        self.calls.append(call)
        seen = self._answered[call] = self._answered.get(call, 0) + 1
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": f"t{seen}", "token_type": "Bearer", "expires_in": 600})
        if call == "GET /v1/programs?limit=100":
            if seen == 1:
                return httpx.Response(503, json={"type": "/problems/service-unavailable", "status": 503})
            return httpx.Response(200, json={"data": [{"id": "prg_1"}], "next_cursor": "c2"})
        if call == "GET /v1/programs?limit=100&cursor=c2":
            return httpx.Response(200, json={"data": [{"id": "prg_2"}], "next_cursor": None})
        if call == "POST /v1/referral-batches":
            return httpx.Response(202, json={"id": "bat_1", "status": "processing"})
        if call == "GET /v1/referral-batches/bat_1":
            return httpx.Response(200, json={"id": "bat_1", "status": "completed"})
        if call == "GET /v1/referral-batches/bat_1/results?limit=500":
            return httpx.Response(200, json={"data": [{"line": 2, "outcome": "eligible"}], "next_cursor": None})
        if call == "GET /v1/programs/prg_1":
            if seen == 1:
                return httpx.Response(401, json={"type": "/problems/invalid-token", "status": 401})
            return httpx.Response(200, json={"id": "prg_1"})
        return httpx.Response(404, json={"type": "/problems/not-found", "status": 404})


EXPECTED_CALLS = [
    "POST /oauth/token",
    "GET /v1/programs?limit=100",  # 503, retried
    "GET /v1/programs?limit=100",
    "GET /v1/programs?limit=100&cursor=c2",
    "POST /v1/referral-batches",
    "GET /v1/referral-batches/bat_1",
    "GET /v1/referral-batches/bat_1/results?limit=500",
    "GET /v1/programs/prg_1",  # 401 invalid-token: a new token, then the call again
    "POST /oauth/token",
    "GET /v1/programs/prg_1",
]
CSV = b"program_id,external_ref,kind\nprg_1,A-1,vip\n"


def options(service: FakeAlliance) -> dict[str, Any]:
    return {
        "base_url": "https://alliance.test",
        "client_id": "cli_x",
        "client_secret": "s",
        "retry": RetryPolicy(max_retries=2, backoff_base=0.0),
        "transport": httpx.MockTransport(service),
    }


def test_the_sync_client_carries_out_the_shared_plans() -> None:
    service = FakeAlliance()
    polled: list[str] = []
    with Client(**options(service)) as client:
        assert [program.id for program in client.list_programs()] == ["prg_1", "prg_2"]
        report = client.upload_batch(CSV, progress=lambda batch: polled.append(batch.status), poll_interval=0)
        assert client.get_program("prg_1").id == "prg_1"
    assert [line.outcome for line in report] == ["eligible"] and report.batch.status == "completed"
    assert polled == ["processing", "completed"]
    assert service.calls == EXPECTED_CALLS


async def test_the_async_client_carries_out_the_same_plans() -> None:
    service = FakeAlliance()
    polled: list[str] = []

    async def progress(batch: Batch) -> None:  # a coroutine callback is awaited
        polled.append(batch.status)

    async with AsyncClient(**options(service)) as client:
        assert [program.id async for program in client.list_programs()] == ["prg_1", "prg_2"]
        report = await client.upload_batch(CSV, progress=progress, poll_interval=0)
        assert (await client.get_program("prg_1")).id == "prg_1"
    assert [line.outcome for line in report] == ["eligible"] and report.batch.status == "completed"
    assert polled == ["processing", "completed"]
    assert service.calls == EXPECTED_CALLS
