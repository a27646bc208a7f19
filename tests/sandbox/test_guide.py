"""The integration guide's sandbox walk-through (partners/README.md, "From first referral to first payment in the
sandbox") runs as written: its Python snippets, in order, against a development deployment with the demo alliance,
with the demo bank's secret for the placeholder and finance's steps (which the guide describes, not shows) done
between them."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx

from tests.partners.conftest import Client, LoopBridge  # the conftest puts the SDK on the path
from tests.sandbox.test_first_payment import Deployment, deployment, sandbox_database  # noqa: F401  (fixtures)

GUIDE = Path(__file__).resolve().parents[2] / "partners" / "README.md"
SECTION = "## From first referral to first payment in the sandbox"


def snippets() -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index(SECTION) : text.index("\n## ", text.index(SECTION) + 1)]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


async def test_the_guides_snippets_run_as_written(deployment: Deployment) -> None:  # noqa: F811
    blocks = snippets()
    assert len(blocks) == 8, "the walk-through's Python snippets"
    loop = asyncio.get_running_loop()
    transport = LoopBridge(httpx.ASGITransport(app=deployment.app), loop)

    def connected(**options: Any) -> Client:
        return Client(**{**options, "transport": transport})

    namespace: dict[str, Any] = {}
    secret = deployment.secrets["cli_demo_bank"]

    def run(block: str) -> None:
        code = block.replace('client_secret="acs_…"', f"client_secret={secret!r}")
        exec(compile(code, str(GUIDE), "exec"), namespace)

    # Step 1 imports ``Client``: give it the in-process transport before the client is built.
    first, *rest = blocks
    imports, _, building = first.partition("\nalliance = ")
    await asyncio.to_thread(run, imports)
    namespace["Client"] = connected
    await asyncio.to_thread(run, "alliance = " + building)
    for block in rest:
        claiming = "upload_claim" in block  # step 7: finance issues the statement before, then pays it
        if claiming:
            await issue_the_statement(deployment)
        await asyncio.to_thread(run, block)
        if claiming:
            await approve_and_pay(deployment, namespace["statement"].id)
    # What the guide's comments say it prints.
    fees = [(line.rule, line.amount_fen) for line in namespace["funded"].fee_lines + namespace["bought"].fee_lines]
    assert fees == [("funded_bounty", 150_000), ("bundle_fee", 100_000)]
    assert (namespace["opened"].referral_status, namespace["bought"].referral_status) == ("account_opened", "converted")
    assert "release_held_fees" in [job.job for job in namespace["moved"].jobs]
    assert namespace["statement"].lines_total_fen == 250_000
    assert (namespace["matching"].totals["matched"].items, namespace["matching"].open_items) == (2, 0)
    assert namespace["closed"].fee_lines == []


async def issue_the_statement(service: Deployment) -> None:
    finance = await service.token("cli_demo_finance")
    # The newest draft: the demo's history leaves its own last month to close as well.
    listed = (await service.http.get("/v1/finance/statements?status=draft&limit=100", headers=finance)).json()["data"]
    statement = max(listed, key=lambda s: s["period"])
    issued = await service.http.post(f"/v1/finance/statements/{statement['id']}/issue", headers=finance)
    assert issued.status_code == 200, issued.text


async def approve_and_pay(service: Deployment, statement_id: str) -> None:
    admin = await service.token("cli_demo_admin")
    officers = []
    for number in (2, 3):
        made = await service.http.post(
            "/v1/admin/clients",
            json={"name": f"finance officer {number}", "kind": "staff", "role": "finance"},
            headers={**admin, "Idempotency-Key": f"guide-finance-{number}"},
        )
        officers.append(await service.token(made.json()["id"], made.json()["client_secret"]))
    approved = await service.http.post(f"/v1/finance/statements/{statement_id}/approve", headers=officers[0])
    assert approved.status_code == 200, approved.text
    body = {"payment_ref": "GUIDE-PAY-1"}
    paid = await service.http.post(f"/v1/finance/statements/{statement_id}/mark-paid", json=body, headers=officers[1])
    assert paid.status_code == 200, paid.text
