"""接入凭证 in the console: an admin creates a client and reads its secret once, rotates a secret (the old one works
through the grace period), revokes after confirming; every change is audited with the person's name, and bad
forms say what to fix and change nothing."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit.models import AuditEvent
from app.audit.service import Actor
from app.auth import service as credentials
from app.auth.models import ClientSecret, ClientStatus, OAuthClient
from app.auth.scopes import PrincipalKind
from app.catalog.models import Partner, PartnerStatus
from tests.console.conftest import ConsoleAs

SECRET_FIELD = re.compile(r'id="client-secret"[^>]*value="([^"]+)"')
CLIENT_ID = re.compile(r'id="client-id">([^<]+)<')


async def _feed(session: AsyncSession, name: str = "feed") -> credentials.NewClient:
    return await credentials.create_client(session, Actor.system("test"), name=name, kind=PrincipalKind.back_office)


async def _token(client: httpx.AsyncClient, client_id: str, secret: str) -> int:
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    return response.status_code


async def _clients(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(OAuthClient)) or 0)


async def _events(session: AsyncSession, object_id: str) -> list[AuditEvent]:
    rows = await session.scalars(select(AuditEvent).where(col(AuditEvent.object_id) == object_id))
    return list(rows.all())


async def test_an_admin_creates_a_partner_client_and_reads_its_secret_once(
    console_as: ConsoleAs,
    session: AsyncSession,
    client: httpx.AsyncClient,
    make_partner: Callable[..., Awaitable[Partner]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    admin = await console_as("admin")
    partner = await make_partner(legal_name="龙江示范银行股份有限公司")
    form = await admin.client.get("/console/clients/new?kind=partner")
    assert form.status_code == 200 and "龙江示范银行股份有限公司" in form.text

    created = await admin.client.post(
        "/console/clients",
        data=admin.form(
            kind="partner",
            name="龙江银行接入",
            partner_id=partner.id,
            auth_method="client_secret_basic",
            scope=["referrals:write", "referrals:read"],
        ),
    )

    assert created.status_code == 200
    secret, client_id = SECRET_FIELD.search(created.text)[1], CLIENT_ID.search(created.text)[1]  # type: ignore[index]
    assert "仅显示这一次" in created.text
    assert created.headers["cache-control"] == "no-store"
    assert all(secret not in value for value in created.headers.values())
    stored = await session.get(OAuthClient, client_id)
    assert stored is not None and stored.partner_id == partner.id and stored.kind is PrincipalKind.partner
    assert sorted(stored.scopes) == ["referrals:read", "referrals:write"]
    hashes = (
        await session.scalars(select(col(ClientSecret.secret_hash)).where(ClientSecret.client_id == client_id))
    ).all()
    assert len(hashes) == 1 and secret not in hashes[0] and credentials.verify_secret(hashes[0], secret)
    assert await _token(client, client_id, secret) == 200
    [event] = [event for event in await _events(session, client_id) if event.action.startswith("client.")]
    assert (event.action, event.actor_id, event.actor_kind) == ("client.created", admin.actor_id, "staff")
    assert secret not in str(event.details)

    for later in ("/console/clients", f"/console/clients/{client_id}/rotate", f"/console/clients/{client_id}/revoke"):
        page = await admin.client.get(later)
        assert page.status_code == 200 and client_id in page.text and secret not in page.text
    logged = capsys.readouterr()
    assert secret not in logged.out + logged.err


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "back_office", "name": " ", "auth_method": "client_secret_basic"}, "请填写凭证名称"),
        ({"kind": "back_office", "name": "a\x00b", "auth_method": "client_secret_basic"}, "请填写凭证名称"),
        ({"kind": "back_office", "name": "x" * 201, "auth_method": "client_secret_basic"}, "请填写凭证名称"),
        ({"kind": "robot", "name": "feed", "auth_method": "client_secret_basic"}, "请选择凭证类型"),
        ({"kind": "partner", "name": "bank", "auth_method": "client_secret_basic"}, "请选择凭证所属的合作机构"),
        (
            {"kind": "partner", "name": "bank", "partner_id": "ptn_nobody", "auth_method": "client_secret_basic"},
            "该合作机构不存在或已终止合作",
        ),
        ({"kind": "staff", "name": "tool", "auth_method": "client_secret_basic"}, "请选择内部工具凭证的人员角色"),
        (
            {"kind": "back_office", "name": "feed", "auth_method": "client_secret_basic", "scope": "audit:read"},
            "部分权限超出了该类型允许的范围",
        ),
        (
            {
                "kind": "staff",
                "role": "auditor",
                "name": "t",
                "auth_method": "client_secret_basic",
                "scope": "finance:write",
            },
            "部分权限超出了该类型允许的范围",
        ),
        ({"kind": "back_office", "name": "feed", "auth_method": "private_key_jwt"}, "请选择认证方式"),
    ],
)
async def test_a_bad_client_form_says_what_to_fix_and_creates_nothing(
    console_as: ConsoleAs, session: AsyncSession, fields: dict[str, str], message: str
) -> None:
    admin = await console_as("admin")
    before = await _clients(session)

    response = await admin.client.post("/console/clients", data=admin.form(**fields))

    assert response.status_code == 422
    assert message in response.text
    assert await _clients(session) == before


async def test_a_client_of_a_terminated_partner_is_refused_on_the_page(
    console_as: ConsoleAs, session: AsyncSession, make_partner: Callable[..., Awaitable[Partner]]
) -> None:
    admin = await console_as("admin")
    partner = await make_partner()
    partner.status = PartnerStatus.terminated
    session.add(partner)
    await session.flush()
    before = await _clients(session)

    response = await admin.post(
        "/console/clients", kind="partner", name="bank", partner_id=partner.id, auth_method="client_secret_basic"
    )

    assert response.status_code == 422 and "该合作机构不存在或已终止合作" in response.text
    assert await _clients(session) == before


async def test_rotating_shows_the_new_secret_once_and_the_old_one_works_through_the_grace_period(
    console_as: ConsoleAs, session: AsyncSession, client: httpx.AsyncClient
) -> None:
    admin = await console_as("admin")
    feed = await _feed(session)
    assert feed.secret is not None
    confirm = await admin.client.get(f"/console/clients/{feed.client.id}/rotate")
    assert confirm.status_code == 200 and "将生成新密钥并仅显示一次" in confirm.text

    rotated = await admin.post(f"/console/clients/{feed.client.id}/rotate", grace_s="3600")

    assert rotated.status_code == 200
    secret = SECRET_FIELD.search(rotated.text)[1]  # type: ignore[index]
    assert secret != feed.secret and "原密钥在" in rotated.text
    assert await _token(client, feed.client.id, secret) == 200
    assert await _token(client, feed.client.id, feed.secret) == 200  # within the hour of grace
    [event] = [event for event in await _events(session, feed.client.id) if event.action == "client.secret_rotated"]
    assert event.actor_id == admin.actor_id and event.details["grace_s"] == 3600


@pytest.mark.parametrize("grace", ["", "12", "-1", "3600.0", "99999999999999999999"])
async def test_a_rotation_with_a_grace_period_not_offered_changes_nothing(
    console_as: ConsoleAs, session: AsyncSession, grace: str
) -> None:
    admin = await console_as("admin")
    feed = await _feed(session)

    response = await admin.post(f"/console/clients/{feed.client.id}/rotate", grace_s=grace)

    assert response.status_code == 422 and "原密钥何时失效" in response.text
    secrets = await session.scalar(select(func.count()).where(col(ClientSecret.client_id) == feed.client.id))
    assert secrets == 1


async def test_revoking_asks_for_a_confirmation_then_the_secret_stops_working(
    console_as: ConsoleAs, session: AsyncSession, client: httpx.AsyncClient
) -> None:
    admin = await console_as("admin")
    feed = await _feed(session)
    assert feed.secret is not None
    summary = await admin.client.get(f"/console/clients/{feed.client.id}/revoke")
    assert summary.status_code == 200 and "吊销后无法恢复" in summary.text and feed.client.id in summary.text

    unconfirmed = await admin.post(f"/console/clients/{feed.client.id}/revoke")
    assert unconfirmed.status_code == 422 and "请勾选确认" in unconfirmed.text
    await session.refresh(feed.client)
    assert feed.client.status is ClientStatus.active

    revoked = await admin.post(f"/console/clients/{feed.client.id}/revoke", confirm="yes")

    assert revoked.status_code == 303 and revoked.headers["location"] == "/console/clients"
    listing = await admin.client.get("/console/clients")
    assert "接入凭证已吊销，其令牌已失效" in listing.text
    await session.refresh(feed.client)
    assert feed.client.status is ClientStatus.revoked
    assert await _token(client, feed.client.id, feed.secret) != 200
    [event] = [event for event in await _events(session, feed.client.id) if event.action == "client.revoked"]
    assert event.actor_id == admin.actor_id
    again = await admin.post(f"/console/clients/{feed.client.id}/revoke", confirm="yes")
    assert again.status_code == 422 and "此接入凭证已吊销" in again.text
    assert len([e for e in await _events(session, feed.client.id) if e.action == "client.revoked"]) == 1


async def test_a_revoked_client_offers_no_rotation(console_as: ConsoleAs, session: AsyncSession) -> None:
    admin = await console_as("admin")
    feed = await _feed(session)
    await credentials.revoke_client(session, Actor.system("test"), feed.client.id)

    page = await admin.client.get(f"/console/clients/{feed.client.id}/rotate")
    posted = await admin.post(f"/console/clients/{feed.client.id}/rotate", grace_s="0")

    assert page.status_code == 200 and "此接入凭证已吊销" in page.text and 'name="grace_s"' not in page.text
    assert posted.status_code == 422
    assert await session.scalar(select(func.count()).where(col(ClientSecret.client_id) == feed.client.id)) == 1


async def test_the_list_filters_in_the_url_and_corrects_bad_values(
    console_as: ConsoleAs, session: AsyncSession
) -> None:
    admin = await console_as("admin")
    kept = await credentials.create_client(
        session, Actor.system("test"), name="kept feed", kind=PrincipalKind.back_office
    )
    gone = await credentials.create_client(
        session, Actor.system("test"), name="gone feed", kind=PrincipalKind.back_office
    )
    await credentials.revoke_client(session, Actor.system("test"), gone.client.id)

    revoked = await admin.client.get("/console/clients?kind=back_office&status=revoked")
    assert gone.client.id in revoked.text and kept.client.id not in revoked.text
    bad = await admin.client.get("/console/clients?kind=robot&status=revoked")
    assert bad.status_code == 303 and bad.headers["location"] == "/console/clients?status=revoked"
    beyond = await admin.client.get("/console/clients?status=revoked&page=9")
    assert beyond.status_code == 303 and beyond.headers["location"] == "/console/clients?status=revoked&page=1"
    nothing = await admin.client.get("/console/clients?kind=staff&status=revoked")
    assert "没有符合筛选条件的记录" in nothing.text


async def test_the_empty_fields_of_the_client_filter_stay_out_of_the_url(console_as: ConsoleAs) -> None:
    admin = await console_as("admin")
    response = await admin.client.get("/console/clients?kind=&status=revoked&page=1")
    assert response.status_code == 303 and response.headers["location"] == "/console/clients?status=revoked&page=1"


async def test_an_unknown_client_answers_the_404_page_and_changes_nothing(
    console_as: ConsoleAs, session: AsyncSession
) -> None:
    admin = await console_as("admin")
    before = await session.scalar(select(func.count()).select_from(AuditEvent))
    for url in ("/console/clients/cli_nobody/rotate", "/console/clients/cli_nobody/revoke"):
        page = await admin.client.get(url)
        posted = await admin.post(url, grace_s="0", confirm="yes")
        assert page.status_code == posted.status_code == 404
        assert "页面不存在" in page.text and "页面不存在" in posted.text
    assert await session.scalar(select(func.count()).select_from(AuditEvent)) == before
