"""Signing in with a local account (password and one-time code), signing out, and what a failure tells."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit.models import AuditEvent
from app.audit.service import Actor
from app.auth.scopes import StaffRole
from app.console.access import SESSION_COOKIE
from app.core.config import Settings
from app.core.database import Database
from app.main import create_app
from app.people import service as people
from app.people.models import ConsoleSession, Person
from app.people.schemas import NewPerson

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser on https (the console's cookies are Secure outside development)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as client:
        yield client


@pytest.fixture
async def li_wei(session: AsyncSession, settings: Settings) -> NewPerson:
    return await people.create_person(
        session,
        Actor.system("test"),
        settings,
        username="li.wei",
        display_name="李伟",
        role=StaffRole.finance,
        password=PASSWORD,
    )


def form_token(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the sign-in form carries a token"
    return found.group(1)


async def post_sign_in(
    browser: httpx.AsyncClient, username: str, password: str, code: str, next_url: str = "/console"
) -> httpx.Response:
    page = await browser.get("/console/sign-in", params={"next": next_url})
    assert page.status_code == 200
    fields = {"csrf_token": form_token(page), "username": username, "password": password, "code": code}
    return await browser.post("/console/sign-in", data={**fields, "next": next_url})


def code_of(person: NewPerson) -> str:
    return pyotp.TOTP(person.totp_secret).now()


async def audit_rows(session: AsyncSession, action: str) -> list[AuditEvent]:
    return list((await session.scalars(select(AuditEvent).where(AuditEvent.action == action))).all())


async def test_password_and_code_open_a_session_and_lead_to_the_page_asked_for(
    browser: httpx.AsyncClient, li_wei: NewPerson, session: AsyncSession
) -> None:
    response = await post_sign_in(browser, "li.wei", PASSWORD, code_of(li_wei), next_url="/console/statements?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/statements?x=1"
    cookie = next(value for value in response.headers.get_list("set-cookie") if value.startswith(SESSION_COOKIE))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite=lax", "path=/console"} <= flags
    home = await browser.get("/console")
    assert home.status_code == 303 and not home.headers["location"].startswith("/console/sign-in")
    [signed_in] = await audit_rows(session, "person.signed_in")
    assert signed_in.actor_id == "person:li.wei" and signed_in.details["display_name"] == "李伟"


@pytest.mark.parametrize("wrong", ["username", "password", "code"])
async def test_a_wrong_field_tells_nothing_of_which(
    browser: httpx.AsyncClient, li_wei: NewPerson, session: AsyncSession, wrong: str
) -> None:
    fields = {"username": "li.wei", "password": PASSWORD, "code": code_of(li_wei)}
    fields[wrong] = {"username": "wang.fang", "password": "guess", "code": "000000"}[wrong]
    if wrong == "code" and fields["code"] == code_of(li_wei):
        fields["code"] = "111111"
    response = await post_sign_in(browser, **fields)
    assert response.status_code == 401
    assert "用户名、密码或动态验证码不正确" in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert (await session.scalars(select(ConsoleSession))).all() == []
    [failed] = await audit_rows(session, "person.sign_in_failed")
    assert failed.actor_id == f"person:{fields['username']}"


async def test_a_one_time_code_is_good_once(browser: httpx.AsyncClient, li_wei: NewPerson) -> None:
    code = code_of(li_wei)
    assert (await post_sign_in(browser, "li.wei", PASSWORD, code)).status_code == 303
    browser.cookies.clear()
    assert (await post_sign_in(browser, "li.wei", PASSWORD, code)).status_code == 401


async def test_a_post_without_the_forms_token_is_refused(browser: httpx.AsyncClient, li_wei: NewPerson) -> None:
    response = await browser.post(
        "/console/sign-in", data={"username": "li.wei", "password": PASSWORD, "code": code_of(li_wei)}
    )
    assert response.status_code == 403 and SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_too_many_failures_lock_the_username_and_say_until_when(
    browser: httpx.AsyncClient, li_wei: NewPerson, session: AsyncSession
) -> None:
    for _ in range(5):  # ALLIANCE_CONSOLE_FAILURES_PER_USERNAME's default
        assert (await post_sign_in(browser, "li.wei", "guess", "000000")).status_code == 401
    locked = await post_sign_in(browser, "li.wei", PASSWORD, code_of(li_wei))
    assert locked.status_code == 429
    assert "失败次数过多，请 15 分钟后再试" in locked.text  # the window: 900 s
    assert [row.details["reason"] for row in await audit_rows(session, "person.sign_in_failed")][-1] == "throttled"
    assert (await session.scalars(select(ConsoleSession))).all() == []


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/console", "/v1/referrals"])
async def test_next_never_leads_off_the_console(browser: httpx.AsyncClient, li_wei: NewPerson, target: str) -> None:
    response = await post_sign_in(browser, "li.wei", PASSWORD, code_of(li_wei), next_url=target)
    assert response.headers["location"] == "/console"


async def test_sign_out_ends_the_session_and_needs_its_csrf_token(
    browser: httpx.AsyncClient, li_wei: NewPerson, session: AsyncSession
) -> None:
    await post_sign_in(browser, "li.wei", PASSWORD, code_of(li_wei))
    [row] = (await session.scalars(select(ConsoleSession))).all()
    refused = await browser.post("/console/sign-out", data={"csrf_token": "not-it"})
    assert refused.status_code == 403
    assert (await browser.get("/console")).headers["location"] != "/console/sign-in?next=/console"
    signed_out = await browser.post("/console/sign-out", data={"csrf_token": row.csrf_token})
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/console/sign-in"
    assert (await browser.get("/console")).headers["location"] == "/console/sign-in?next=/console"
    [audited] = await audit_rows(session, "person.signed_out")
    assert audited.actor_id == "person:li.wei" and audited.details["display_name"] == "李伟"


async def test_sign_out_everywhere_ends_every_session_of_the_person(
    app: FastAPI, browser: httpx.AsyncClient, li_wei: NewPerson, session: AsyncSession
) -> None:
    await post_sign_in(browser, "li.wei", PASSWORD, code_of(li_wei))
    session_token = browser.cookies[SESSION_COOKIE]
    other_device = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver", cookies={SESSION_COOKIE: session_token}
    )
    person = (await session.scalars(select(Person).where(Person.username == "li.wei"))).one()
    from app.people import sessions

    await sessions.open_session(session, app.state.settings, person.id, method="password")
    account = await browser.get("/console/account")
    assert account.status_code == 200 and "退出所有设备" in account.text
    csrf = re.search(r'action="/console/account/sign-out-everywhere".*?value="([^"]+)"', account.text, re.S)
    assert csrf
    response = await browser.post("/console/account/sign-out-everywhere", data={"csrf_token": csrf.group(1)})
    assert response.status_code == 303
    open_rows = (await session.scalars(select(ConsoleSession).where(ConsoleSession.revoked_at.is_(None)))).all()  # type: ignore[union-attr]
    assert open_rows == []
    assert (await other_device.get("/console")).headers["location"].startswith("/console/sign-in")
    await other_device.aclose()


async def test_too_many_failures_from_one_address_lock_it_whatever_the_username(
    settings: Settings, connection: AsyncConnection, li_wei: NewPerson
) -> None:
    strict = settings.model_copy(update={"console_failures_per_address": 3})
    app = create_app(strict, Database(connection, join_savepoint=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as browser:
        for name in ("wang.fang", "zhang.wei", "liu.yang"):
            assert (await post_sign_in(browser, name, "guess", "000000")).status_code == 401
        locked = await post_sign_in(browser, "li.wei", PASSWORD, code_of(li_wei))
    assert locked.status_code == 429 and "分钟后再试" in locked.text


async def test_in_development_the_cookie_is_not_secure_plain_http_on_localhost(
    settings: Settings, connection: AsyncConnection, li_wei: NewPerson
) -> None:
    development = settings.model_copy(update={"environment": "development"})
    app = create_app(development, Database(connection, join_savepoint=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as browser:
        response = await post_sign_in(browser, "li.wei", PASSWORD, code_of(li_wei))
    cookie = next(value for value in response.headers.get_list("set-cookie") if value.startswith(SESSION_COOKIE))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "secure" not in flags and {"httponly", "samesite=lax"} <= flags


async def test_the_password_is_an_argon2id_hash_and_the_totp_secret_is_sealed(
    li_wei: NewPerson, session: AsyncSession
) -> None:
    person = (await session.scalars(select(Person).where(Person.username == "li.wei"))).one()
    assert person.password_hash and person.password_hash.startswith("$argon2id$")
    assert PASSWORD not in person.password_hash
    assert person.sealed_totp_secret and li_wei.totp_secret.encode() not in person.sealed_totp_secret


async def test_an_htmx_request_without_a_session_is_sent_to_sign_in_whole(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/console/account", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/console/sign-in?next=/console/account"


async def test_the_sign_in_page_is_in_english_when_chosen(browser: httpx.AsyncClient) -> None:
    browser.cookies.set("console_lang", "en")
    page = await browser.get("/console/sign-in")
    assert "Sign in to the alliance console" in page.text and "One-time code" in page.text
