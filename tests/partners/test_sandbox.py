"""``client.sandbox`` through both clients, against the real application."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alliance_partner import (
    AsyncClient,
    Client,
    ClockAdvance,
    ConflictError,
    NotFoundError,
    SandboxClock,
    Simulation,
)

from tests.factories.referrals import individual
from tests.partners.conftest import Recorder, credentials_of, in_thread
from tests.sandbox.conftest import PRODUCT, make_sandbox_desk  # noqa: F401  (the fixture)

HNW = 2_000_000 * 100


async def test_the_async_client_moves_a_referral_down_the_funnel(
    make_sandbox_desk: Any,  # noqa: F811
    async_sdk: Callable[..., AsyncClient],
    recorder: Recorder,
) -> None:
    desk = await make_sandbox_desk()
    api = async_sdk(credentials_of(desk))
    referral = await api.create_referral(individual(desk.program.id))

    opened = await api.sandbox.simulate(referral.id, "account_opened")
    funded = await api.sandbox.simulate(referral.id, "account_funded", amount=HNW)
    bought = await api.sandbox.simulate(referral.id, "bundle_purchased", amount=1_000_000, product_code=PRODUCT)

    assert isinstance(opened, Simulation) and opened.referral_status == "account_opened"
    assert funded.referral_status == "funded" and funded.events[0].effects["tier"] == "hnw"
    assert [(line.rule, line.amount_fen, line.status) for line in funded.fee_lines] == [
        ("funded_bounty", 150_000, "pending")
    ]
    assert bought.referral_status == "converted" and bought.fee_lines[0].rule == "bundle_fee"
    [sent, *_] = recorder.sent("POST", f"/v1/sandbox/referrals/{referral.id}/simulate")
    assert sent.headers["Idempotency-Key"]  # a retry of the call is safe
    with pytest.raises(ConflictError) as refused:
        await api.sandbox.simulate(referral.id, "account_opened")
    assert refused.value.code == "simulation-not-possible"
    with pytest.raises(NotFoundError):
        await api.sandbox.simulate("ref_unknown", "account_opened")


async def test_the_sync_client_runs_the_same_plans(
    make_sandbox_desk: Any,  # noqa: F811
    sync_sdk: Callable[..., Client],
) -> None:
    desk = await make_sandbox_desk()
    client = sync_sdk(credentials_of(desk))

    def story() -> list[str]:
        referral = client.create_referral(individual(desk.program.id))
        client.sandbox.simulate(referral.id, "account_opened")
        closed = client.sandbox.simulate(referral.id, "account_closed")
        return [closed.referral_status, closed.events[0].type]

    assert await in_thread(story) == ["account_opened", "account_closed"]


async def test_the_clock_is_read_and_advanced_through_both_clients(
    make_sandbox_desk: Any,  # noqa: F811
    async_sdk: Callable[..., AsyncClient],
    sync_sdk: Callable[..., Client],
) -> None:
    desk = await make_sandbox_desk()
    api, client = async_sdk(credentials_of(desk)), sync_sdk(credentials_of(desk))

    before = await api.sandbox.get_clock()
    moved = await api.sandbox.advance_clock(by_days=3)
    later = await in_thread(lambda: client.sandbox.advance_clock(to=moved.clock.now + timedelta(hours=1)))
    read = await in_thread(client.sandbox.get_clock)

    assert isinstance(before, SandboxClock) and isinstance(moved, ClockAdvance)
    assert (before.partner_id, before.frozen) == (desk.partner.id, False)
    assert moved.clock.frozen and moved.clock.now - moved.previous_now == timedelta(days=3)
    assert later.previous_now == moved.clock.now and read.now == moved.clock.now + timedelta(hours=1)
    assert read.advanced_by_s == 3 * 86_400 + 3_600


def test_the_clock_takes_exactly_one_of_to_and_by_days() -> None:
    with Client(base_url="http://alliance.invalid", client_id="cli_x", client_secret="s") as client:
        with pytest.raises(ValueError, match="exactly one"):
            client.sandbox.advance_clock()
        with pytest.raises(ValueError, match="exactly one"):
            client.sandbox.advance_clock(by_days=1, to=datetime(2026, 12, 1, tzinfo=UTC))
