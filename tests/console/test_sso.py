"""Single sign-on against a small identity provider run by the tests: a real authorization-code exchange with PKCE,
a signed ID token, state and nonce checked, a tampered token refused, a person without a mapped role refused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit.models import AuditEvent
from app.auth.scopes import StaffRole
from app.console.access import SESSION_COOKIE
from app.core.config import Settings
from app.core.database import Database
from app.main import create_app
from app.people.models import ConsoleSession, Person
from app.people.oidc import IdentityProvider
from tests.console.identity_provider import CLIENT_ID, CLIENT_SECRET, ISSUER, SmallIdentityProvider

ROLE_MAP = {
    "alliance-managers": "alliance_manager",
    "finance-officers": "finance",
    "admins": "admin",
    "auditors": "auditor",
}


@pytest.fixture
def idp() -> SmallIdentityProvider:
    return SmallIdentityProvider(
        person={"sub": "u-1001", "preferred_username": "zhao.min", "name": "赵敏", "groups": ["auditors", "staff"]}
    )


@pytest.fixture
def sso_app(settings: Settings, connection: AsyncConnection, idp: SmallIdentityProvider) -> FastAPI:
    configured = settings.model_copy(
        update={
            "oidc_issuer": ISSUER,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": __import__("pydantic").SecretStr(CLIENT_SECRET),
            "oidc_role_claim": "groups",
            "oidc_role_map": ROLE_MAP,
        }
    )
    app = create_app(configured, Database(connection, join_savepoint=True))
    app.state.identity_provider = IdentityProvider(configured, transport=httpx.ASGITransport(app=idp.app()))
    return app


@pytest.fixture
async def browser(sso_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sso_app), base_url="https://testserver") as client:
        yield client


@pytest.fixture
async def at_the_provider(idp: SmallIdentityProvider) -> AsyncIterator[httpx.AsyncClient]:
    """The browser's visit to the identity provider (another site: its own client)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=idp.app()), base_url=ISSUER) as client:
        yield client


async def to_provider(browser: httpx.AsyncClient, next_url: str = "/console") -> httpx.Response:
    page = await browser.get("/console/sign-in", params={"next": next_url})
    assert "使用统一身份认证登录" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    response = await browser.post(
        "/console/sign-in", data={"csrf_token": token.group(1), "action": "sso", "next": next_url}
    )
    assert response.status_code == 303 and response.headers["location"].startswith(f"{ISSUER}/authorize?")
    return response


async def back_from_provider(
    browser: httpx.AsyncClient, at_the_provider: httpx.AsyncClient, authorize: httpx.Response, **change: str
) -> httpx.Response:
    granted = await at_the_provider.get(authorize.headers["location"])
    assert granted.status_code == 302, granted.text
    callback = urlsplit(granted.headers["location"])
    assert callback.path == "/console/sso/callback"
    query = {name: values[0] for name, values in parse_qs(callback.query).items()} | change
    return await browser.get(callback.path, params=query)


async def audited(session: AsyncSession, action: str) -> list[AuditEvent]:
    return list((await session.scalars(select(AuditEvent).where(AuditEvent.action == action))).all())


async def test_a_person_signs_in_with_the_provider_and_is_created_with_the_mapped_role(
    browser: httpx.AsyncClient,
    at_the_provider: httpx.AsyncClient,
    idp: SmallIdentityProvider,
    session: AsyncSession,
) -> None:
    authorize = await to_provider(browser, "/console/audit")
    sent = parse_qs(urlsplit(authorize.headers["location"]).query)
    assert sent["code_challenge_method"] == ["S256"] and sent["nonce"][0] and sent["state"][0]
    response = await back_from_provider(browser, at_the_provider, authorize)
    assert response.status_code == 303 and response.headers["location"] == "/console/audit"
    assert SESSION_COOKIE in browser.cookies
    assert idp.token_requests and idp.token_requests[0]["grant_type"] == "authorization_code"
    person = (await session.scalars(select(Person).where(Person.sso_subject == f"{ISSUER} u-1001"))).one()
    assert (person.username, person.display_name, person.role) == ("zhao.min", "赵敏", StaffRole.auditor)
    assert person.password_hash is None
    [signed_in] = await audited(session, "person.signed_in")
    assert signed_in.actor_id == "person:zhao.min" and signed_in.details["method"] == "sso"
    # The next sign-in finds the same person, with the role the provider says now.
    idp.person["groups"] = ["finance-officers"]
    browser.cookies.clear()
    await back_from_provider(browser, at_the_provider, await to_provider(browser))
    session.expire_all()
    again = (await session.scalars(select(Person).where(Person.sso_subject == f"{ISSUER} u-1001"))).one()
    assert again.id == person.id and again.role is StaffRole.finance


async def _refused(browser: httpx.AsyncClient, session: AsyncSession, response: httpx.Response, reason: str) -> None:
    assert response.status_code in (401, 403)
    assert SESSION_COOKIE not in browser.cookies
    assert (await session.scalars(select(ConsoleSession))).all() == []
    [failed] = await audited(session, "person.sign_in_failed")
    assert failed.details["reason"].startswith(reason), failed.details


async def test_a_wrong_state_is_refused(
    browser: httpx.AsyncClient, at_the_provider: httpx.AsyncClient, session: AsyncSession
) -> None:
    authorize = await to_provider(browser)
    response = await back_from_provider(browser, at_the_provider, authorize, state="forged-state")
    await _refused(browser, session, response, "state_mismatch")


async def test_a_callback_without_the_login_cookie_is_refused(
    browser: httpx.AsyncClient, at_the_provider: httpx.AsyncClient, session: AsyncSession
) -> None:
    authorize = await to_provider(browser)
    browser.cookies.clear()  # another browser, handed the link
    response = await back_from_provider(browser, at_the_provider, authorize)
    await _refused(browser, session, response, "no_login_state")


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("nonce", "id_token_invalid"),
        ("signature", "id_token_invalid"),
        ("foreign_key", "id_token_invalid"),
        ("audience", "id_token_invalid"),
        ("expired", "id_token_invalid"),
    ],
)
async def test_an_id_token_that_does_not_hold_is_refused(
    browser: httpx.AsyncClient,
    at_the_provider: httpx.AsyncClient,
    idp: SmallIdentityProvider,
    session: AsyncSession,
    tamper: str,
    reason: str,
) -> None:
    idp.tamper = tamper
    response = await back_from_provider(browser, at_the_provider, await to_provider(browser))
    await _refused(browser, session, response, reason)
    assert (await session.scalars(select(Person))).all() == []


async def test_a_person_whose_claim_maps_to_no_role_is_refused(
    browser: httpx.AsyncClient, at_the_provider: httpx.AsyncClient, idp: SmallIdentityProvider, session: AsyncSession
) -> None:
    idp.person["groups"] = ["staff", "canteen"]
    response = await back_from_provider(browser, at_the_provider, await to_provider(browser))
    await _refused(browser, session, response, "no_mapped_role")
    assert "您的账户没有管理台角色" in response.text
    [failed] = await audited(session, "person.sign_in_failed")
    assert failed.actor_id == "person:zhao.min"
    assert (await session.scalars(select(Person))).all() == []


async def test_a_code_is_exchanged_once(
    browser: httpx.AsyncClient, at_the_provider: httpx.AsyncClient, session: AsyncSession
) -> None:
    authorize = await to_provider(browser)
    granted = await at_the_provider.get(authorize.headers["location"])
    callback = urlsplit(granted.headers["location"])
    assert (await browser.get(f"{callback.path}?{callback.query}")).status_code == 303
    browser.cookies.delete(SESSION_COOKIE)
    # The login cookie is gone with the first use; a replay of the same callback opens nothing.
    replay = await browser.get(f"{callback.path}?{callback.query}")
    assert replay.status_code == 401
