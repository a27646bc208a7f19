from __future__ import annotations

import json
import typing
from datetime import timedelta

import pytest
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.core.idempotency import (
    REPLAY_HEADER,
    Answer,
    IdempotencyKeyReused,
    IdempotencyRecord,
    IdempotentCreate,
    IdempotentCreateKeyRequired,
    OnceOnly,
    claim,
)


async def test_claim_replay_reuse_and_expiry(session: AsyncSession, manual_clock: ManualClock) -> None:
    first = await claim(session, "cli_a", "k-1", "hash-1")
    assert first.replay is None
    await first.remember(201, {"id": "x"})
    replay = await claim(session, "cli_a", "k-1", "hash-1")
    assert replay.replay is not None and replay.replay.status_code == 201
    with pytest.raises(IdempotencyKeyReused):
        await claim(session, "cli_a", "k-1", "hash-2")
    assert (await claim(session, "cli_b", "k-1", "hash-2")).replay is None  # keys are per client
    manual_clock.advance(timedelta(hours=24))  # keys are kept 24 hours
    with pytest.raises(IdempotencyKeyReused):  # still remembered until its retention has passed
        await claim(session, "cli_a", "k-1", "hash-2")
    manual_clock.advance(timedelta(seconds=1))
    reclaimed = await claim(session, "cli_a", "k-1", "hash-2")
    assert reclaimed.replay is None and reclaimed.key == "k-1"


async def test_no_key_means_no_record(session: AsyncSession) -> None:
    call = await claim(session, "cli_a", None, "hash")
    assert call.replay is None
    response = await call.remember(200, {"ok": True})
    assert response.status_code == 200


def _create_request(app: FastAPI, path: str = "/v1/things") -> Request:
    return Request({"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b"", "app": app})


async def test_once_only_runs_once_replays_and_refuses_another_body(app: FastAPI, session: AsyncSession) -> None:
    runs: list[str] = []

    async def make() -> dict[str, str]:
        runs.append("ran")
        return {"id": f"thing-{len(runs)}"}

    once = OnceOnly(_create_request(app), session, "create-1")
    first = await once.create("cli_a", {"name": "a"}, make)
    again = await once.create("cli_a", {"name": "a"}, make)
    assert (first.status_code, json.loads(first.body), REPLAY_HEADER in first.headers) == (
        201,
        {"id": "thing-1"},
        False,
    )
    assert (again.status_code, json.loads(again.body), again.headers[REPLAY_HEADER]) == (201, {"id": "thing-1"}, "true")
    with pytest.raises(IdempotencyKeyReused):
        await once.create("cli_a", {"name": "b"}, make)
    assert runs == ["ran"]
    # Without a key every call runs, and nothing is stored.
    keyless = OnceOnly(_create_request(app), session, None)
    await keyless.create("cli_a", {"name": "a"}, make)
    await keyless.create("cli_a", {"name": "a"}, make)
    assert runs == ["ran"] * 3


async def test_once_only_replays_the_status_an_answer_chose(app: FastAPI, session: AsyncSession) -> None:
    async def make() -> Answer:
        return Answer(200, {"id": "existing"})

    once = OnceOnly(_create_request(app), session, "create-2")
    assert (await once.create("cli_a", None, make)).status_code == 200
    replay = await once.create("cli_a", None, make)
    assert replay.status_code == 200 and replay.headers[REPLAY_HEADER] == "true"


async def test_once_only_keeps_named_secrets_sealed_in_the_stored_replay(app: FastAPI, session: AsyncSession) -> None:
    async def make() -> dict[str, str]:
        return {"id": "cred-1", "secret": "s3cr3t-shown-once"}

    once = OnceOnly(_create_request(app), session, "create-3")
    await once.create("cli_a", None, make, sealed=("secret",))
    stored = await session.scalar(select(IdempotencyRecord.response_body).where(IdempotencyRecord.key == "create-3"))
    assert "s3cr3t-shown-once" not in json.dumps(stored) and stored["id"] == "cred-1"
    replay = await once.create("cli_a", None, make, sealed=("secret",))
    assert json.loads(replay.body)["secret"] == "s3cr3t-shown-once"


ONCE_ONLY = {
    typing.get_args(dependency)[1].dependency for dependency in (IdempotentCreate, IdempotentCreateKeyRequired)
}


def test_every_create_route_takes_its_key_through_the_one_mechanism(app: FastAPI) -> None:
    """No route claims, replays and remembers by itself: a route reading Idempotency-Key itself is a copy."""
    by_itself, through_once_only = [], []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        if any(param.alias == "Idempotency-Key" for param in route.dependant.header_params):
            by_itself.append(str(context.path))
        if any(dependency.call in ONCE_ONLY for dependency in route.dependant.dependencies):
            through_once_only.append(str(context.path))
    # Batches keep their key on the batch row itself: the upload streams, and a replay is the batch's progress.
    assert by_itself == ["/v1/referral-batches"]
    assert len(through_once_only) >= 9 and "/v1/referrals" in through_once_only, through_once_only
