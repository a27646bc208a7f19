"""From first referral to first payment in the sandbox, through HTTP only (issue #17's "done when").

A development deployment (what ``make run`` serves: the sandbox routes are there) on a database of its own with the
demo alliance loaded, every request committing as in production. The demo bank submits a referral; its simulated
back office opens the account, funds it (high net worth) and sells a bundle; the bank's webhook receiver (a real
local HTTP server) gets the signed notices and checks them with ``standardwebhooks``; the bank advances its test
clock past the hold and the month's end; finance issues the statement, which carries exactly the fees the demo
schedule gives (computed here from the schedule's numbers); the bank claims, one finance officer approves and a
third pays. Then the clock moves on: a closure inside the clawback window claws the fees back (a second referral),
the same closure after it takes nothing.

The delivery loop is the worker's (``deliver_due``), run here where the worker would run it.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks import Webhook

from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from app.webhooks.delivery import deliver_due
from tests.conftest import DemoTemplate, demo_database_copy
from tests.factories.referrals import individual

BANK, PROGRAM, PRODUCT = "cli_demo_bank", "prg_demo_bank_vip", "BANK_WM_PLUS_EQUITY"
HNW_FUNDING = 2_000_000 * 100  # 2,000,000 CNY: high net worth (1,000,000 to 5,000,000 CNY)
PURCHASE = 300_000 * 100
VAT_RATE_BP = 600  # DESIGN.md: a partner's VAT defaults to 6 %


# --- the partner's webhook receiver -----------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP endpoint on 127.0.0.1 that records every delivery and answers 204."""

    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/alliance/webhooks"

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every delivery's payload, each signature checked with Standard Webhooks' own library."""
        return [Webhook(secret).verify(item.body, item.headers) for item in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.received.append(Received({key.lower(): value for key, value in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


# --- the deployment -----------------------------------------------------------------------------------------------


@dataclass
class Deployment:
    app: FastAPI
    http: httpx.AsyncClient
    database: Database
    settings: Settings
    secrets: dict[str, str]

    async def token(self, client_id: str, secret: str | None = None) -> dict[str, str]:
        response = await self.http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret or self.secrets[client_id]),
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def deliver(self) -> int:
        """What the worker's delivery loop does: send every due webhook, once."""
        async with httpx.AsyncClient() as outbound:
            return await deliver_due(self.database.sessionmaker, self.settings, outbound)


@pytest.fixture
async def sandbox_database(server_url: str, settings: Settings) -> AsyncIterator[tuple[str, DemoTemplate]]:
    """A database of the test's own with the demo loaded: a copy of the run's demo template."""
    async with demo_database_copy(server_url, settings, "alliance_sandbox") as copy:
        yield copy


@pytest.fixture
async def deployment(sandbox_database: tuple[str, DemoTemplate]) -> AsyncIterator[Deployment]:
    url, template = sandbox_database
    settings = Settings(environment="development", database_url=url, log_json=True, _env_file=None)  # type: ignore[call-arg]
    clients = template.credentials  # what loading the demo returned
    database = Database(create_engine(url, settings))
    app = create_app(settings, database)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            secrets = {str(item["client_id"]): str(item["client_secret"]) for item in clients}
            yield Deployment(app, http, database, settings, secrets)
    finally:
        await database.dispose()


# --- the schedule's arithmetic, done here ------------------------------------------------------------------------


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), ROUND_HALF_UP))


def bundle_fee(rule: dict[str, Any], purchase_fen: int) -> int:
    raw = (rule.get("flat_fen") or 0) + (
        half_up(Decimal(purchase_fen) * rule["bps"] / 10_000) if rule.get("bps") else 0
    )
    if rule.get("min_fen") is not None:
        raw = max(raw, rule["min_fen"])
    if rule.get("max_fen") is not None:
        raw = min(raw, rule["max_fen"])
    return raw


# --- the story ---------------------------------------------------------------------------------------------------


async def refer_and_fund(api: httpx.AsyncClient, bank: dict[str, str], key: str, *, bundle: bool) -> dict[str, Any]:
    created = await api.post("/v1/referrals", json=individual(PROGRAM), headers={**bank, "Idempotency-Key": key})
    assert created.status_code == 201 and created.json()["status"] == "eligible", created.text
    referral = created.json()
    steps: list[dict[str, Any]] = [
        {"type": "account_opened"},
        {"type": "account_funded", "amount": HNW_FUNDING},
    ]
    if bundle:
        steps.append({"type": "bundle_purchased", "amount": PURCHASE, "product_code": PRODUCT})
    referral["simulated"] = []
    for number, step in enumerate(steps):
        answer = await api.post(
            f"/v1/sandbox/referrals/{referral['id']}/simulate",
            json=step,
            headers={**bank, "Idempotency-Key": f"{key}-{number}"},
        )
        assert answer.status_code == 201, answer.text
        referral["simulated"].append(answer.json())
    return referral


async def advance(api: httpx.AsyncClient, bank: dict[str, str], days: int) -> dict[str, Any]:
    moved = await api.post("/v1/sandbox/clock/advance", json={"by_days": days}, headers=bank)
    assert moved.status_code == 200, moved.text
    return dict(moved.json())


async def test_from_first_referral_to_first_payment(deployment: Deployment, receiver: Receiver) -> None:
    api = deployment.http
    bank = await deployment.token(BANK)
    admin = await deployment.token("cli_demo_admin")
    # Four eyes: the statement is issued, approved and paid by three different finance officers.
    issuer = await deployment.token("cli_demo_finance")
    approver, payer = [
        await deployment.token(made["id"], made["client_secret"])
        for made in [
            (
                await api.post(
                    "/v1/admin/clients",
                    json={"name": f"finance officer {n}", "kind": "staff", "role": "finance"},
                    headers={**admin, "Idempotency-Key": f"finance-{n}"},
                )
            ).json()
            for n in (2, 3)
        ]
    ]

    # The demo's history leaves the bank's latest lines in their hold: settle them first (as the guide says), so
    # that the statement below holds this story's lines only.
    await advance(api, bank, 35)
    program = (await api.get(f"/v1/programs/{PROGRAM}", headers=bank)).json()
    rules = program["fee_schedule_in_force"]["rules"]
    hnw_bounty = rules["funded_bounty"]["by_tier"]["hnw"]
    [bundle_rule] = [fee for fee in rules["bundle_fees"] if fee["product_code"] == PRODUCT]
    expected_bundle_fee = bundle_fee(bundle_rule, PURCHASE)

    hook = await api.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "event_types": ["referral.status_changed", "statement.issued"]},
        headers={**bank, "Idempotency-Key": "hook"},
    )
    assert hook.status_code == 201, hook.text
    secret = hook.json()["secret"]

    # The referral, opened, funded (HNW) and converted by a bundle of its program.
    first = await refer_and_fund(api, bank, "first", bundle=True)
    assert [step["referral_status"] for step in first["simulated"]] == ["account_opened", "funded", "converted"]
    accrued = [
        (line["rule"], line["amount_fen"], line["status"]) for s in first["simulated"] for line in s["fee_lines"]
    ]
    assert accrued == [("funded_bounty", hnw_bounty, "pending"), ("bundle_fee", expected_bundle_fee, "pending")]

    # The signed notices reach the receiver, each verified.
    assert await deployment.deliver() >= 4
    notices = receiver.verified(secret)
    mine = [
        n["data"] for n in notices if n["type"] == "referral.status_changed" and n["data"]["referral_id"] == first["id"]
    ]
    # Deliveries may arrive in any order: each says when its change happened and from which status. On a test clock
    # that stands still the changes share one instant, so the chain of statuses gives their order.
    assert len(mine) == 4
    after = {notice["from_status"]: notice for notice in mine}
    reached = {notice["to_status"] for notice in mine}
    [first_change] = [notice for notice in mine if notice["from_status"] not in reached]
    chain = [first_change]
    while chain[-1]["to_status"] in after:
        chain.append(after[chain[-1]["to_status"]])
    assert [n["to_status"] for n in chain] == ["eligible", "account_opened", "funded", "converted"]
    assert [n["occurred_at"] for n in chain] == sorted(n["occurred_at"] for n in chain)
    assert {n["external_ref"] for n in mine} == {first["external_ref"]}

    # Past the 30-day hold and the end of the month the lines became payable in: that month is closed.
    moved = await advance(api, bank, 62)
    assert "release_held_fees" in [job["job"] for job in moved["jobs"]]
    statement_ids = [sid for month in moved["months_closed"] for sid in month["statement_ids"]]
    # The demo's history leaves its last month to close, so the bank's advance may close that one too.
    carrying = [sid for sid in statement_ids if await holds_lines_of(api, issuer, sid, first["external_ref"])]
    assert len(carrying) == 1, moved
    [statement_id] = carrying
    issued = await api.post(f"/v1/finance/statements/{statement_id}/issue", headers=issuer)
    assert issued.status_code == 200, issued.text

    # The statement carries exactly the schedule's fees.
    statement = (await api.get(f"/v1/statements/{statement_id}", headers=bank)).json()
    lines = (await api.get(f"/v1/statements/{statement_id}/lines", headers=bank)).json()["data"]
    assert sorted((line["external_ref"], line["rule"], line["amount_fen"]) for line in lines) == sorted(
        [
            (first["external_ref"], "funded_bounty", hnw_bounty),
            (first["external_ref"], "bundle_fee", expected_bundle_fee),
        ]
    )
    net = hnw_bounty + expected_bundle_fee
    vat = half_up(Decimal(net) * VAT_RATE_BP / 10_000)
    assert (statement["status"], statement["lines_total_fen"], statement["net_fen"]) == ("issued", net, net)
    assert (statement["vat_rate_bp"], statement["vat_fen"], statement["gross_fen"]) == (VAT_RATE_BP, vat, net + vat)
    assert await deployment.deliver() >= 1
    assert [n["type"] for n in receiver.verified(secret)].count("statement.issued") == 1

    # The bank claims what it computed; everything matches; finance approves and pays.
    claim = {
        "lines": [
            {"external_ref": first["external_ref"], "fee_type": "funded_bounty", "amount_fen": hnw_bounty},
            {"external_ref": first["external_ref"], "fee_type": "bundle_fee", "amount_fen": expected_bundle_fee},
        ]
    }
    claimed = await api.post(
        f"/v1/statements/{statement_id}/claims?amounts_include_vat=false",
        json=claim,
        headers={**bank, "Idempotency-Key": "claim"},
    )
    assert claimed.status_code in (200, 201), claimed.text
    assert claimed.json()["open_items"] == 0 and claimed.json()["totals"]["matched"]["items"] == 2
    approved = await api.post(f"/v1/finance/statements/{statement_id}/approve", headers=approver)
    assert approved.status_code == 200, approved.text
    paid = await api.post(
        f"/v1/finance/statements/{statement_id}/mark-paid", json={"payment_ref": "SANDBOX-PAY-1"}, headers=payer
    )
    assert paid.status_code == 200, paid.text
    final = (await api.get(f"/v1/statements/{statement_id}", headers=bank)).json()
    assert (final["status"], final["payment_ref"]) == ("paid", "SANDBOX-PAY-1")

    # Inside the 180-day clawback window a closure takes the fee back (a second referral, funded now) ...
    second = await refer_and_fund(api, bank, "second", bundle=False)
    await advance(api, bank, 100)
    closed = await api.post(
        f"/v1/sandbox/referrals/{second['id']}/simulate", json={"type": "account_closed"}, headers=bank
    )
    assert closed.status_code == 201, closed.text
    assert [(line["rule"], line["amount_fen"], line["status"]) for line in closed.json()["fee_lines"]] == [
        ("clawback", -hnw_bounty, "payable")
    ]

    # ... and once the window has passed, the same closure takes nothing back.
    await advance(api, bank, 90)  # the first referral's fees are now 252 days old
    late = await api.post(
        f"/v1/sandbox/referrals/{first['id']}/simulate", json={"type": "account_closed"}, headers=bank
    )
    assert late.status_code == 201, late.text
    assert late.json()["fee_lines"] == []
    lines_now = [
        line
        for page in [(await api.get(f"/v1/statements/{statement_id}/lines", headers=bank)).json()["data"]]
        for line in page
    ]
    assert {line["status"] for line in lines_now} == {"paid"}


async def holds_lines_of(api: httpx.AsyncClient, finance: dict[str, str], statement_id: str, external_ref: str) -> bool:
    lines = (await api.get(f"/v1/finance/statements/{statement_id}/lines?limit=200", headers=finance)).json()["data"]
    return any(line["external_ref"] == external_ref for line in lines)
