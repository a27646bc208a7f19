"""Claims: every discrepancy class and reason, VAT normalisation, CSV and JSON, re-uploads, disputes, resolution."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.catalog.models import Partner
from app.fees.models import FeeAccrual, FeeRule
from app.reconciliation.models import Claim, ClaimLine, ReconciliationItem
from app.reconciliation.service import to_statement_basis
from tests.conftest import CallerFactory
from tests.reconciliation.books import Finance, book, deliveries, set_vat
from tests.reconciliation.conftest import EXACT_CLAIM, Desk, add_referrals


def claim_line(ref: str, fee_type: str, amount: int) -> dict[str, Any]:
    return {"external_ref": ref, "fee_type": fee_type, "amount_fen": amount}


DISCREPANT_CLAIM = [
    claim_line("M-1", "funded_bounty", 20_000),  # matched
    claim_line("M-2", "funded_bounty", 160_000),  # amount_mismatch +10,000
    # M-3 bundle_fee 40,000 not claimed: unclaimed
    claim_line("M-4", "revenue_share", 1_235),  # claimed twice: duplicate_claim
    claim_line("M-4", "revenue_share", 1_235),
    claim_line("M-5", "funded_bounty", 20_000),  # matched
    claim_line("M-5", "cap", -5_000),  # matched
    claim_line("M-6", "revenue_share", 300),  # two lines of ours, one total: matched
    claim_line("X-NONE", "funded_bounty", 20_000),  # unknown: not_attributed
    claim_line("X-EXP", "funded_bounty", 20_000),  # expired
    claim_line("X-DUP", "funded_bounty", 20_000),  # duplicate
    claim_line("X-EXIST", "funded_bounty", 20_000),  # existing_client
    claim_line("X-REJ", "funded_bounty", 20_000),  # ineligible (rejected)
    claim_line("X-WD", "bundle_fee", 12_000),  # ineligible (withdrawn)
    claim_line("X-NEW", "funded_bounty", 20_000),  # received, never attributed: not_attributed
    claim_line("X-HELD", "funded_bounty", 20_000),  # not_yet_due
    claim_line("X-PREV", "funded_bounty", 20_000),  # on_another_statement
    claim_line("X-NOFEE", "bundle_fee", 15_000),  # not_earned
]


async def test_every_class_and_reason_with_totals(desk: Desk, session: AsyncSession) -> None:
    result = await desk.upload(DISCREPANT_CLAIM)

    assert result["statement_status"] == "issued"
    assert result["claim"]["line_count"] == len(DISCREPANT_CLAIM) and result["claim"]["format"] == "json"
    assert result["claim"]["claimed_total_fen"] == sum(line["amount_fen"] for line in DISCREPANT_CLAIM)
    items = await desk.items()
    expected = {
        ("M-1", "funded_bounty"): ("matched", 20_000, 20_000, 0, None),
        ("M-2", "funded_bounty"): ("amount_mismatch", 150_000, 160_000, 10_000, None),
        ("M-3", "bundle_fee"): ("unclaimed", 40_000, None, -40_000, None),
        ("M-4", "revenue_share"): ("duplicate_claim", 1_235, 2_470, 1_235, None),
        ("M-5", "funded_bounty"): ("matched", 20_000, 20_000, 0, None),
        ("M-5", "cap"): ("matched", -5_000, -5_000, 0, None),
        ("M-6", "revenue_share"): ("matched", 300, 300, 0, None),
        ("X-NONE", "funded_bounty"): ("unknown", None, 20_000, 20_000, "not_attributed"),
        ("X-EXP", "funded_bounty"): ("unknown", None, 20_000, 20_000, "expired"),
        ("X-DUP", "funded_bounty"): ("unknown", None, 20_000, 20_000, "duplicate"),
        ("X-EXIST", "funded_bounty"): ("unknown", None, 20_000, 20_000, "existing_client"),
        ("X-REJ", "funded_bounty"): ("unknown", None, 20_000, 20_000, "ineligible"),
        ("X-WD", "bundle_fee"): ("unknown", None, 12_000, 12_000, "ineligible"),
        ("X-NEW", "funded_bounty"): ("unknown", None, 20_000, 20_000, "not_attributed"),
        ("X-HELD", "funded_bounty"): ("unknown", None, 20_000, 20_000, "not_yet_due"),
        ("X-PREV", "funded_bounty"): ("unknown", None, 20_000, 20_000, "on_another_statement"),
        ("X-NOFEE", "bundle_fee"): ("unknown", None, 15_000, 15_000, "not_earned"),
    }
    got = {
        key: (item["match_class"], item["ours_fen"], item["theirs_fen"], item["difference_fen"], item["reason"])
        for key, item in items.items()
    }
    assert got == expected
    totals = result["totals"]
    assert totals["matched"] == {
        "items": 4,
        "ours_fen": 35_300,
        "theirs_fen": 35_300,
        "difference_fen": 0,
        "open": 0,
    }
    assert totals["amount_mismatch"] == {
        "items": 1,
        "ours_fen": 150_000,
        "theirs_fen": 160_000,
        "difference_fen": 10_000,
        "open": 1,
    }
    assert totals["unclaimed"] == {
        "items": 1,
        "ours_fen": 40_000,
        "theirs_fen": 0,
        "difference_fen": -40_000,
        "open": 1,
    }
    assert totals["unknown"] == {
        "items": 10,
        "ours_fen": 0,
        "theirs_fen": 187_000,
        "difference_fen": 187_000,
        "open": 10,
    }
    assert totals["duplicate_claim"] == {
        "items": 1,
        "ours_fen": 1_235,
        "theirs_fen": 2_470,
        "difference_fen": 1_235,
        "open": 1,
    }
    assert result["open_items"] == 13
    [notice] = await deliveries(session, desk.partner.id, "reconciliation.completed")
    assert notice["data"]["stage"] == "matched" and notice["data"]["open_items"] == 13
    assert notice["data"]["totals"]["unknown"] == {"items": 10, "difference_fen": 187_000}


async def test_another_partners_reference_is_not_attributed_and_not_revealed(
    desk: Desk, session: AsyncSession, make_partner: Any
) -> None:
    other: Partner = await make_partner(legal_name="别家银行")
    await add_referrals(session, other, {"THEIRS-1": "funded"})  # type: ignore[dict-item]
    await desk.upload([*EXACT_CLAIM, claim_line("THEIRS-1", "funded_bounty", 20_000)])
    item = (await desk.items())[("THEIRS-1", "funded_bounty")]
    assert (item["match_class"], item["reason"]) == ("unknown", "not_attributed")


async def test_an_exact_claim_is_complete_at_once(desk: Desk, session: AsyncSession) -> None:
    result = await desk.upload(EXACT_CLAIM)
    assert result["open_items"] == 0 and result["totals"]["matched"]["items"] == 7
    [notice] = await deliveries(session, desk.partner.id, "reconciliation.completed")
    assert notice["data"]["open_items"] == 0
    approved = await desk.checker.act(desk.statement_id, "approve")
    assert approved["status"] == "approved"


async def test_csv_claims_with_a_bom_and_the_amount_alias(desk: Desk) -> None:
    csv_text = "\ufeffexternal_ref,fee_type,amount,currency\r\n" + "".join(
        f"{line['external_ref']},{line['fee_type']},{line['amount_fen']},CNY\r\n" for line in EXACT_CLAIM
    )
    result = await desk.upload(csv_text + "\r\n")
    assert result["claim"]["format"] == "csv" and result["open_items"] == 0
    assert result["claim"]["line_count"] == len(EXACT_CLAIM)


async def test_invalid_claims_are_refused_whole_with_each_fault(desk: Desk, session: AsyncSession) -> None:
    bad_csv = "external_ref,fee_type,amount_fen\nM-1,funded_bounty,20000\nM-2,bonus,1.5\nM-3,bundle_fee\n"
    problem = await desk.upload(bad_csv, expect=422)
    assert problem["type"].endswith("invalid-claim")
    assert [error["loc"] for error in problem["errors"]] == [
        ["line", 3, "fee_type"],
        ["line", 3, "amount_fen"],
        ["line", 4],
    ]
    missing = await desk.upload("ref,fee_type,amount_fen\nM-1,funded_bounty,1\n", expect=422)
    assert "external_ref" in missing["detail"]
    bad_json = await desk.upload([claim_line("M-1", "tip", 1), {"external_ref": "M-2"}], expect=422)
    assert bad_json["type"].endswith("invalid-claim") and len(bad_json["errors"]) >= 2
    assert "20000" not in str(bad_json)
    response = await desk.client.post(
        f"/v1/statements/{desk.statement_id}/claims",
        content=b"<xml/>",
        headers={**desk.caller.headers, "Content-Type": "application/xml"},
    )
    assert response.status_code == 415
    assert (await session.scalars(select(Claim).where(Claim.statement_id == desk.statement_id))).all() == []


async def test_vat_inclusive_claims_are_normalised_to_the_statements_basis(desk: Desk) -> None:
    # The statement is VAT-exclusive (6%): a claim of amounts with VAT is brought back to net amounts.
    with_vat = [{**line, "amount_fen": line["amount_fen"] + round(line["amount_fen"] * 0.06)} for line in EXACT_CLAIM]
    assert with_vat[0]["amount_fen"] == 21_200
    result = await desk.upload(with_vat, amounts_include_vat="true")
    assert result["open_items"] == 0, result["data"]
    assert result["claim"]["claimed_total_fen"] == sum(line["amount_fen"] for line in EXACT_CLAIM)
    as_is = await desk.upload(with_vat)  # by default the partner's setting: exclusive, taken as they are
    assert as_is["totals"]["amount_mismatch"]["items"] == 7  # every line is 6% too high


async def test_an_inclusive_partners_exclusive_claim_gets_vat_added(
    client: httpx.AsyncClient, session: AsyncSession, caller: CallerFactory, make_partner: Any
) -> None:
    partner: Partner = await make_partner()
    await set_vat(session, partner, 600, True)
    finance = Finance(client, await caller("staff", role="finance"))
    await book(session, partner.id, 21_200, ref="I-1")
    statement = await finance.statement_of("2026-03", partner.id)
    assert (statement["vat_inclusive"], statement["vat_fen"], statement["gross_fen"]) == (True, 1_200, 21_200)
    await finance.act(statement["id"], "issue")
    me = await caller("partner", partner=partner)
    path = f"/v1/statements/{statement['id']}/claims"
    by_setting = await client.post(
        path, json={"lines": [claim_line("I-1", "funded_bounty", 21_200)]}, headers=me.headers
    )
    assert by_setting.json()["open_items"] == 0
    net = await client.post(
        path,
        json={"lines": [claim_line("I-1", "funded_bounty", 20_000)]},
        params={"amounts_include_vat": "false"},
        headers=me.headers,
    )
    assert net.status_code == 201 and net.json()["open_items"] == 0


def test_basis_conversion_rounds_once_half_up() -> None:
    class Exclusive:
        vat_inclusive, vat_rate_bp = False, 600

    class Inclusive:
        vat_inclusive, vat_rate_bp = True, 600

    assert to_statement_basis(106, True, Exclusive) == 100  # type: ignore[arg-type]
    assert to_statement_basis(-106, True, Exclusive) == -100  # type: ignore[arg-type]
    assert to_statement_basis(25, False, Inclusive) == 27  # 1.5 -> 2  # type: ignore[arg-type]
    assert to_statement_basis(25, True, Inclusive) == 25  # type: ignore[arg-type]


async def test_a_new_upload_replaces_the_previous_claim(desk: Desk, session: AsyncSession) -> None:
    await desk.upload(DISCREPANT_CLAIM)
    replaced = await desk.upload(EXACT_CLAIM)
    assert replaced["open_items"] == 0
    claims = (
        await session.scalars(select(Claim).where(Claim.statement_id == desk.statement_id).order_by(Claim.created_at))
    ).all()
    assert [claim.superseded for claim in claims] == [True, False]
    assert replaced["claim"]["id"] == claims[1].id
    items = (
        await session.scalars(select(ReconciliationItem).where(ReconciliationItem.statement_id == desk.statement_id))
    ).all()
    assert {item.claim_id for item in items} == {claims[1].id} and len(items) == 7
    kept = (await session.scalars(select(ClaimLine).where(ClaimLine.claim_id == claims[0].id))).all()
    assert len(kept) == len(DISCREPANT_CLAIM)  # the superseded claim's own lines are kept


async def test_once_finance_resolves_an_item_the_claim_cannot_be_replaced(desk: Desk) -> None:
    await desk.upload(DISCREPANT_CLAIM)
    item = (await desk.items())[("M-2", "funded_bounty")]
    await desk.resolve(item["id"], "accept_ours")
    problem = await desk.upload(EXACT_CLAIM, expect=409)
    assert problem["type"].endswith("claim-locked")


async def test_claims_only_for_issued_or_disputed_statements(desk: Desk, session: AsyncSession) -> None:
    await desk.upload(EXACT_CLAIM)
    await desk.checker.act(desk.statement_id, "approve")
    problem = await desk.upload(EXACT_CLAIM, expect=409)
    assert problem["statement_status"] == "approved"
    await book(session, desk.partner.id, 1_000, ref="APR-1", at=datetime(2026, 4, 2, tzinfo=UTC))
    april = await desk.finance.statement_of("2026-04", desk.partner.id)
    assert (await desk.upload(EXACT_CLAIM, expect=404, statement_id=april["id"]))["type"].endswith("not-found")


async def test_idempotent_upload_replays(desk: Desk, session: AsyncSession) -> None:
    headers = {**desk.caller.headers, "Idempotency-Key": "claim-march-1"}
    path = f"/v1/statements/{desk.statement_id}/claims"
    first = await desk.client.post(path, json={"lines": EXACT_CLAIM}, headers=headers)
    again = await desk.client.post(path, json={"lines": EXACT_CLAIM}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len((await session.scalars(select(Claim).where(Claim.statement_id == desk.statement_id))).all()) == 1
    other = await desk.client.post(path, json={"lines": EXACT_CLAIM[:1]}, headers=headers)
    assert other.status_code == 422


# --- disputes and resolution --------------------------------------------------------------------------------------


async def test_disputes_then_resolution_then_approval(desk: Desk, session: AsyncSession) -> None:
    await desk.upload(DISCREPANT_CLAIM)
    items = await desk.items()
    mismatch, unclaimed = items[("M-2", "funded_bounty")], items[("M-3", "bundle_fee")]
    matched = items[("M-1", "funded_bounty")]

    assert (await desk.dispute({matched["id"]: "x"}, expect=422))["type"].endswith("item-not-disputable")
    assert (await desk.dispute({"rci_nope": "x"}, expect=404))["type"].endswith("not-found")
    disputed = await desk.dispute({mismatch["id"]: "我方系统显示为高净值客户 应为 160,000"})
    assert disputed["statement_status"] == "disputed"
    assert disputed["items"][0]["disputed"] is True
    assert disputed["items"][0]["dispute_reason"].startswith("我方系统")
    statement = await desk.finance.get(f"/v1/finance/statements/{desk.statement_id}")
    assert statement["status"] == "disputed"

    blocked = await desk.checker.act(desk.statement_id, "approve", expect=409)
    assert blocked["type"].endswith("open-reconciliation-items") and blocked["open_items"] == 13

    theirs = await desk.resolve(mismatch["id"], "accept_theirs", "客户经理确认")
    assert theirs["resolution"] == "accept_theirs" and theirs["adjustment_id"]
    adjustment = await session.get(FeeAccrual, theirs["adjustment_id"])
    assert adjustment is not None
    assert (adjustment.rule, adjustment.amount_fen, adjustment.external_ref, adjustment.status) == (
        FeeRule.adjustment,
        10_000,
        "M-2",
        "payable",
    )
    assert adjustment.referral_id == desk.referrals["M-2"].id and adjustment.statement_id is None
    assert adjustment.arithmetic["reconciliation_item_id"] == mismatch["id"]

    ours = await desk.resolve(unclaimed["id"], "accept_ours")
    assert ours["adjustment_id"] is None
    assert (await desk.resolve(unclaimed["id"], "write_off", expect=409))["type"].endswith("item-already-resolved")
    assert (await desk.resolve(matched["id"], "accept_ours", expect=409))["type"].endswith("item-already-resolved")
    assert (await desk.dispute({unclaimed["id"]: "late"}, expect=409))["type"].endswith("item-already-resolved")

    remaining = [
        item for item in (await desk.items()).values() if item["match_class"] != "matched" and not item["resolution"]
    ]
    assert len(remaining) == 11
    for item in remaining[:-1]:
        await desk.resolve(item["id"], "write_off", "not ours")
    assert len(await deliveries(session, desk.partner.id, "reconciliation.completed")) == 1
    await desk.resolve(remaining[-1]["id"], "accept_ours")
    notices = await deliveries(session, desk.partner.id, "reconciliation.completed")
    assert [notice["data"]["stage"] for notice in notices] == ["matched", "resolved"]
    assert notices[1]["data"]["open_items"] == 0

    approved = await desk.checker.act(desk.statement_id, "approve")
    assert approved["status"] == "approved"
    assert (await desk.resolve(mismatch["id"], "write_off", expect=409))["type"].endswith("statement-state-conflict")
    audited = (
        await session.scalars(select(AuditEvent).where(AuditEvent.action == "reconciliation_item.resolved"))
    ).all()
    assert len(audited) == 13
    assert {event.details["resolution"] for event in audited} == {"accept_theirs", "accept_ours", "write_off"}


async def test_finance_filters_reconciliation_items(desk: Desk) -> None:
    await desk.upload(DISCREPANT_CLAIM)
    items = await desk.items()
    await desk.dispute({items[("M-2", "funded_bounty")]["id"]: "wrong tier"})
    await desk.resolve(items[("M-3", "bundle_fee")]["id"], "accept_ours")

    async def ids(**params: Any) -> set[tuple[str, str]]:
        page = await desk.finance.get("/v1/finance/reconciliation-items", limit=500, **params)
        return {(item["external_ref"], item["fee_type"]) for item in page["data"]}

    assert len(await ids(statement_id=desk.statement_id)) == 17
    assert len(await ids(partner_id=desk.partner.id, open="true")) == 12
    assert await ids(statement_id=desk.statement_id, open="false", match_class="unclaimed") == {("M-3", "bundle_fee")}
    assert await ids(disputed="true", partner_id=desk.partner.id) == {("M-2", "funded_bounty")}
    unknown = await ids(partner_id=desk.partner.id, match_class="unknown")
    assert len(unknown) == 10
    page = await desk.reconciliation(match_class="unknown", limit=4)
    assert len(page["data"]) == 4 and page["next_cursor"]
    rest = await desk.reconciliation(match_class="unknown", limit=10, cursor=page["next_cursor"])
    assert len(rest["data"]) == 6 and rest["next_cursor"] is None


async def test_gbk_csv_claims_are_read_and_other_charsets_refused(desk: Desk) -> None:
    body = "external_ref,fee_type,amount_fen\n" + "".join(
        f"{line['external_ref']},{line['fee_type']},{line['amount_fen']}\n" for line in EXACT_CLAIM
    )
    body += "工行-补录-1,bundle_fee,5000\n"
    path = f"/v1/statements/{desk.statement_id}/claims"
    gbk = await desk.client.post(
        path, content=body.encode("gbk"), headers={**desk.caller.headers, "Content-Type": "text/csv; Charset=GBK"}
    )
    assert gbk.status_code == 201, gbk.text
    assert gbk.json()["totals"]["unknown"]["items"] == 1
    assert ("工行-补录-1", "bundle_fee") in await desk.items()
    latin = await desk.client.post(
        path, content=body.encode("gbk"), headers={**desk.caller.headers, "Content-Type": "text/csv; charset=latin-1"}
    )
    assert latin.status_code == 415
    not_utf8 = await desk.client.post(
        path, content=body.encode("gbk"), headers={**desk.caller.headers, "Content-Type": "text/csv"}
    )
    assert not_utf8.status_code == 422 and "UTF-8" in not_utf8.json()["detail"]
