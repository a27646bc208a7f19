"""Statements, claims, reconciliation and disputes through the SDK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from alliance_partner import AsyncClient, ClaimLine, Client, NotFoundError, Reconciliation
from sqlalchemy.ext.asyncio import AsyncSession

from app.fees.models import FeeRule
from tests.conftest import CallerFactory
from tests.factories.referrals import PartnerDesk, individual
from tests.partners.conftest import Recorder, credentials_of, in_thread
from tests.reconciliation.books import book

PERIOD = "2026-03"


async def _issued_statement(
    desk: PartnerDesk, api: AsyncClient, session: AsyncSession, client: httpx.AsyncClient, caller: CallerFactory
) -> str:
    """Two referrals with March fees; finance closes March and issues the partner's statement."""
    for ref in ("ST-1", "ST-2"):
        referral = await api.create_referral(individual(desk.program.id, ref))
        await book(session, desk.partner.id, 20_000, ref=ref, referral_id=referral.id)
    await book(session, desk.partner.id, 5_000, rule=FeeRule.bundle_fee, ref="ST-2")
    finance = await caller("staff", role="finance")
    closed = await client.post(f"/v1/finance/periods/{PERIOD}/close", headers=finance.headers)
    assert closed.status_code == 200, closed.text
    [statement] = [item for item in closed.json()["statements"] if item["partner_id"] == desk.partner.id]
    issued = await client.post(f"/v1/finance/statements/{statement['id']}/issue", headers=finance.headers)
    assert issued.status_code == 200, issued.text
    return str(statement["id"])


async def test_statement_claim_reconciliation_and_dispute(
    make_desk: Any,
    session: AsyncSession,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    async_sdk: Callable[..., AsyncClient],
    recorder: Recorder,
) -> None:
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    statement_id = await _issued_statement(desk, api, session, client, caller)

    [statement] = await api.list_statements(period=PERIOD).to_list()
    assert statement.id == statement_id and statement.status == "issued" and statement.lines_total_fen == 45_000
    assert statement.gross_fen >= statement.net_fen == 45_000 and statement.line_count == 3
    assert (await api.get_statement(statement_id)).period == PERIOD
    lines = await api.list_statement_lines(statement_id).to_list()
    assert sorted((line.external_ref, line.rule, line.amount_fen) for line in lines) == [
        ("ST-1", "funded_bounty", 20_000),
        ("ST-2", "bundle_fee", 5_000),
        ("ST-2", "funded_bounty", 20_000),
    ]
    assert [line.rule async for line in api.list_statement_lines(statement_id, rule="bundle_fee")] == ["bundle_fee"]

    claim: list[ClaimLine | dict[str, Any]] = [
        ClaimLine(external_ref="ST-1", fee_type="funded_bounty", amount_fen=20_000),
        ClaimLine(external_ref="ST-2", fee_type="funded_bounty", amount_fen=25_000),  # we think it is more
        {"external_ref": "ST-9", "fee_type": "bundle_fee", "amount_fen": 1_000},  # not ours at all
    ]
    recorder.fail("POST", f"/v1/statements/{statement_id}/claims", "lost")  # retried with the same key
    matched = await api.upload_claim(statement_id, claim, amounts_include_vat=False)
    assert isinstance(matched, Reconciliation) and matched.claim is not None and matched.claim.line_count == 3
    first, second = recorder.sent("POST", f"/v1/statements/{statement_id}/claims")
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.url.params["amounts_include_vat"] == "false"
    assert matched.totals["matched"].items == 1 and matched.totals["amount_mismatch"].difference_fen == 5_000
    assert {item.match_class for item in matched.data} == {"matched", "amount_mismatch", "unknown", "unclaimed"}

    reconciliation = await api.get_reconciliation(statement_id, limit=1)
    assert len(reconciliation.data) == 1 and reconciliation.next_cursor and reconciliation.open_items == 3
    items = await api.list_reconciliation_items(statement_id, limit=1).to_list()
    assert len(items) == 4
    unknown = [item async for item in api.list_reconciliation_items(statement_id, match_class="unknown")]
    assert [(item.external_ref, item.reason) for item in unknown] == [("ST-9", "not_attributed")]
    mismatch = next(item for item in items if item.match_class == "amount_mismatch")

    disputed = await api.dispute_statement(statement_id, {mismatch.id: "our contract says 250 CNY"})
    assert disputed.statement_status == "disputed"
    assert disputed.items[0].disputed and disputed.items[0].dispute_reason == "our contract says 250 CNY"
    with pytest.raises(ValueError, match="at least one"):
        await api.dispute_statement(statement_id, {})


async def test_a_csv_claim_from_the_sync_client(
    make_desk: Any,
    session: AsyncSession,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    async_sdk: Callable[..., AsyncClient],
    sync_sdk: Callable[..., Client],
) -> None:
    desk: PartnerDesk = await make_desk()
    statement_id = await _issued_statement(desk, async_sdk(credentials_of(desk)), session, client, caller)
    api = sync_sdk(credentials_of(desk))
    csv = "external_ref,fee_type,amount_fen\nST-1,funded_bounty,20000\nST-2,funded_bounty,20000\nST-2,bundle_fee,5000\n"
    matched = await in_thread(lambda: api.upload_claim(statement_id, csv))
    assert matched.claim is not None and matched.claim.format == "csv"
    assert matched.open_items == 0 and matched.totals["matched"].items == 3
    assert all(totals.items == 0 for match_class, totals in matched.totals.items() if match_class != "matched")

    other: PartnerDesk = await make_desk(name="别家银行")
    stranger = sync_sdk(credentials_of(other))
    with pytest.raises(NotFoundError):
        await in_thread(lambda: stranger.get_statement(statement_id))
    with pytest.raises(NotFoundError):
        await in_thread(lambda: stranger.upload_claim(statement_id, csv))


async def test_a_draft_statement_is_not_shown_to_its_partner(
    make_desk: Any,
    session: AsyncSession,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    async_sdk: Callable[..., AsyncClient],
) -> None:
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    await book(session, desk.partner.id, 20_000, ref="DRAFT-1")
    finance = await caller("staff", role="finance")
    closed = await client.post(f"/v1/finance/periods/{PERIOD}/close", headers=finance.headers)
    [draft] = [item for item in closed.json()["statements"] if item["partner_id"] == desk.partner.id]
    assert await api.list_statements().to_list() == []
    with pytest.raises(NotFoundError) as refused:
        await api.upload_claim(draft["id"], [ClaimLine(external_ref="DRAFT-1", fee_type="funded_bounty", amount_fen=1)])
    assert refused.value.code == "not-found" and refused.value.request_id
