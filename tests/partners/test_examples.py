"""The example integrations run against the demo alliance (what `make run` serves), with its demo credentials.

The demo is loaded with ``app.demo.load_demo`` into a scratch database of its own (the examples commit; it is a copy
of the run's demo template, ``tests.conftest``), and the credentials file is what ``alliance demo --json
--reset-secrets`` prints. Each example's ``main`` runs as a
partner would run it, only with the app in process instead of on a port.
"""

from __future__ import annotations

import ast
import asyncio
import csv
import json
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from alliance_partner import WebhookEvent, sign_webhook
from fastapi import FastAPI

from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from app.webhooks.delivery import deliver_due
from tests.conftest import DemoTemplate, demo_database_copy
from tests.partners.conftest import BASE_URL, PARTNERS, LoopBridge

EXAMPLES = PARTNERS / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import bank_vip_daily_sync  # noqa: E402
import corporate_employee_roster  # noqa: E402
import insurer_bundle_leads  # noqa: E402
import webhook_receiver  # noqa: E402


@dataclass
class Demo:
    app: FastAPI
    database: Database
    settings: Settings
    credentials: Path

    def args(self, *extra: str) -> list[str]:
        return ["--base-url", BASE_URL, "--credentials", str(self.credentials), *extra]


@pytest.fixture(scope="module")
async def demo_database(server_url: str, settings: Settings) -> AsyncIterator[tuple[str, DemoTemplate]]:
    async with demo_database_copy(server_url, settings, "alliance_demo") as copy:
        yield copy


@pytest.fixture(scope="module")
async def demo(
    demo_database: tuple[str, DemoTemplate], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Demo]:
    url, template = demo_database
    scratch = settings.model_copy(update={"database_url": url})
    credentials = tmp_path_factory.mktemp("demo") / "demo-credentials.json"
    credentials.write_text(json.dumps(template.credentials, indent=2))  # what loading the demo returned
    database = Database(create_engine(url, scratch))
    yield Demo(create_app(scratch, database), database, scratch, credentials)
    await database.dispose()


@pytest.fixture(autouse=True)
def no_credentials_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ALLIANCE_CLIENT_ID",
        "ALLIANCE_CLIENT_SECRET",
        "ALLIANCE_PRIVATE_KEY_FILE",
        "ALLIANCE_DEMO_CREDENTIALS",
    ):
        monkeypatch.delenv(name, raising=False)


async def _run_sync(main: Any, demo: Demo, *args: str) -> int:
    bridge = LoopBridge(httpx.ASGITransport(app=demo.app), asyncio.get_running_loop())
    return int(await asyncio.to_thread(main, demo.args(*args), transport=bridge))


async def test_the_bank_syncs_its_consenting_vip_clients(
    demo: Demo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert await _run_sync(bank_vip_daily_sync.main, demo) == 0
    first = capsys.readouterr().out
    assert "referred: {'new': 5, 'eligible': 5}" in first
    assert "skipped C0001004: not a VIP client" in first and "skipped C0001005: no separate consent" in first
    assert "FAILED" not in first

    assert await _run_sync(bank_vip_daily_sync.main, demo) == 0  # the next day: nothing new, nothing doubled
    second = capsys.readouterr().out
    assert "referred: {'already referred': 5, 'eligible': 5}" in second

    # C0001001 revokes consent in the CRM: the next run withdraws the referral (and its data is erased).
    export = tmp_path / "export.csv"
    with (bank_vip_daily_sync.DATA / "bank_crm_vip_export.csv").open(encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    for row in rows:
        if row["customer_no"] == "C0001001":
            row["consent_status"] = "revoked"
    with export.open("w", encoding="utf-8", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert await _run_sync(bank_vip_daily_sync.main, demo, "--export", str(export)) == 0
    third = capsys.readouterr().out
    assert "withdrawn (consent revoked): ['C0001001']" in third
    # The program's funnel also counts the demo's year of history: one referral moved from eligible to withdrawn.
    before, after = _program_funnel(second), _program_funnel(third)
    assert after["withdrawn"] == before.get("withdrawn", 0) + 1 and after["eligible"] == before["eligible"] - 1
    assert sum(after.values()) == sum(before.values())


def _program_funnel(output: str) -> dict[str, int]:
    """The example's last line: every referral of the program by status."""
    line = next(line for line in output.splitlines() if line.startswith("all referrals of the program by status: "))
    funnel = ast.literal_eval(line.split(": ", 1)[1])
    assert isinstance(funnel, dict)
    return funnel


async def test_the_insurer_reports_its_bundle_leads_and_registers_a_webhook(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = httpx.ASGITransport(app=demo.app)
    hook = "http://127.0.0.1:8080/alliance/webhooks"
    assert await insurer_bundle_leads.run(demo.args("--webhook-url", hook), transport=transport) == 0
    out = capsys.readouterr().out
    assert "signing secret (shown once): whsec_" in out
    assert out.count(" eligible") == 5 and "P2026-118201: ref_" in out

    assert await insurer_bundle_leads.run(demo.args("--webhook-url", hook), transport=transport) == 0
    again = capsys.readouterr().out
    assert "whsec_" not in again and again.count("(already reported)") == 5


async def test_the_corporate_uploads_its_roster_as_a_batch(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    assert await _run_sync(corporate_employee_roster.main, demo) == 0
    out = capsys.readouterr().out
    assert "left out (no consent): ['E1005']" in out
    assert "outcomes: {'eligible': 6, 'error': 1}" in out
    assert "E1007: REFUSED national_id" in out
    assert "completed 7/7 (100%)" in out


async def test_the_receiver_verifies_real_deliveries(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    """The insurer's endpoint gets the alliance's real deliveries; the example receiver verifies them."""
    secret = await _insurer_endpoint_secret(demo)
    events: list[WebhookEvent] = []
    receiver = webhook_receiver.WebhookReceiver(secret, events.append)
    answers: list[int] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        status, text = receiver.handle(request.content, request.headers)
        answers.append(status)
        return httpx.Response(status, text=text)

    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        while await deliver_due(demo.database.sessionmaker, demo.settings, http):
            pass
    assert events and set(answers) == {204}
    assert {event.type for event in events} == {"referral.status_changed"}
    assert all(event.data["external_ref"].startswith("P2026-") for event in events)

    # A redelivery (same webhook-id) is acknowledged without being handled twice; a forgery is refused.
    body = json.dumps({"type": "referral.status_changed", "data": {}}).encode()
    now = int(time.time())
    signed = {
        "webhook-id": events[0].id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign_webhook(secret, events[0].id, now, body),
    }
    assert receiver.handle(body, signed) == (200, "already handled")
    forged = {
        **signed,
        "webhook-id": "msg_new",
        "webhook-signature": sign_webhook("whsec_" + "A" * 44, "msg_new", now, body),
    }
    assert receiver.handle(body, forged)[0] == 400


async def _insurer_endpoint_secret(demo: Demo) -> str:
    """A fresh endpoint of the demo insurer (secrets are shown once), then one lead so there is news."""
    transport = httpx.ASGITransport(app=demo.app)
    credentials = {item["client_id"]: item for item in json.loads(demo.credentials.read_text())}
    from alliance_partner import AsyncClient

    async with AsyncClient(
        base_url=BASE_URL,
        client_id="cli_demo_insurer",
        client_secret=credentials["cli_demo_insurer"]["client_secret"],
        transport=transport,
    ) as insurer:
        async for endpoint in insurer.list_webhook_endpoints():
            if endpoint.enabled:
                await insurer.delete_webhook_endpoint(endpoint.id)
        created = await insurer.create_webhook_endpoint(
            "http://127.0.0.1:8080/alliance/webhooks", ["referral.status_changed"]
        )
        leads = insurer_bundle_leads.DATA / "insurer_bundle_leads.csv"
        await insurer_bundle_leads.report_leads(insurer, leads)
        row = next(csv.DictReader(leads.open(encoding="utf-8")))
        [referral] = await insurer.list_referrals(external_ref=row["policy_no"]).to_list()
        if referral.status != "withdrawn":
            await insurer.withdraw_referral(referral.id, reason="submitted_in_error")  # a status change to announce
    return created.secret


def test_the_receiver_over_http(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    receiver = webhook_receiver.WebhookReceiver([secret], webhook_receiver.print_event)
    server = ThreadingHTTPServer(("127.0.0.1", 0), webhook_receiver.http_handler(receiver))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}{webhook_receiver.PATH}"
        body = json.dumps(
            {
                "type": "referral.status_changed",
                "data": {"external_ref": "C0001001", "from_status": "eligible", "to_status": "account_opened"},
            }
        ).encode()
        now = int(time.time())
        headers = {
            "webhook-id": "msg_http",
            "webhook-timestamp": str(now),
            "webhook-signature": sign_webhook(secret, "msg_http", now, body),
        }
        with httpx.Client() as http:
            assert http.post(url, content=body, headers=headers).status_code == 204
            assert http.post(url, content=body, headers=headers).status_code == 200
            tampered = http.post(url, content=body.replace(b"account_opened", b"converted"), headers=headers)
            assert tampered.status_code == 400 and "rejected" in tampered.text
            assert http.post(url.replace(webhook_receiver.PATH, "/elsewhere"), content=body).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
    assert "msg_http: referral C0001001 eligible -> account_opened" in capsys.readouterr().out
