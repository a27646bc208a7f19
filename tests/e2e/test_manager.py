"""The alliance manager in a browser: signs in as the demo's manager, reads the overview (cards and charts drawn
from the alliance's referrals), and resolves an attribution conflict in the inbox.

So that the test stands on its own whatever history the demo holds, it first makes one conflict of its own
through the partner API, as two partners would: the demo bank and the demo insurer refer the same new person.
"""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Served, sign_in
from tests.factories.referrals import individual, national_id


def _token(served: Served, client_id: str) -> str:
    client = next(item for item in served.clients if item["client_id"] == client_id)
    assert client["client_secret"], "the demo prints its clients' secrets on the run that creates them"
    answer = httpx.post(
        served.url("/oauth/token"),
        data={"grant_type": "client_credentials"},
        auth=(client_id, str(client["client_secret"])),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _refer(served: Served, client_id: str, program_id: str, person: str, reference: str) -> dict[str, object]:
    body = individual(program_id, external_ref=reference, national_id=person)
    answer = httpx.post(
        served.url("/v1/referrals"),
        json=body,
        headers={"Authorization": f"Bearer {_token(served, client_id)}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


def test_the_manager_reads_the_overview_and_resolves_a_conflict(page: Page, served: Served) -> None:
    person = national_id()
    tag = uuid.uuid4().hex[:8].upper()
    holder = _refer(served, "cli_demo_bank", "prg_demo_bank_vip", person, f"E2E-BANK-{tag}")
    later = _refer(served, "cli_demo_insurer", "prg_demo_insurer_bundle", person, f"E2E-INS-{tag}")
    assert (holder["status"], later["status"]) == ("eligible", "duplicate")

    manager = served.person("alliance_manager")
    sign_in(page, served, manager, "/console/overview")
    expect(page).to_have_url(served.url("/console/overview"))
    expect(page.get_by_role("heading", name="总览")).to_be_visible()
    received = int(page.locator('[data-metric="Referrals received"]').inner_text().replace(",", ""))
    assert received >= 2
    # Each chart is drawn, in Chinese, and the trend's months add up to the card.
    for name in ("转化漏斗", "分渠道月度推荐数", "分渠道月度转化数", "分渠道月度计提推荐费（元）", "转化客户年龄分布"):
        expect(page.locator(f'svg[aria-label="{name}"]')).to_have_count(1)
    expect(page.locator("svg[aria-label='分渠道月度推荐数']")).to_contain_text("银证合作")
    total = page.locator("table.trend tfoot td").last.inner_text()
    assert int(total.replace(",", "")) == received

    # The period picker (htmx swaps the region; the URL keeps the period).
    page.select_option("#period", "3m")
    expect(page).to_have_url(re.compile(r"/console/overview\?period=3m$"))

    page.locator("a.task-count").first.click()  # the open-conflicts count on the tasks card
    expect(page).to_have_url(re.compile(r"/console/conflicts\?tab=open"))
    row = page.locator("tr[data-conflict]", has_text=f"E2E-INS-{tag}")
    expect(row).to_have_count(1)
    expect(row).not_to_contain_text(person)  # the identity is masked
    row.get_by_role("link", name="处理").click()
    sheet = page.locator("#conflict-sheet")
    expect(sheet).to_contain_text(f"E2E-BANK-{tag}")
    sheet.get_by_label("原因（记入审计日志）").fill("银行先推荐，维持原归因")
    sheet.get_by_role("button", name="提交处理").click()
    expect(page.locator(".flash")).to_contain_text("已维持原归因")

    page.goto(served.url("/console/conflicts?tab=resolved"))
    resolved = page.locator("tr[data-conflict]", has_text=f"E2E-INS-{tag}")
    expect(resolved).to_contain_text("维持原归因")
    page.screenshot(path="/tmp/shots/manager-e2e-resolved.png", full_page=True)
