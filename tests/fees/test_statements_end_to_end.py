"""One month of a bank's alliance, end to end, checking every figure: referrals, the back office's events as they
happen, accruals, the hold release, the period close, issue, the bank's claim with each kind of discrepancy,
its dispute, finance's resolutions, approval and payment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Partner
from app.core.clock import ManualClock
from app.fees.engine import release_held
from app.fees.models import AccrualStatus, FeeAccrual, FeeRule
from app.referrals.models import Referral, ReferralStatus
from tests.conftest import CallerFactory
from tests.fees.conftest import Ledger, cny
from tests.reconciliation.books import Finance, deliveries, subscribe

E = Ledger.event


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


class Clock:
    """The back office reports each event as it happens: the feed's clock is the event's time."""

    def __init__(self, manual: ManualClock) -> None:
        self.manual = manual
        self.now = at(9, 1)

    @property
    def now(self) -> datetime:
        return self.manual.now()

    @now.setter
    def now(self, moment: datetime) -> None:
        self.manual.move_to(moment)


async def test_a_month_from_referral_to_payment(
    make_ledger: Any,
    session: AsyncSession,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    manual_clock: ManualClock,
) -> None:
    clock = Clock(manual_clock)
    ledger: Ledger = await make_ledger()
    partner = await session.get(Partner, ledger.partner_id)
    assert partner is not None and (partner.vat_rate_bp, partner.vat_inclusive) == (600, False)
    await subscribe(session, partner.id)
    bank = await caller("partner", partner=partner)
    finance = Finance(client, await caller("staff", role="finance"))
    checker = Finance(client, await caller("staff", role="finance"))  # four eyes: another client approves

    async def happen(*events: dict[str, Any]) -> None:
        clock.now = max(datetime.fromisoformat(event["occurred_at"]) for event in events) + timedelta(minutes=1)
        assert set(await ledger.events(*events)) == {"applied"}

    # --- September and October: referrals, then what their clients do --------------------------------------------
    people: dict[str, tuple[str, str]] = {}
    for name, opened in (("A", at(9, 2)), ("B", at(9, 3)), ("C", at(9, 5)), ("F", at(9, 6)), ("G", at(9, 6))):
        people[name] = await ledger.referral(opened)
    people["H"] = await ledger.referral(at(10, 15))
    people["E"] = await ledger.referral(at(9, 1))
    refs = {name: (await session.get(Referral, referral_id)).external_ref for name, (referral_id, _) in people.items()}  # type: ignore[union-attr]
    expired = await session.get(Referral, people["E"][0])
    assert expired is not None
    expired.status = ReferralStatus.expired  # no account opened in its window
    await session.flush()

    def opened(name: str, when: datetime) -> dict[str, Any]:
        return E("account_opened", f"C-{name}", when, national_id=people[name][1])

    await happen(opened("A", at(9, 2)), E("account_funded", "C-A", at(9, 2, 11), **cny(20_000)))
    await happen(opened("B", at(9, 3)), E("account_funded", "C-B", at(9, 3, 11), **cny(2_000_000)))
    await happen(
        opened("C", at(9, 5)),
        E("bundle_purchased", "C-C", at(9, 5, 11), product_code="BANK_WM_PLUS_EQUITY", **cny(100_000)),
    )
    await happen(opened("F", at(9, 6)), opened("G", at(9, 6)))
    await happen(E("account_funded", "C-G", at(9, 6, 12), **cny(20_000)))
    await happen(E("revenue_recorded", "C-F", at(9, 20), amount=12_345, currency="CNY"))
    # The daily job releases what is past its hold; then G's client closes the account: a clawback after the hold.
    assert await release_held(session, at(10, 10)) == 4  # A, B, C, G (F's hold runs to October 20)
    await happen(E("account_closed", "C-G", at(10, 10)))
    await happen(opened("H", at(10, 15)), E("account_funded", "C-H", at(10, 15, 11), **cny(20_000)))

    lines = {
        (line.external_ref, line.rule): line
        for line in (await session.scalars(select(FeeAccrual).where(FeeAccrual.partner_id == partner.id))).all()
    }
    expected_lines = {
        (refs["A"], FeeRule.funded_bounty): (20_000, AccrualStatus.payable),  # retail
        (refs["B"], FeeRule.funded_bounty): (150_000, AccrualStatus.payable),  # HNW
        (refs["C"], FeeRule.bundle_fee): (40_000, AccrualStatus.payable),  # 10,000 + 0.3% x 10,000,000
        (refs["F"], FeeRule.revenue_share): (1_235, AccrualStatus.pending),  # 10% of 12,345 = 1,234.5 -> 1,235
        (refs["G"], FeeRule.funded_bounty): (20_000, AccrualStatus.payable),
        (refs["G"], FeeRule.clawback): (-20_000, AccrualStatus.payable),
        (refs["H"], FeeRule.funded_bounty): (20_000, AccrualStatus.pending),  # held until November 14
    }
    assert {key: (line.amount_fen, line.status) for key, line in lines.items()} == expected_lines

    # --- closing October ------------------------------------------------------------------------------------------
    clock.now = at(11, 2)  # finance closes October once it has ended
    closed = await finance.close("2026-10")
    assert (closed["released_lines"], closed["statemented_lines"], closed["created_statements"]) == (1, 6, 1)
    [statement] = [item for item in closed["statements"] if item["partner_id"] == partner.id]
    figures = {
        key: statement[key] for key in ("lines_total_fen", "carried_forward_fen", "net_fen", "vat_fen", "gross_fen")
    }
    # 20,000 + 150,000 + 40,000 + 1,235 + 20,000 - 20,000 = 211,235; VAT 6% = 12,674.1 -> 12,674
    assert figures == {
        "lines_total_fen": 211_235,
        "carried_forward_fen": 0,
        "net_fen": 211_235,
        "vat_fen": 12_674,
        "gross_fen": 223_909,
    }
    assert (statement["line_count"], statement["status"]) == (6, "draft")
    sid = statement["id"]
    assert (await client.get(f"/v1/statements/{sid}", headers=bank.headers)).status_code == 404
    held = lines[(refs["H"], FeeRule.funded_bounty)]
    await session.refresh(held)
    assert (held.status, held.statement_id) == (AccrualStatus.pending, None)

    # --- issue: the bank is told and reads it -------------------------------------------------------------------
    await finance.act(sid, "issue")
    [issued] = await deliveries(session, partner.id, "statement.issued")
    assert issued["data"]["gross_fen"] == 223_909 and issued["data"]["statement_id"] == sid
    seen = (await client.get(f"/v1/statements/{sid}", headers=bank.headers)).json()
    assert (seen["status"], seen["net_fen"], seen["vat_fen"], seen["gross_fen"]) == ("issued", 211_235, 12_674, 223_909)
    statement_lines = (await client.get(f"/v1/statements/{sid}/lines", headers=bank.headers)).json()["data"]
    assert sum(line["amount_fen"] for line in statement_lines) == 211_235 and len(statement_lines) == 6

    # --- the bank's claim, as CSV, with each kind of discrepancy -------------------------------------------------
    claim = [
        (refs["A"], "funded_bounty", 20_000),  # matched
        (refs["B"], "funded_bounty", 160_000),  # amount_mismatch: they count B as 160,000
        # C's bundle fee is missing: unclaimed
        (refs["F"], "revenue_share", 1_235),  # twice: duplicate_claim
        (refs["F"], "revenue_share", 1_235),
        (refs["G"], "funded_bounty", 20_000),  # matched
        (refs["G"], "clawback", -20_000),  # matched
        (refs["E"], "funded_bounty", 20_000),  # unknown: expired
        ("BANK-ONLY-77", "funded_bounty", 20_000),  # unknown: not attributed
        (refs["H"], "funded_bounty", 20_000),  # unknown: not yet due
    ]
    body = "external_ref,fee_type,amount_fen\n" + "".join(f"{ref},{kind},{amount}\n" for ref, kind, amount in claim)
    uploaded = await client.post(
        f"/v1/statements/{sid}/claims",
        content=body.encode(),
        headers={**bank.headers, "Content-Type": "text/csv; charset=utf-8", "Idempotency-Key": "oct-claim"},
    )
    assert uploaded.status_code == 201, uploaded.text
    result = uploaded.json()
    assert result["claim"]["claimed_total_fen"] == 242_470 and result["claim"]["line_count"] == 9
    totals = {
        name: (t["items"], t["ours_fen"], t["theirs_fen"], t["difference_fen"]) for name, t in result["totals"].items()
    }
    assert totals == {
        "matched": (3, 20_000, 20_000, 0),
        "amount_mismatch": (1, 150_000, 160_000, 10_000),
        "unclaimed": (1, 40_000, 0, -40_000),
        "unknown": (3, 0, 60_000, 60_000),
        "duplicate_claim": (1, 1_235, 2_470, 1_235),
    }
    assert result["open_items"] == 6
    view = (await client.get(f"/v1/statements/{sid}/reconciliation", headers=bank.headers)).json()
    items = {(item["external_ref"], item["fee_type"]): item for item in view["data"]}
    assert {
        key: (item["match_class"], item["reason"]) for key, item in items.items() if item["match_class"] == "unknown"
    } == {
        (refs["E"], "funded_bounty"): ("unknown", "expired"),
        ("BANK-ONLY-77", "funded_bounty"): ("unknown", "not_attributed"),
        (refs["H"], "funded_bounty"): ("unknown", "not_yet_due"),
    }
    [matched_notice] = await deliveries(session, partner.id, "reconciliation.completed")
    assert matched_notice["data"]["stage"] == "matched" and matched_notice["data"]["open_items"] == 6

    # --- the bank disputes B; finance resolves everything --------------------------------------------------------
    mismatch = items[(refs["B"], "funded_bounty")]
    disputed = await client.post(
        f"/v1/statements/{sid}/disputes",
        json={"items": [{"item_id": mismatch["id"], "reason": "客户9月3日资产达200万 应为高净值档 160,000"}]},
        headers=bank.headers,
    )
    assert disputed.status_code == 200 and disputed.json()["statement_status"] == "disputed"
    assert (await checker.act(sid, "approve", expect=409))["open_items"] == 6

    async def resolve(key: tuple[str, str], resolution: str, note: str) -> dict[str, Any]:
        response = await client.post(
            f"/v1/finance/reconciliation-items/{items[key]['id']}/resolve",
            json={"resolution": resolution, "note": note},
            headers=finance.caller.headers,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    accepted = await resolve((refs["B"], "funded_bounty"), "accept_theirs", "合同附件二 高净值档为 160,000")
    await resolve((refs["C"], "bundle_fee"), "accept_ours", "bundle bought 5 September; fee is due")
    await resolve((refs["F"], "revenue_share"), "accept_ours", "one revenue line, claimed twice")
    await resolve((refs["E"], "funded_bounty"), "write_off", "referral expired, no account")
    await resolve(("BANK-ONLY-77", "funded_bounty"), "write_off", "not one of our referrals")
    assert (await checker.act(sid, "approve", expect=409))["open_items"] == 1
    manual_clock.advance(timedelta(minutes=5))  # the last item is resolved later: its notice is the later one
    await resolve((refs["H"], "funded_bounty"), "accept_ours", "due on November's statement")
    notices = await deliveries(session, partner.id, "reconciliation.completed")
    assert [notice["data"]["stage"] for notice in notices] == ["matched", "resolved"]

    adjustment = await session.get(FeeAccrual, accepted["adjustment_id"])
    assert adjustment is not None
    assert (adjustment.rule, adjustment.amount_fen, adjustment.external_ref, adjustment.status) == (
        FeeRule.adjustment,
        10_000,
        refs["B"],
        AccrualStatus.payable,
    )
    assert adjustment.statement_id is None and adjustment.referral_id == people["B"][0]

    # --- approval and payment -------------------------------------------------------------------------------------
    approved = await checker.act(sid, "approve")
    assert approved["status"] == "approved"
    paid = await finance.act(sid, "mark-paid", payment_ref="ICBC-2026110500123")
    assert (paid["status"], paid["payment_ref"], paid["gross_fen"]) == ("paid", "ICBC-2026110500123", 223_909)
    final = (await client.get(f"/v1/statements/{sid}", headers=bank.headers)).json()
    assert final["status"] == "paid" and final["paid_at"]
    statuses = (
        await session.scalars(
            select(FeeAccrual.status).where(FeeAccrual.statement_id == sid).execution_options(populate_existing=True)
        )
    ).all()
    assert list(statuses) == [AccrualStatus.paid] * 6
    # What is left for November: H's bounty (still held) and B's adjustment.
    outstanding = (
        await session.scalars(
            select(FeeAccrual)
            .where(FeeAccrual.partner_id == partner.id, FeeAccrual.statement_id.is_(None))  # type: ignore[union-attr]
            .execution_options(populate_existing=True)
        )
    ).all()
    assert sorted((line.rule, line.amount_fen, line.status) for line in outstanding) == [
        (FeeRule.adjustment, 10_000, AccrualStatus.payable),
        (FeeRule.funded_bounty, 20_000, AccrualStatus.pending),
    ]
