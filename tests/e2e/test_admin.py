"""An admin creates a partner client in the browser and reads its secret once (it works at the token endpoint, and no
later page shows it); an auditor reads that creation in the audit log, under the admin's name, and finds no
action anywhere."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Served, sign_in


def test_an_admin_creates_a_client_and_sees_its_secret_once(page: Page, served: Served) -> None:
    admin = served.person("admin")
    sign_in(page, served, admin, "/console/clients")
    expect(page.get_by_role("heading", name="接入凭证")).to_be_visible()

    page.get_by_role("link", name="新建接入凭证").click()
    page.get_by_role("link", name="合作机构凭证").click()
    page.fill("#name", "浏览器测试凭证")
    page.select_option("#partner_id", index=1)
    page.get_by_label("查看本机构的推荐、项目和转化漏斗").check()
    page.get_by_role("button", name="创建接入凭证").click()

    expect(page.get_by_text("请立即复制：密钥仅显示这一次，之后无法再查看")).to_be_visible()
    secret = page.locator("#client-secret").input_value()
    client_id = page.locator("#client-id").inner_text()
    assert secret.startswith("acs_") and client_id.startswith("cli_")
    assert secret not in page.url
    assert all(secret not in cookie["value"] for cookie in page.context.cookies())
    token = httpx.post(
        served.url("/oauth/token"), data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=10
    )
    assert token.status_code == 200 and token.json()["scope"] == "referrals:read"

    page.get_by_role("link", name="返回接入凭证列表").click()
    row = page.locator("tr", has_text=client_id)
    expect(row).to_contain_text("浏览器测试凭证")
    expect(row).to_contain_text("referrals:read")
    assert secret not in page.content()
    page.goto(served.url(f"/console/clients/{client_id}/rotate"))
    expect(page.get_by_text("将生成新密钥并仅显示一次")).to_be_visible()
    assert secret not in page.content()


def test_an_auditor_reads_the_audit_log_and_sees_no_action(page: Page, served: Served) -> None:
    auditor = served.person("auditor")
    sign_in(page, served, auditor, "/console/audit")
    expect(page.get_by_role("heading", name="审计日志")).to_be_visible()
    expect(page.locator(".sidebar")).not_to_contain_text("接入凭证")

    page.select_option("#action", "client.created")  # the demo created its clients: there is always one
    page.get_by_role("button", name="筛选").click()
    expect(page).to_have_url(served.url("/console/audit?action=client.created"))
    expect(page.locator(".chips")).to_contain_text("操作: client.created")
    expect(page.locator("#audit-results tbody tr").first).to_contain_text("client.created")
    expect(page.locator(".pager")).to_contain_text("共")
    page.locator("#audit-results details summary").first.click()
    expect(page.locator("#audit-results details pre").first).to_contain_text('"kind"')

    acting = "form[method=post]:not([action='/console/sign-out']):not([action='/console/language'])"
    assert page.locator(acting).count() == 0
    assert page.locator("#content button").count() == 1  # the filter's
    page.goto(served.url("/console/clients"))
    expect(page.get_by_role("heading", name="您没有访问此页面的权限")).to_be_visible()
    forbidden = page.request.post(served.url("/console/keys/rotate"), form={"csrf_token": "x"}, max_redirects=0)
    assert forbidden.status == 403
