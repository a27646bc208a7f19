"""Events of one client sharing a timestamp (a daily file with date-only times) are applied in funnel order,
whatever their source ids, their order in the call, or where they stand in an imported file."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit.service import Actor
from app.auth.scopes import StaffRole
from app.catalog import service as catalog
from app.catalog.schemas import Component, ProductCreate, ProgramUpdate
from app.conversions import importer
from app.core.business_time import business_day
from app.core.database import Database
from app.referrals.models import Referral, ReferralEvent
from tests.conftest import Caller, CallerFactory
from tests.factories.referrals import PartnerDesk, individual, national_id

EVENTS = "/v1/conversion-events"
PRODUCT = "BANK_WM_PLUS_EQUITY"
FUNNEL = [
    ("received", "submitted"),
    ("eligible", "attribution"),
    ("account_opened", "account_opened"),
    ("funded", "account_funded"),
    ("converted", "bundle_purchased"),
]
_cases = itertools.count()


@pytest.fixture
async def desk(bank: PartnerDesk, session: AsyncSession) -> PartnerDesk:
    actor = Actor.system("test")
    product = ProductCreate(
        code=PRODUCT, name="x", components=[Component(kind="k", name="n")], allowed_partner_kinds=["bank"]
    )
    await catalog.create_product(session, actor, product)
    await catalog.update_program(session, actor, bank.program.id, ProgramUpdate(product_codes=[PRODUCT]))
    return bank


@pytest.fixture
async def feed(caller: CallerFactory) -> Caller:
    return await caller("back_office")


def same_time_events(client_ref: str, person: str, at: datetime, ids: tuple[str, str, str]) -> list[dict[str, Any]]:
    """Opening, funding and purchase of one client at one instant, in funnel order, with the given source ids."""
    common = {"occurred_at": at.isoformat(), "client_ref": client_ref}
    return [
        {"source_event_id": ids[0], "type": "account_opened", "national_id": person, **common},
        {"source_event_id": ids[1], "type": "account_funded", "amount": 30_000_000, "currency": "CNY", **common},
        {
            "source_event_id": ids[2],
            "type": "bundle_purchased",
            "product_code": PRODUCT,
            "amount": 5_000_000,
            "currency": "CNY",
            **common,
        },
    ]


async def referral_for(client: httpx.AsyncClient, desk: PartnerDesk, person: str) -> str:
    response = await client.post(
        "/v1/referrals", json=individual(desk.program.id, national_id=person), headers=desk.headers()
    )
    assert response.status_code == 201 and response.json()["status"] == "eligible", response.text
    return str(response.json()["id"])


async def timeline(client: httpx.AsyncClient, desk: PartnerDesk, referral_id: str) -> list[tuple[str, str]]:
    response = await client.get(f"/v1/referrals/{referral_id}/events", headers=desk.caller.headers)
    assert response.status_code == 200, response.text
    return [(item["to_status"], item["cause"]) for item in response.json()]


async def funnel_counts(client: httpx.AsyncClient, manager: Caller, desk: PartnerDesk) -> dict[str, int]:
    today = business_day(datetime.now(UTC)).isoformat()
    response = await client.get(
        "/v1/reports/funnel",
        params={"from": today, "to": today, "partner_id": desk.partner.id},
        headers=manager.headers,
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["total"]["counts"])


async def test_same_time_events_follow_the_funnel_whatever_their_ids_and_call_order(
    client: httpx.AsyncClient, desk: PartnerDesk, feed: Caller, caller: CallerFactory
) -> None:
    cases = 0
    for id_order, call_order in itertools.product(itertools.permutations(range(3)), repeat=2):
        case = next(_cases)
        person = national_id()
        referral_id = await referral_for(client, desk, person)
        # ids[i] sorts at position id_order[i]: every ordering of the ids against the funnel is tried.
        ids = tuple(f"st-{case}-{'abc'[rank]}" for rank in id_order)
        events = same_time_events(f"ST-{case}", person, datetime.now(UTC), ids)  # type: ignore[arg-type]
        response = await client.post(EVENTS, json={"events": [events[i] for i in call_order]}, headers=feed.headers)
        assert response.status_code == 200, response.text
        assert {item["result"] for item in response.json()["results"]} == {"applied"}
        assert await timeline(client, desk, referral_id) == FUNNEL, (id_order, call_order)
        cases += 1
    counts = await funnel_counts(client, await caller("staff", role=StaffRole.alliance_manager), desk)
    assert (counts["received"], counts["account_opened"], counts["funded"], counts["converted"]) == (cases,) * 4


async def test_deferred_same_time_events_follow_the_funnel_when_the_opening_arrives(
    client: httpx.AsyncClient, desk: PartnerDesk, feed: Caller
) -> None:
    for id_order in itertools.permutations(range(3)):
        case = next(_cases)
        person = national_id()
        referral_id = await referral_for(client, desk, person)
        ids = tuple(f"sd-{case}-{'abc'[rank]}" for rank in id_order)
        opened, funded, bought = same_time_events(f"SD-{case}", person, datetime.now(UTC), ids)  # type: ignore[arg-type]
        first = await client.post(EVENTS, json={"events": [bought, funded]}, headers=feed.headers)
        assert [item["result"] for item in first.json()["results"]] == ["deferred", "deferred"]
        await client.post(EVENTS, json={"events": [opened]}, headers=feed.headers)
        assert await timeline(client, desk, referral_id) == FUNNEL, id_order


def test_a_files_chunks_keep_each_clients_events_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "GROUP_EVENTS", 7)  # several passes over the file
    path = tmp_path / "events.csv"
    lines = ["source_event_id,type,occurred_at,client_ref"]
    # 12 clients, 3 events each, interleaved across the whole file.
    lines += [
        f"e-{round_}-{client},revenue_recorded,2026-11-01,K-{client}" for round_ in range(3) for client in range(12)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    chunks = list(importer.read_chunks(path, size=5))
    numbered = [item for chunk in chunks for item in chunk]
    assert sorted(number for number, _ in numbered) == list(range(2, 38))  # every line once, with its number
    assert all(len(chunk) <= 5 for chunk in chunks)
    homes: dict[str, set[int]] = {}
    for position, chunk in enumerate(chunks):
        for _, event in chunk:
            homes.setdefault(event["client_ref"], set()).add(position)
    assert len(homes) == 12 and all(len(places) == 1 for places in homes.values())


async def test_an_imported_file_applies_same_time_events_in_funnel_order(
    app: Any,
    client: httpx.AsyncClient,
    desk: PartnerDesk,
    connection: AsyncConnection,
    session: AsyncSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importer, "GROUP_EVENTS", 4)
    at = datetime.now(UTC).replace(microsecond=0)
    people = [(national_id(), f"IF-{next(_cases)}") for _ in range(6)]
    referrals = [await referral_for(client, desk, person) for person, _ in people]
    await session.execute(
        update(Referral).where(Referral.id.in_(referrals)).values(created_at=at - timedelta(days=1))  # type: ignore[attr-defined]
    )
    await session.commit()
    # The purchase first, the funding last, each client's three events far apart in the file.
    rows: list[list[str]] = [[] for _ in range(3)]
    for person, client_ref in people:
        opened, funded, bought = same_time_events(
            client_ref, person, at, (f"{client_ref}-c", f"{client_ref}-b", f"{client_ref}-a")
        )
        for slot, event in enumerate((bought, opened, funded)):
            rows[slot].append(
                ",".join(
                    str(event.get(column, ""))
                    for column in (
                        "source_event_id",
                        "type",
                        "occurred_at",
                        "client_ref",
                        "national_id",
                        "amount",
                        "currency",
                        "product_code",
                    )
                )
            )
    path = tmp_path / "daily.csv"
    header = "source_event_id,type,occurred_at,client_ref,national_id,amount,currency,product_code"
    path.write_text("\n".join([header, *rows[0], *rows[1], *rows[2]]) + "\n", encoding="utf-8")

    totals, rejections = await importer.import_file(
        Database(connection, join_savepoint=True), app.state.data_keyring.index, path, chunk_size=3
    )
    assert rejections == [] and totals == {"applied": 18}
    for referral_id in referrals:
        steps = (
            await session.execute(
                select(ReferralEvent.to_status, ReferralEvent.cause)
                .where(ReferralEvent.referral_id == referral_id)
                .order_by(ReferralEvent.seq)  # type: ignore[arg-type]
            )
        ).all()
        assert [(str(status), cause) for status, cause in steps] == FUNNEL
