"""The summary against a brute-force recount, on alliances generated at random through the real services.

Referrals (repeats, duplicates, existing clients, short windows that expire), the back office's events in
random order and chunks (deferred fundings, tier rises, purchases in and out of the program, revenue,
cancellations, closed accounts), withdrawals, held lines released, periods closed and paid, an adjustment, and
organic clients; the queue is folded at random moments in between. Every report must then equal the recount from
the base tables, with part of the queue still pending and after it is folded, and the folded rollups must equal a
rebuild from scratch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.audit.service import Actor
from app.catalog.models import PartnerKind
from app.core import clock
from app.core.business_time import month_of
from app.core.tenancy import Tenant
from app.fees.engine import release_held
from app.fees.statements import close_period, create_adjustment, issue
from app.privacy.service import DataKeyring
from app.referrals.attribution import expire_stale_holders
from app.referrals.registry import RegisteredClient, upsert_existing_clients
from app.referrals.service import withdraw_referral
from app.reports import queries, service, summary
from app.reports.schemas import GroupBy, ReportFilters
from app.settlement.service import approve, mark_paid
from tests.factories.referrals import credit_code, enterprise, national_id
from tests.reports import oracle
from tests.reports.conftest import ACTOR, CST, BookWriter, born, cny, event

EVERYONE = Tenant.everyone(Actor.system("test"))  # every partner's rows, as staff see them
CHECKER = Actor.system("test-checker")  # the second person of four eyes

PRODUCTS = {"bank": "BANK_WM_PLUS_EQUITY", "insurer": "LIFE_PLUS_FUND_SIP", "corporate": "EMPLOYEE_WEALTH_PLAN"}
RULES = {
    "funded_bounty": {
        "min_assets_fen": 500_000,
        "by_tier": {"retail": 20_000, "hnw": 150_000, "institutional": 500_000},
    },
    "revenue_share": {"bps": 1_000, "months": 12},
}
SUMMARY_TABLES = {
    "report_referral_facts": "referral_id",
    "report_cohorts": "cohort_month, partner_id, program_id, kind, tier, product_code",
    "report_partner_months": "cohort_month, partner_id",
    "report_durations": "cohort_month, partner_id, program_id, kind, tier, product_code, stage, days",
    "report_duration_series": "cohort_month, partner_id, stage",
    "report_organic_accounts": "client_ref",
    "report_organic": "opened_month, tier",
}


def rules(kind: str, **extra: Any) -> dict[str, Any]:
    return {**RULES, "bundle_fees": [{"product_code": PRODUCTS[kind], "flat_fen": 8_000, "bps": 25}], **extra}


@dataclass
class Person:
    identity: str
    enterprise: bool = False


@dataclass
class Story:
    rng: random.Random
    writer: BookWriter
    people: list[Person] = field(default_factory=list)
    referrals: list[tuple[str, str, datetime, Person]] = field(default_factory=list)  # id, partner, received, who
    accounts: int = 0
    recorded: list[datetime] = field(default_factory=list)  # when each chunk of events was recorded

    async def fold_sometimes(self, session: AsyncSession) -> None:
        if self.rng.random() < 0.3:
            await summary.refresh(session, chunk=self.rng.choice([5, 50, 1000]))


async def generate(session: AsyncSession, keyring: DataKeyring, seed: int) -> Story:
    rng = random.Random(seed)
    writer = BookWriter(session, keyring)
    story = Story(rng, writer)
    for kind, code in PRODUCTS.items():
        await writer.product(code, PartnerKind(kind))
    await writer.partner("bank", PartnerKind.bank, "东北银行", "VIP 银证合作", "vip_referral",
                         product_codes=[PRODUCTS["bank"]], rules=rules("bank"), hold_period_days=0)  # fmt: skip
    capped = rules("bank", caps={"per_referral_fen": 60_000})
    await writer.partner("capped", PartnerKind.bank, "北方银行", "私行客户", "vip_referral",
                         product_codes=[PRODUCTS["bank"]], rules=capped)  # fmt: skip
    await writer.partner("insurer", PartnerKind.insurer, "长城人寿", "保险+基金定投", "insurance_bundle",
                         product_codes=[PRODUCTS["insurer"]], rules=rules("insurer"),
                         hold_period_days=3650)  # fmt: skip
    await writer.partner("corporate", PartnerKind.corporate, "黑土地农业", "员工计划", "employee_plan",
                         product_codes=[PRODUCTS["corporate"]], rules=rules("corporate"))  # fmt: skip
    story.people = [Person(national_id(born(rng.randint(20, 66)))) for _ in range(60)]
    story.people += [Person(credit_code(), enterprise=True) for _ in range(6)]
    registered = [
        RegisteredClient(national_id=person.identity, opened_on=date(2019, 1, 1)) for person in story.people[:4]
    ]
    await upsert_existing_clients(session, keyring.index, registered)

    start = datetime(2025, 12, 1, tzinfo=CST)
    for number in range(80):
        partner = rng.choice(["bank", "bank", "capped", "insurer", "corporate"])
        person = rng.choice(story.people)
        program = writer.book.programs[partner].id
        body = (
            enterprise(program, credit_code=person.identity)
            if person.enterprise
            else writer.person(partner, 30, person.identity)
        )
        received = start + timedelta(days=rng.randint(0, 89), hours=rng.randint(0, 23))
        window = 25 if rng.random() < 0.15 else 3650
        before = set(writer.book.referrals.values())
        referral_id = await writer.referral(f"G{number}", partner, received, body, window_days=window)
        if referral_id not in before:
            story.referrals.append((referral_id, partner, received, person))
        await story.fold_sometimes(session)

    await send_events(session, story)
    for referral_id, _, _, _ in rng.sample(story.referrals, 5):
        await withdraw_referral(session, EVERYONE, ACTOR, referral_id, "consent_revoked", None)
    await story.fold_sometimes(session)
    await expire_stale_holders(session, clock.now())
    await release_held(session, clock.now())
    await settle(session, story)
    return story


async def send_events(session: AsyncSession, story: Story) -> None:
    """The back office's events for some of the referred people and for organic clients, sent in random chunks;
    a funding is sometimes sent before its opening (deferred until it arrives)."""
    rng = story.rng
    events: list[dict[str, Any]] = []
    for referral_id, partner, received, person in story.referrals:
        if rng.random() > 0.7:
            continue
        story.accounts += 1
        ref = f"C{story.accounts}-{referral_id[-6:]}"
        opened = received + timedelta(days=rng.choice([-3, 0, 1, 2, 5, 9, 20, 40]), hours=rng.randint(0, 12))
        key = "credit_code" if person.enterprise else "national_id"
        events.append(event("account_opened", ref, opened, **{key: person.identity}))
        if rng.random() < 0.8:
            funded = opened + timedelta(days=rng.randint(0, 6), hours=1)
            events.append(
                event("account_funded", ref, funded, **cny(rng.choice([4_000, 60_000, 1_500_000, 7_000_000])))
            )
            if rng.random() < 0.3:
                events.append(
                    event("assets_snapshot", ref, funded + timedelta(days=20), **cny(rng.choice([2_000, 2_500_000])))
                )
            for months in range(rng.randint(0, 3)):
                events.append(
                    event(
                        "revenue_recorded",
                        ref,
                        funded + timedelta(days=30 * (months + 1)),
                        **cny(rng.randint(100, 900)),
                    )
                )
        if rng.random() < 0.5:
            product = (
                PRODUCTS[partner if partner != "capped" else "bank"] if rng.random() < 0.8 else PRODUCTS["insurer"]
            )
            bought = opened + timedelta(days=rng.randint(1, 60), hours=2)
            events.append(
                event("bundle_purchased", ref, bought, product_code=product, **cny(rng.choice([10_000, 300_000])))
            )
            if rng.random() < 0.2:
                events.append(
                    event("bundle_cancelled", ref, bought + timedelta(days=5), product_code=product, **cny(10_000))
                )
        if rng.random() < 0.1:
            events.append(event("account_closed", ref, opened + timedelta(days=70)))
    for number in range(12):
        ref = f"ORG-{number}"
        opened = datetime(2025, 12, 1, 9, tzinfo=CST) + timedelta(days=rng.randint(0, 89))
        events.append(event("account_opened", ref, opened, national_id=national_id(born(rng.randint(22, 60)))))
        if rng.random() < 0.75:
            events.append(
                event(
                    "account_funded",
                    ref,
                    opened + timedelta(hours=5),
                    **cny(rng.choice([30_000, 2_000_000, 9_000_000])),
                )
            )
    rng.shuffle(events)
    while events:
        size = rng.randint(1, 25)
        chunk, events = events[:size], events[size:]
        await ingest(session, story, chunk)
        await story.fold_sometimes(session)


async def ingest(session: AsyncSession, story: Story, chunk: list[dict[str, Any]]) -> None:
    from app.conversions.service import ingest_events

    # Recorded as they happen: a minute after the chunk's latest event (fee holds run from then).
    recorded = max(datetime.fromisoformat(item["occurred_at"]) for item in chunk) + timedelta(minutes=1)
    story.recorded.append(recorded)
    results = await ingest_events(session, story.writer.keyring.index, chunk, now=recorded)
    assert all(result.result in ("applied", "deferred") for result in results), results


async def settle(session: AsyncSession, story: Story) -> None:
    """Finance's months: the month before the one in which half the events had been recorded closed; that month
    closed, and its largest statement issued, approved and paid (what was recorded later stays payable); an
    adjustment on a referral."""
    now = clock.now()
    middle = month_of(sorted(story.recorded)[len(story.recorded) // 2])
    await close_period(session, ACTOR, month_of(middle.start - timedelta(seconds=1)).name, now)
    await story.fold_sometimes(session)
    closed = await close_period(session, ACTOR, middle.name, now)
    if closed.statements:
        statement = max(closed.statements, key=lambda each: each.net_fen)
        await issue(session, ACTOR, statement.id, now)
        await approve(session, CHECKER, statement.id, now)  # four eyes: not the issuer
        await mark_paid(session, ACTOR, statement.id, "PAY-1", now)
    referral_id, partner, _, _ = story.referrals[0]
    external_ref = (
        await session.execute(text("SELECT external_ref FROM referrals WHERE id = :id"), {"id": referral_id})
    ).scalar_one()
    await create_adjustment(
        session, ACTOR, partner_id=story.writer.book.partners[partner].id, amount_fen=-1_234,
        external_ref=external_ref, reason="goodwill", now=now,
    )  # fmt: skip


def queries_for(story: Story) -> list[queries.ReportQuery]:
    book = story.writer.book
    everything = (date(2025, 12, 1), date(2026, 2, 28))
    return [
        queries.ReportQuery(*everything, group_by=(GroupBy.partner, GroupBy.month)),
        queries.ReportQuery(date(2025, 12, 15), date(2026, 2, 10), group_by=(GroupBy.program, GroupBy.tier)),
        queries.ReportQuery(*everything, ReportFilters(kinds=["vip"]), (GroupBy.product,)),
        queries.ReportQuery(*everything, ReportFilters(partner_kinds=["bank"]), (GroupBy.partner_kind, GroupBy.kind)),
        queries.ReportQuery(
            date(2026, 1, 1), date(2026, 1, 31), ReportFilters(tiers=["retail", "hnw"]), (GroupBy.month,)
        ),
        queries.ReportQuery(date(2026, 1, 7), date(2026, 1, 7)),
        queries.ReportQuery(*everything, ReportFilters(partner_ids=[book.partners["capped"].id]), (GroupBy.month,)),
        queries.ReportQuery(
            *everything, ReportFilters(partner_kinds=["bank"]), (GroupBy.partner, GroupBy.partner_kind, GroupBy.month)
        ),
    ]


def figures(report: Any) -> dict[str, Any]:
    return report.model_dump(exclude={"generated_at"})


async def assert_reports_equal_recount(session: AsyncSession, story: Story) -> None:
    everyone = EVERYONE
    for query in queries_for(story):
        for name in ("funnel", "time_to_convert", "fees", "client_structure"):
            summarised = await getattr(service, name)(session, everyone, query)
            recounted = await getattr(oracle, name)(session, everyone, query)
            assert figures(summarised) == figures(recounted), (name, query)
    for partner in story.writer.book.partners.values():
        query = queries_for(story)[0]
        own = Tenant.of_partner(partner.id)
        for name in ("funnel", "time_to_convert"):
            assert figures(await getattr(service, name)(session, own, query)) == figures(
                await getattr(oracle, name)(session, own, query)
            )
        card = await service.scorecard(session, Actor.system("test"), partner.id, query)
        assert figures(card) == figures(await oracle.scorecard(session, partner.id, query))


async def summary_tables(session: AsyncSession) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: [tuple(row) for row in await session.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))]
        for table, order in SUMMARY_TABLES.items()
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_summary_equals_a_brute_force_recount(app, session: AsyncSession, seed: int) -> None:  # type: ignore[no-untyped-def]
    story = await generate(session, app.state.data_keyring, seed)
    # The story covers what the reports count: every outcome, every fee status, tiers, organic clients.
    everything = queries_for(story)[0]
    funnel = (await oracle.funnel(session, EVERYONE, everything)).total.counts
    assert funnel.received > 50 and funnel.converted > 0 and funnel.funded > funnel.converted
    assert min(funnel.duplicate, funnel.existing_client, funnel.expired, funnel.withdrawn) > 0
    fees = (await oracle.fees(session, EVERYONE, everything)).total
    assert min(fees.fees_pending_fen, fees.fees_payable_fen, fees.fees_statemented_fen, fees.fees_paid_fen) > 0
    structure = (await oracle.client_structure(session, EVERYONE, everything)).total
    assert structure.funded.retail and structure.funded.institutional and structure.organic.retail

    # Some of the queue still pending: the reports correct for it.
    assert await summary.pending_changes(session) > 0
    await assert_reports_equal_recount(session, story)

    # Everything folded: the rollups alone.
    await summary.refresh(session)
    assert await summary.pending_changes(session) == 0
    await assert_reports_equal_recount(session, story)

    # What the refreshes built bit by bit is what a rebuild from scratch builds.
    folded = await summary_tables(session)
    assert folded["report_referral_facts"] and folded["report_duration_series"]
    await summary.rebuild(session)
    assert await summary_tables(session) == folded


async def test_writes_queue_what_they_touch(app, session: AsyncSession) -> None:  # type: ignore[no-untyped-def]
    writer = BookWriter(session, app.state.data_keyring)
    await writer.product(PRODUCTS["bank"], PartnerKind.bank)
    await writer.partner("bank", PartnerKind.bank, "东北银行", "VIP", "vip_referral",
                         product_codes=[PRODUCTS["bank"]], rules=rules("bank"))  # fmt: skip
    await summary.refresh(session)

    async def queued() -> set[tuple[str | None, str | None]]:
        """What was queued since the last call; folded then, so that the next call sees only what follows."""
        rows = (await session.execute(text("SELECT referral_id, client_ref FROM report_changes"))).all()
        await summary.refresh(session)
        return {(row.referral_id, row.client_ref) for row in rows}

    person = national_id(born(30))
    referral_id = await writer.referral(
        "R", "bank", datetime(2026, 1, 5, 10, tzinfo=CST), writer.person("bank", 30, person)
    )
    assert await queued() == {(referral_id, None)}
    await ingest(
        session,
        Story(random.Random(0), writer),
        [event("account_opened", "C-1", datetime(2026, 1, 6, tzinfo=UTC), national_id=person)],
    )
    assert (referral_id, "C-1") in await queued()
    await ingest(
        session,
        Story(random.Random(0), writer),
        [event("account_funded", "C-1", datetime(2026, 1, 7, tzinfo=UTC), **cny(60_000))],
    )
    assert await queued() == {(referral_id, None), (referral_id, "C-1")}  # the account, its fee line
    await ingest(
        session,
        Story(random.Random(0), writer),
        [event("revenue_recorded", "C-1", datetime(2026, 2, 7, tzinfo=UTC), **cny(500))],
    )
    assert await queued() == {(referral_id, None), (referral_id, "C-1")}  # the account; the revenue share line
    await ingest(
        session,
        Story(random.Random(0), writer),
        [event("account_opened", "ORG", datetime(2026, 1, 8, tzinfo=UTC), national_id=national_id(born(40)))],
    )
    assert await queued() == {(None, "ORG")}
    await session.execute(text("UPDATE fee_accruals SET status = 'paid' WHERE referral_id = :id"), {"id": referral_id})
    assert await queued() == {(referral_id, None)}


async def test_one_refresh_at_a_time(app, session: AsyncSession, engine: AsyncEngine) -> None:  # type: ignore[no-untyped-def]
    await session.execute(text("INSERT INTO report_changes (referral_id) VALUES ('ref_nobody')"))
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": summary.REFRESH_LOCK})
        try:
            skipped = await summary.refresh(session)
        finally:
            await other.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": summary.REFRESH_LOCK})
    assert skipped.skipped and await summary.pending_changes(session) == 1
    done = await summary.refresh(session)
    assert (done.changes, done.referrals) == (1, 0) and await summary.pending_changes(session) == 0
