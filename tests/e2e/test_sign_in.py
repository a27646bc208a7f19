"""A person signs in with a password and a one-time code, sees the console, signs out and is back at sign-in."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Served, one_time_code, sign_in


def test_sign_in_with_password_and_code_then_sign_out(page: Page, served: Served) -> None:
    finance = served.person("finance")
    page.goto(served.url("/console/account"))
    expect(page).to_have_url(served.url("/console/sign-in?next=/console/account"))
    expect(page.get_by_role("heading", name="登录合作联盟管理台")).to_be_visible()

    sign_in(page, served, finance, "/console/account")
    expect(page).to_have_url(served.url("/console/account"))
    expect(page.get_by_role("heading", name=finance.display_name)).to_be_visible()
    expect(page.locator(".topbar .person")).to_contain_text(finance.display_name)
    expect(page.locator(".sidebar")).to_contain_text("结算单")  # finance's navigation
    expect(page.locator(".sidebar")).not_to_contain_text("接入凭证")  # an admin's page, not finance's
    cookie = next(item for item in page.context.cookies() if item["name"] == "console_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    page.get_by_role("button", name="退出登录").click()
    expect(page).to_have_url(served.url("/console/sign-in"))
    expect(page.locator(".flash")).to_contain_text("您已退出登录")
    page.goto(served.url("/console/account"))
    expect(page).to_have_url(served.url("/console/sign-in?next=/console/account"))


def test_a_wrong_code_keeps_the_person_out_and_says_so_without_saying_which(page: Page, served: Served) -> None:
    auditor = served.person("auditor")
    page.goto(served.url("/console/sign-in"))
    page.fill("#username", auditor.username)
    page.fill("#password", auditor.password)
    right = one_time_code(auditor)
    page.fill("#code", "000000" if right != "000000" else "111111")
    page.click("button[value=password]")
    expect(page.get_by_role("alert")).to_have_text("用户名、密码或动态验证码不正确。")
    expect(page.locator("#username")).to_have_value(auditor.username)
