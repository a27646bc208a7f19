"""Which due deliveries a claim takes first: healthy endpoints before failing ones, fresh deliveries before
retries, and never more in flight per endpoint than allowed (counting every worker's leases)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.core import clock
from app.core.config import Settings
from app.core.tenancy import Tenant
from app.webhooks import service
from app.webhooks.delivery import ClaimLimits, claim_due
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.factories.referrals import PartnerDesk

LEASE = timedelta(seconds=60)


async def _endpoint(session: AsyncSession, settings: Settings, desk: PartnerDesk, failures: int = 0) -> str:
    created = await service.create_endpoint(
        session,
        settings,
        Actor.system("test"),
        Tenant.of_partner(desk.partner.id),
        url="https://hooks.partner.example/in",
        event_types=["referral.status_changed"],
        description=None,
        enabled=True,
    )
    created.endpoint.consecutive_failures = failures
    await session.flush()
    return created.endpoint.id


async def _due(session: AsyncSession, endpoint_id: str, *, attempts: int, age: timedelta) -> str:
    delivery = await service.enqueue_test(session, Tenant.everyone(Actor.system("test")), endpoint_id)
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery.id)
        .values(attempts=attempts, next_attempt_at=clock.now() - age)
    )
    return delivery.id


async def _claim_one(session: AsyncSession, settings: Settings, limits: ClaimLimits) -> list[str]:
    return [claimed.delivery_id for claimed in await claim_due(session, settings, limits, LEASE)]


async def test_healthy_and_fresh_come_first(
    session: AsyncSession, settings: Settings, bank: PartnerDesk, other_bank: PartnerDesk
) -> None:
    healthy = await _endpoint(session, settings, bank)
    failing = await _endpoint(session, settings, other_bank, failures=3)
    failing_fresh = await _due(session, failing, attempts=0, age=timedelta(hours=2))
    healthy_retry = await _due(session, healthy, attempts=3, age=timedelta(hours=1))
    healthy_fresh = await _due(session, healthy, attempts=0, age=timedelta(0))
    order = [await _claim_one(session, settings, ClaimLimits(total=1)) for _ in range(4)]
    assert order == [[healthy_fresh], [healthy_retry], [failing_fresh], []]


async def test_per_endpoint_limits_count_every_lease_and_failing_endpoints_get_one(
    session: AsyncSession, settings: Settings, bank: PartnerDesk, other_bank: PartnerDesk
) -> None:
    healthy = await _endpoint(session, settings, bank)
    failing = await _endpoint(session, settings, other_bank, failures=1)
    for _ in range(6):
        await _due(session, healthy, attempts=0, age=timedelta(0))
        await _due(session, failing, attempts=0, age=timedelta(0))
    limits = ClaimLimits(total=50, per_endpoint=4, per_failing_endpoint=1)
    first = await claim_due(session, settings, limits, LEASE)
    assert sorted(claimed.endpoint_id for claimed in first) == sorted([healthy] * 4 + [failing])
    assert {claimed.endpoint_id: claimed.failing for claimed in first} == {healthy: False, failing: True}
    assert await claim_due(session, settings, limits, LEASE) == []  # the leases of the first claim count
    await session.execute(update(WebhookDelivery).values(lease_until=clock.now() - timedelta(seconds=1)))
    assert len(await claim_due(session, settings, limits, LEASE)) == 5  # expired leases do not


async def test_failing_endpoints_share_a_bounded_part_of_a_claim(
    session: AsyncSession, settings: Settings, bank: PartnerDesk, other_bank: PartnerDesk
) -> None:
    failing = [await _endpoint(session, settings, other_bank, failures=2) for _ in range(4)]
    for endpoint_id in failing:
        await _due(session, endpoint_id, attempts=1, age=timedelta(minutes=1))
    healthy = await _endpoint(session, settings, bank)
    await _due(session, healthy, attempts=0, age=timedelta(0))
    claimed = await claim_due(session, settings, ClaimLimits(total=10, failing=2), LEASE)
    assert sorted(item.failing for item in claimed) == [False, True, True]


async def test_a_disabled_endpoint_is_never_claimed(
    session: AsyncSession, settings: Settings, bank: PartnerDesk
) -> None:
    endpoint_id = await _endpoint(session, settings, bank)
    await _due(session, endpoint_id, attempts=0, age=timedelta(0))
    await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(enabled=False))
    assert await claim_due(session, settings, ClaimLimits(total=10), LEASE) == []
