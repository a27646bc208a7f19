"""A case's referrals and fee lines, paged: ``/referrals`` and ``/lines`` walk every one the case names (what the
test itself created), once each, by cursor; the case's page carries only the first of them, with the counts of
all and ``truncated`` set. An unknown case is 404, no token 401, a token without ``risk:read`` 403 — a partner,
the case's own included, never reads them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Partner
from app.risk.schemas import INLINED
from tests.conftest import Caller, CallerFactory
from tests.fees.conftest import START, Ledger, cny
from tests.risk.conftest import open_case

BASE = "/v1/admin/risk-cases"
E = Ledger.event


async def _walk(client: httpx.AsyncClient, url: str, reader: Caller, limit: int) -> list[dict[str, Any]]:
    """Every item of a paged list, following ``next_cursor``; each page holds at most ``limit``."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = await client.get(url, params=params, headers=reader.headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["data"]) <= limit
        items += page["data"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert pages < 1000


async def _funded(ledger: Ledger, count: int) -> dict[str, str]:
    """``count`` referrals, each opened and funded (a bounty line each): referral id → its client ref."""
    made: dict[str, str] = {}
    events = []
    for n in range(count):
        referral_id, person = await ledger.referral()
        ref = f"PG-{ledger.partner_id[-6:]}-{n}"
        made[referral_id] = ref
        events += [
            E("account_opened", ref, START, national_id=person),
            E("account_funded", ref, START + timedelta(hours=1), **cny(20_000)),
        ]
    assert set(await ledger.events(*events)) == {"applied"}
    return made


async def test_every_referral_and_line_of_a_case_once_across_pages(
    make_ledger: Any, session: AsyncSession, client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    ledger: Ledger = await make_ledger()
    named = await _funded(ledger, 7)
    outside = await _funded(ledger, 1)  # the partner's, but no signal names it
    first, second = list(named)[:4], list(named)[3:]  # two signals, one referral in both
    case_id = await open_case(session, ledger.partner_id, tuple(first), "pages:1")
    assert await open_case(session, ledger.partner_id, tuple(second), "pages:2") == case_id
    auditor = await caller("staff", role="auditor")
    lines_of = {rid: await ledger.lines(rid) for rid in named}
    expected_lines = {line.id for lines in lines_of.values() for line in lines}
    assert len(expected_lines) >= len(named)

    referrals = await _walk(client, f"{BASE}/{case_id}/referrals", auditor, limit=3)
    assert [item["referral_id"] for item in referrals].count(first[3]) == 1
    assert len(referrals) == len({item["referral_id"] for item in referrals}) == len(named)
    assert {item["referral_id"] for item in referrals} == set(named)
    assert set(outside).isdisjoint(item["referral_id"] for item in referrals)

    lines = await _walk(client, f"{BASE}/{case_id}/lines", auditor, limit=2)
    assert len(lines) == len({line["id"] for line in lines})
    assert {line["id"] for line in lines} == expected_lines
    assert {line["referral_id"] for line in lines} == set(named)
    by_id = {line.id: line for lines in lines_of.values() for line in lines}
    for line in lines:
        assert (line["amount_fen"], line["rule"]) == (by_id[line["id"]].amount_fen, by_id[line["id"]].rule.value)

    again = await _walk(client, f"{BASE}/{case_id}/lines", auditor, limit=2)
    assert [line["id"] for line in again] == [line["id"] for line in lines]  # a stable order

    detail = (await client.get(f"{BASE}/{case_id}", headers=auditor.headers)).json()
    assert (detail["referral_count"], detail["line_count"], detail["truncated"]) == (
        len(named),
        len(expected_lines),
        False,
    )
    assert set(detail["referral_ids"]) == set(named) and {line["id"] for line in detail["lines"]} == expected_lines


async def test_the_case_page_carries_the_first_and_counts_all(
    make_ledger: Any, session: AsyncSession, client: httpx.AsyncClient, caller: CallerFactory, console_as: Any
) -> None:
    ledger: Ledger = await make_ledger()
    named = await _funded(ledger, 103)
    case_id = await open_case(session, ledger.partner_id, tuple(named), "pages:many")
    manager = await caller("staff", role="alliance_manager")
    created = [line for rid in named for line in await ledger.lines(rid)]
    expected_lines = {line.id for line in created}
    held_fen = sum(line.amount_fen for line in created)

    detail = (await client.get(f"{BASE}/{case_id}", headers=manager.headers)).json()
    assert (detail["referral_count"], detail["line_count"]) == (len(named), len(expected_lines))
    assert detail["truncated"] is True
    assert len(detail["referral_ids"]) == INLINED and set(detail["referral_ids"]) < set(named)
    assert len(detail["lines"]) == INLINED and {line["id"] for line in detail["lines"]} < expected_lines
    assert detail["lines_held_fen"] == held_fen > 0  # over every line, not only those shown
    [signal] = detail["signals"]
    assert signal["referral_count"] == len(named)
    assert len(signal["referral_ids"]) == INLINED and set(signal["referral_ids"]) < set(named)

    referrals = await _walk(client, f"{BASE}/{case_id}/referrals", manager, limit=50)
    assert sorted(item["referral_id"] for item in referrals) == sorted(named)
    lines = await _walk(client, f"{BASE}/{case_id}/lines", manager, limit=500)
    assert sorted(line["id"] for line in lines) == sorted(expected_lines)

    page = (await (await console_as("auditor")).client.get(f"/console/risk-cases/{case_id}")).text
    assert f"共 {len(named)} 条，显示前 {INLINED} 条" in page and f"共 {len(expected_lines)} 条" in page
    assert page.count('data-line="') == INLINED
    form = (await (await console_as("alliance_manager")).client.get(f"/console/risk-cases/{case_id}")).text
    assert f"驳回 {len(named)} 条推荐" in form  # what confirming does counts every referral, not those shown


async def test_who_may_page_a_case(
    make_ledger: Any, session: AsyncSession, client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    ledger: Ledger = await make_ledger()
    named = await _funded(ledger, 1)
    case_id = await open_case(session, ledger.partner_id, tuple(named), "pages:who")
    manager = await caller("staff", role="alliance_manager")
    owner = await session.get(Partner, ledger.partner_id)
    for suffix in ("referrals", "lines"):
        url = f"{BASE}/{case_id}/{suffix}"
        assert (await client.get(url, headers=manager.headers)).status_code == 200
        unknown = await client.get(f"{BASE}/rsk_unknown/{suffix}", headers=manager.headers)
        assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
        anonymous = await client.get(url)
        assert anonymous.status_code == 401 and anonymous.headers["content-type"] == "application/problem+json"
        refused = [
            await caller("partner", partner=owner),
            await caller("partner"),
            await caller("staff", role="finance"),
            await caller("staff", role="admin"),
            await caller("staff", role="alliance_manager", scopes=["risk:manage", "catalog:read"]),
        ]
        for who in refused:
            answer = await client.get(url, headers=who.headers)
            assert answer.status_code == 403, (who.client.kind, who.client.role, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert named[next(iter(named))] not in answer.text and next(iter(named)) not in answer.text
        bad_cursor = await client.get(url, params={"cursor": "not-a-cursor"}, headers=manager.headers)
        assert bad_cursor.status_code == 400 and bad_cursor.json()["type"] == "/problems/invalid-cursor"
