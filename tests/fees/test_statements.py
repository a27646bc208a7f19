"""Closing a period into statements, VAT both ways, carry-forward, the lifecycle and its refusals, adjustments."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.audit.service import Actor
from app.catalog.models import Partner
from app.fees import statements
from app.fees.models import AccrualStatus, FeeAccrual, FeeRule, Statement
from tests.conftest import CallerFactory
from tests.reconciliation.books import MARCH, Finance, book, deliveries, set_vat, subscribe

MakePartner = Callable[..., Awaitable[Partner]]


@pytest.fixture
async def finance(client: httpx.AsyncClient, caller: CallerFactory) -> Finance:
    return Finance(client, await caller("staff", role="finance"))


async def _lines(session: AsyncSession, statement_id: str) -> list[FeeAccrual]:
    rows = await session.scalars(
        select(FeeAccrual).where(FeeAccrual.statement_id == statement_id).execution_options(populate_existing=True)
    )
    return list(rows.all())


# --- closing ------------------------------------------------------------------------------------------------------


async def test_close_builds_one_draft_per_partner_with_vat_both_ways(
    finance: Finance, session: AsyncSession, make_partner: MakePartner
) -> None:
    exclusive, inclusive = await make_partner(), await make_partner(legal_name="中国人寿保险股份有限公司")
    await set_vat(session, inclusive, 600, True)
    for amount, rule in ((100_000, FeeRule.funded_bounty), (50_001, FeeRule.bundle_fee), (-3_000, FeeRule.clawback)):
        await book(session, exclusive.id, amount, rule=rule)
    held_over = await book(session, exclusive.id, 7_000, at=MARCH, hold=timedelta(days=30), status="pending")
    await book(session, inclusive.id, 106_000)
    await book(session, inclusive.id, 1)

    closed = await finance.close("2026-03")

    assert closed["created_statements"] == 2 and closed["statemented_lines"] == 5
    by_partner = {item["partner_id"]: item for item in closed["statements"]}
    mine = by_partner[exclusive.id]
    assert mine["status"] == "draft" and mine["period"] == "2026-03" and mine["period_end"] == "2026-03-31"
    assert (mine["lines_total_fen"], mine["carried_forward_fen"], mine["net_fen"]) == (147_001, 0, 147_001)
    # 6% of 147,001 = 8,820.06 -> 8,820 added on top
    assert (mine["vat_rate_bp"], mine["vat_inclusive"], mine["vat_fen"], mine["gross_fen"]) == (
        600,
        False,
        8_820,
        155_821,
    )
    assert mine["line_count"] == 3 and mine["currency"] == "CNY"
    theirs = by_partner[inclusive.id]
    # 106,001 x 600 / 10,600 = 6,000.06 -> 6,000 within the gross, which is the net
    assert (theirs["net_fen"], theirs["vat_inclusive"], theirs["vat_fen"], theirs["gross_fen"]) == (
        106_001,
        True,
        6_000,
        106_001,
    )
    lines = await _lines(session, mine["id"])
    assert {line.status for line in lines} == {AccrualStatus.statemented} and len(lines) == 3
    await session.refresh(held_over)
    assert held_over.status == AccrualStatus.pending and held_over.statement_id is None


async def test_held_lines_due_by_the_period_end_are_released_onto_it(
    finance: Finance, session: AsyncSession, make_partner: MakePartner
) -> None:
    partner = await make_partner()
    due = await book(session, partner.id, 20_000, at=MARCH, hold=timedelta(days=21), status="pending")  # Mar 31
    later = await book(session, partner.id, 30_000, at=MARCH, hold=timedelta(days=23), status="pending")  # Apr 2

    closed = await finance.close("2026-03")

    assert closed["released_lines"] == 1 and closed["statemented_lines"] == 1
    [statement] = closed["statements"]
    assert statement["lines_total_fen"] == 20_000
    for line in (due, later):
        await session.refresh(line)
    assert (due.status, due.statement_id) == (AccrualStatus.statemented, statement["id"])
    assert (later.status, later.statement_id) == (AccrualStatus.pending, None)
    april = await finance.statement_of("2026-04", partner.id)
    assert april["lines_total_fen"] == 30_000


async def test_a_negative_net_has_no_vat_and_is_carried_into_the_next_statement(
    finance: Finance, session: AsyncSession, make_partner: MakePartner
) -> None:
    partner = await make_partner()
    await book(session, partner.id, 20_000, at=datetime(2026, 2, 3, tzinfo=UTC))
    await book(session, partner.id, -70_000, rule=FeeRule.clawback, at=datetime(2026, 2, 4, tzinfo=UTC))
    february = await finance.statement_of("2026-02", partner.id)
    assert (february["net_fen"], february["vat_fen"], february["gross_fen"]) == (-50_000, 0, -50_000)

    await finance.close("2026-03")  # nothing for this partner in March: the carry waits for its next statement
    await book(session, partner.id, 80_000, at=datetime(2026, 4, 9, tzinfo=UTC))
    april = await finance.statement_of("2026-04", partner.id)
    assert (april["lines_total_fen"], april["carried_forward_fen"], april["net_fen"]) == (80_000, -50_000, 30_000)
    assert (april["vat_fen"], april["gross_fen"]) == (1_800, 31_800)

    await book(session, partner.id, 10_000, at=datetime(2026, 5, 9, tzinfo=UTC))
    may = await finance.statement_of("2026-05", partner.id)
    assert (may["carried_forward_fen"], may["net_fen"], may["gross_fen"]) == (0, 10_000, 10_600)


async def test_closing_again_keeps_one_set_and_tops_up_drafts_only(
    finance: Finance, session: AsyncSession, make_partner: MakePartner
) -> None:
    partner = await make_partner()
    await book(session, partner.id, 10_000)
    first = await finance.close("2026-03")
    again = await finance.close("2026-03")
    assert again["created_statements"] == 0 and again["statemented_lines"] == 0
    assert [item["id"] for item in again["statements"]] == [item["id"] for item in first["statements"]]
    assert again["statements"][0]["lines_total_fen"] == 10_000

    late = await book(session, partner.id, 5_000, ref="LATE-1")  # an event of March that arrived late
    topped = await finance.close("2026-03")
    assert topped["statemented_lines"] == 1
    statement_id = topped["statements"][0]["id"]
    assert topped["statements"][0]["id"] == first["statements"][0]["id"]
    assert (topped["statements"][0]["lines_total_fen"], topped["statements"][0]["line_count"]) == (15_000, 2)
    await session.refresh(late)
    assert late.statement_id == statement_id

    issued = await finance.act(statement_id, "issue")
    frozen = await book(session, partner.id, 2_500, ref="LATE-2")
    after = await finance.close("2026-03")
    assert after["statemented_lines"] == 0
    assert after["statements"][0]["lines_total_fen"] == issued["lines_total_fen"] == 15_000
    await session.refresh(frozen)
    assert (frozen.status, frozen.statement_id) == (AccrualStatus.payable, None)
    assert (await finance.statement_of("2026-04", partner.id))["lines_total_fen"] == 2_500


@pytest.mark.parametrize(
    ("period", "status", "slug"),
    [
        ("2026-13", 422, "invalid-period"),
        ("26-03", 422, "invalid-period"),
        ("2099-01", 409, "period-not-ended"),
    ],
)
async def test_close_refuses_bad_or_unfinished_periods(finance: Finance, period: str, status: int, slug: str) -> None:
    problem = await finance.close(period, expect=status)
    assert problem["type"].endswith(slug)


async def test_the_current_month_cannot_be_closed_and_periods_close_in_order(
    finance: Finance, session: AsyncSession, make_partner: MakePartner
) -> None:
    now = datetime.now(UTC)
    assert (await finance.close(f"{now.year:04d}-{now.month:02d}", expect=409))["type"].endswith("period-not-ended")
    partner = await make_partner()
    await book(session, partner.id, 10_000, at=datetime(2026, 4, 2, tzinfo=UTC))
    await finance.close("2026-04")
    problem = await finance.close("2026-03", expect=409)
    assert problem["type"].endswith("later-period-closed") and "2026-04" in problem["detail"]


async def test_close_is_audited(finance: Finance, session: AsyncSession, make_partner: MakePartner) -> None:
    partner = await make_partner()
    await book(session, partner.id, 10_000)
    await finance.close("2026-03")
    event = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "period.closed"))).one()
    assert event.object_id == "2026-03" and event.details["statemented_lines"] == 1
    assert event.actor_id == finance.caller.client.id


# --- lifecycle ----------------------------------------------------------------------------------------------------


async def test_lifecycle_draft_issued_approved_paid_with_refusals(
    finance: Finance, client: httpx.AsyncClient, caller: CallerFactory, session: AsyncSession, make_partner: MakePartner
) -> None:
    checker = Finance(client, await caller("staff", role="finance"))  # four eyes: another client approves
    partner = await make_partner()
    await subscribe(session, partner.id)
    lines = [await book(session, partner.id, amount, ref=f"L-{amount}") for amount in (10_000, 20_000)]
    draft = await finance.statement_of("2026-03", partner.id)
    sid = draft["id"]

    for action, body in (("approve", {}), ("mark-paid", {"payment_ref": "X"})):
        problem = await finance.act(sid, action, expect=409, **body)
        assert problem["type"].endswith("statement-state-conflict") and problem["statement_status"] == "draft"
    assert await deliveries(session, partner.id, "statement.issued") == []

    issued = await finance.act(sid, "issue")
    assert issued["status"] == "issued" and issued["issued_at"] is not None
    [notice] = await deliveries(session, partner.id, "statement.issued")
    assert notice["type"] == "statement.issued"
    assert notice["data"] == {
        "statement_id": sid,
        "period": "2026-03",
        "currency": "CNY",
        "lines_total_fen": 30_000,
        "carried_forward_fen": 0,
        "net_fen": 30_000,
        "vat_fen": 1_800,
        "gross_fen": 31_800,
        "line_count": 2,
    }
    assert (await finance.act(sid, "issue", expect=409))["statement_status"] == "issued"
    assert (await finance.act(sid, "mark-paid", expect=409, payment_ref="X"))["statement_status"] == "issued"

    approved = await checker.act(sid, "approve")
    assert approved["status"] == "approved" and approved["approved_at"] is not None
    assert (await finance.act(sid, "issue", expect=409))["statement_status"] == "approved"
    assert (await finance.act(sid, "mark-paid", expect=422))["type"].endswith("validation-error")

    paid = await finance.act(sid, "mark-paid", payment_ref="CMB-20261102-0042")
    assert (paid["status"], paid["payment_ref"]) == ("paid", "CMB-20261102-0042") and paid["paid_at"]
    for line in lines:
        await session.refresh(line)
        assert line.status == AccrualStatus.paid
    for action in ("issue", "approve"):
        assert (await finance.act(sid, action, expect=409))["statement_status"] == "paid"
    actions = set((await session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == sid))).all())
    assert actions == {"statement.issued", "statement.approved", "statement.paid"}


async def test_unknown_statement_is_404_for_finance(finance: Finance) -> None:
    for action in ("issue", "approve"):
        assert (await finance.act("stm_nope", action, expect=404))["type"].endswith("not-found")
    await finance.get("/v1/finance/statements/stm_nope", expect=404)


async def test_finance_lists_and_filters_statements(
    finance: Finance, session: AsyncSession, make_partner: MakePartner
) -> None:
    one, two = await make_partner(), await make_partner()
    await book(session, one.id, 1_000)
    await book(session, two.id, 2_000)
    closed = await finance.close("2026-03")
    await finance.act(closed["statements"][0]["id"], "issue")
    listed = await finance.get("/v1/finance/statements", period="2026-03")
    assert {item["partner_id"] for item in listed["data"]} == {one.id, two.id}
    drafts = await finance.get("/v1/finance/statements", status="draft")
    assert [item["id"] for item in drafts["data"]] == [closed["statements"][1]["id"]]
    only_two = await finance.get("/v1/finance/statements", partner_id=two.id)
    assert [item["partner_id"] for item in only_two["data"]] == [two.id]
    lines = await finance.get(f"/v1/finance/statements/{closed['statements'][0]['id']}/lines")
    assert len(lines["data"]) == 1 and lines["data"][0]["external_ref"] == "REF-1"


# --- the partner's view -------------------------------------------------------------------------------------------


async def test_partners_see_their_issued_statements_never_drafts_nor_others(
    finance: Finance, client: httpx.AsyncClient, session: AsyncSession, caller: CallerFactory, make_partner: MakePartner
) -> None:
    partner, other = await make_partner(), await make_partner(legal_name="别家银行")
    me, them = await caller("partner", partner=partner), await caller("partner", partner=other)
    for index in range(5):
        await book(session, partner.id, 1_000 * (index + 1), ref=f"P-{index}", at=MARCH + timedelta(minutes=index))
    await book(session, other.id, 9_000)
    sid = (await finance.statement_of("2026-03", partner.id))["id"]

    assert (await client.get("/v1/statements", headers=me.headers)).json() == {"data": [], "next_cursor": None}
    for path in (f"/v1/statements/{sid}", f"/v1/statements/{sid}/lines"):
        assert (await client.get(path, headers=me.headers)).status_code == 404

    await finance.act(sid, "issue")
    listed = (await client.get("/v1/statements", headers=me.headers)).json()
    assert [item["id"] for item in listed["data"]] == [sid]
    assert (await client.get(f"/v1/statements/{sid}", headers=me.headers)).json()["net_fen"] == 15_000

    refs, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/statements/{sid}/lines", params=params, headers=me.headers)).json()
        refs += [line["external_ref"] for line in page["data"]]
        assert all(line["status"] == "statemented" for line in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert refs == ["P-4", "P-3", "P-2", "P-1", "P-0"]

    for path in (f"/v1/statements/{sid}", f"/v1/statements/{sid}/lines"):
        response = await client.get(path, headers=them.headers)
        assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/statements", headers=them.headers)).json()["data"] == []


# --- adjustments --------------------------------------------------------------------------------------------------


async def test_adjustments_are_idempotent_and_payable_into_the_next_period(
    finance: Finance, client: httpx.AsyncClient, session: AsyncSession, make_partner: MakePartner
) -> None:
    partner = await make_partner()
    body = {"partner_id": partner.id, "amount_fen": -12_345, "external_ref": "REF-9", "reason": "重复计费更正"}
    headers = {**finance.caller.headers, "Idempotency-Key": "adj-1"}
    first = await client.post("/v1/finance/adjustments", json=body, headers=headers)
    assert first.status_code == 201, first.text
    created = first.json()
    assert (created["rule"], created["amount_fen"], created["reason"], created["status"]) == (
        "adjustment",
        -12_345,
        "重复计费更正",
        "payable",
    )
    replay = await client.post("/v1/finance/adjustments", json=body, headers=headers)
    assert replay.status_code == 201 and replay.json() == created and replay.headers["Idempotent-Replayed"] == "true"
    reused = await client.post("/v1/finance/adjustments", json={**body, "amount_fen": 1}, headers=headers)
    assert reused.status_code == 422 and reused.json()["type"].endswith("idempotency-key-reused")
    no_key = await client.post("/v1/finance/adjustments", json=body, headers=finance.caller.headers)
    assert no_key.status_code == 422
    zero = await client.post(
        "/v1/finance/adjustments", json={**body, "amount_fen": 0}, headers={**headers, "Idempotency-Key": "adj-0"}
    )
    assert zero.status_code == 422
    nobody = await client.post(
        "/v1/finance/adjustments",
        json={**body, "partner_id": "ptn_nobody"},
        headers={**headers, "Idempotency-Key": "adj-x"},
    )
    assert nobody.status_code == 404
    lines = (await session.scalars(select(FeeAccrual).where(FeeAccrual.partner_id == partner.id))).all()
    assert len(lines) == 1 and lines[0].arithmetic["reason"] == "重复计费更正"
    assert (
        await session.scalar(select(AuditEvent.action).where(AuditEvent.object_id == created["id"]))
    ) == "adjustment.created"

    # Booked now, it is due with the period that contains now: an earlier period's close leaves it alone.
    closed = await finance.close("2026-10")
    assert all(item["partner_id"] != partner.id for item in closed["statements"])


async def test_an_adjustment_booked_in_a_month_lands_on_that_months_statement(
    session: AsyncSession, make_partner: MakePartner
) -> None:
    partner = await make_partner()
    await book(session, partner.id, 40_000)
    actor = Actor.system("test")
    when = datetime(2026, 3, 20, tzinfo=UTC)
    await statements.create_adjustment(
        session, actor, partner_id=partner.id, amount_fen=-5_000, external_ref="REF-1", reason="r", now=when
    )
    closed = await statements.close_period(session, actor, "2026-03", datetime.now(UTC))
    [statement] = [item for item in closed.statements if item.partner_id == partner.id]
    assert (statement.lines_total_fen, statement.line_count) == (35_000, 2)
    stored = await session.get(Statement, statement.id)
    assert stored is not None and stored.vat_fen == 2_100


@pytest.mark.parametrize(
    ("net", "rate", "inclusive", "expected"),
    [
        (0, 600, False, (0, 0)),
        (-1, 600, True, (0, -1)),
        (8, 600, False, (0, 8)),  # 0.48 -> 0
        (9, 600, False, (1, 10)),  # 0.54 -> 1
        (53, 600, True, (3, 53)),  # 3.0 exactly
        (1_000_000, 1_300, False, (130_000, 1_130_000)),
    ],
)
def test_vat_and_gross(net: int, rate: int, inclusive: bool, expected: tuple[int, int]) -> None:
    assert statements.vat_and_gross(net, rate, inclusive) == expected
