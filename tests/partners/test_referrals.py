"""Referrals through the SDK: typed create and read, idempotent retries, pagination, errors, backoff on 429."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from alliance_partner import (
    APIError,
    AsyncClient,
    BadRequestError,
    Client,
    ConflictError,
    Consent,
    EnterpriseSubject,
    IndividualSubject,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Referral,
    ReferralCreate,
    RetryPolicy,
    ServerError,
    TransportError,
    UnprocessableEntityError,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.scopes import PrincipalKind
from app.core.business_time import today as business_today
from app.referrals.models import Referral as ReferralRow
from tests.factories.referrals import PartnerDesk, credit_code, individual, mobile, national_id
from tests.partners.conftest import Credentials, Recorder, credentials_of, in_thread

REFERRALS = "/v1/referrals"


def vip(program_id: str, external_ref: str, **subject: Any) -> ReferralCreate:
    return ReferralCreate(
        program_id=program_id,
        external_ref=external_ref,
        kind="vip",
        subject=IndividualSubject(
            name=subject.get("name", "王建国"),
            mobile=subject.get("mobile", mobile()),
            national_id=subject.get("national_id", national_id()),
            declared_assets_band="1m_to_5m",
        ),
        consent=Consent(
            captured_at=datetime(2026, 11, 1, 10, tzinfo=UTC),
            channel="mobile_app",
            notice_version="2026-10",
            notice_sha256=Consent.hash_notice("notice text v2026-10"),
            recipient_name="示范证券股份有限公司",
            purpose="证券开户推荐",
            data_categories=["name", "mobile", "national_id"],
            retention_days=365,
            evidence_ref="sig-1",
        ),
    )


async def _count(session: AsyncSession, partner_id: str) -> int:
    statement = select(func.count()).select_from(ReferralRow).where(col(ReferralRow.partner_id) == partner_id)
    return int(await session.scalar(statement) or 0)


async def test_create_read_and_withdraw_with_typed_models(
    make_desk: Any, async_sdk: Callable[..., AsyncClient]
) -> None:
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    person = national_id(born=date(1994, 3, 2))
    created = await api.create_referral(vip(desk.program.id, "VIP-1", national_id=person))
    assert isinstance(created, Referral) and created.is_new is True
    assert created.status == "eligible" and created.kind == "vip" and created.external_ref == "VIP-1"
    assert isinstance(created.created_at, datetime) and created.created_at.tzinfo is not None
    assert created.subject.identifier is not None and person not in created.subject.identifier
    assert created.age_band == "25_35" and created.declared_assets_band == "1m_to_5m"

    again = await api.create_referral(vip(desk.program.id, "VIP-1", national_id=person))
    assert again.id == created.id and again.is_new is False

    assert (await api.get_referral(created.id)).id == created.id
    events = await api.list_referral_events(created.id)
    assert events[-1].to_status == "eligible" and all(isinstance(event.details, dict) for event in events)

    enterprise = await api.create_referral(
        {  # a plain dict works as well as the dataclasses
            "program_id": desk.program.id,
            "external_ref": "ENT-1",
            "kind": "enterprise",
            "subject": {"name": "黑土地农业有限公司", "credit_code": credit_code()},
        }
    )
    assert enterprise.kind == "enterprise" and enterprise.status == "eligible"
    as_model = ReferralCreate(
        program_id=desk.program.id,
        external_ref="ENT-2",
        kind="enterprise",
        subject=EnterpriseSubject(name="松花江制造有限公司", credit_code=credit_code()),
    )
    assert (await api.create_referral(as_model)).is_new

    withdrawn = await api.withdraw_referral(created.id, reason="consent_revoked", note="client asked")
    assert withdrawn.status == "withdrawn" and withdrawn.subject.erased and withdrawn.subject.name is None


async def test_an_idempotent_create_is_retried_with_the_same_key_after_a_lost_answer(
    make_desk: Any, session: AsyncSession, async_sdk: Callable[..., AsyncClient], recorder: Recorder
) -> None:
    """The service did the work and committed; the answer was lost (a 503 instead). The retry sends the same
    Idempotency-Key and body, and gets the first answer back: exactly one referral."""
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    recorder.fail("POST", REFERRALS, "lost")
    referral = await api.create_referral(vip(desk.program.id, "LOST-1"))
    first, second = recorder.sent("POST", REFERRALS)
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.content == second.content
    assert recorder.responses[-1].headers.get("idempotent-replayed") == "true"
    assert referral.is_new is True  # the first answer: 201
    assert await _count(session, desk.partner.id) == 1

    # A connection that never opened is retried too; each call has its own key.
    recorder.fail("POST", REFERRALS, httpx.ConnectError("connection refused"))
    await api.create_referral(vip(desk.program.id, "LOST-2"))
    third, fourth = recorder.sent("POST", REFERRALS)[2:]
    assert third.headers["idempotency-key"] == fourth.headers["idempotency-key"] != first.headers["idempotency-key"]
    assert await _count(session, desk.partner.id) == 2


async def test_an_idempotent_retry_from_the_sync_client(
    make_desk: Any, session: AsyncSession, sync_sdk: Callable[..., Client], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    api = sync_sdk(credentials_of(desk))
    recorder.fail("POST", REFERRALS, "lost", httpx.ReadTimeout("read timed out"))
    referral = await in_thread(lambda: api.create_referral(vip(desk.program.id, "SYNC-1"), idempotency_key="crm-1"))
    assert referral.external_ref == "SYNC-1"
    assert [request.headers["idempotency-key"] for request in recorder.sent("POST", REFERRALS)] == ["crm-1"] * 3
    assert await _count(session, desk.partner.id) == 1


async def test_a_non_idempotent_post_is_not_repeated_after_it_may_have_run(
    make_desk: Any, async_sdk: Callable[..., AsyncClient], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    referral = await api.create_referral(vip(desk.program.id, "W-1"))
    path = f"{REFERRALS}/{referral.id}/withdraw"
    recorder.fail("POST", path, "lost")
    with pytest.raises(ServerError) as failed:
        await api.withdraw_referral(referral.id, reason="client_request")
    assert failed.value.status == 503
    assert len(recorder.sent("POST", path)) == 1, "a withdrawal is not blindly repeated"
    assert (await api.get_referral(referral.id)).status == "withdrawn"  # it had run: read before acting again

    recorder.fail("POST", path, httpx.ReadTimeout("read timed out"))
    with pytest.raises(TransportError):
        await api.withdraw_referral(referral.id, reason="client_request")


async def test_lists_are_iterated_across_pages(
    make_desk: Any, async_sdk: Callable[..., AsyncClient], sync_sdk: Callable[..., Client], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    other: PartnerDesk = await make_desk(name="别家银行")
    api = async_sdk(credentials_of(desk))
    refs = [f"PAGE-{index}" for index in range(5)]
    for ref in refs:
        await api.create_referral(vip(desk.program.id, ref))
    await async_sdk(credentials_of(other)).create_referral(vip(other.program.id, "NOT-MINE"))

    listed = [referral.external_ref async for referral in api.list_referrals(limit=2)]
    assert listed == list(reversed(refs))  # newest first, another partner's never
    pages = [request for request in recorder.sent("GET", REFERRALS)]
    assert len(pages) == 3 and "cursor" not in pages[0].url.params and pages[1].url.params["cursor"]

    page_sizes = [len(page.data) async for page in api.list_referrals(limit=2).pages()]
    assert page_sizes == [2, 2, 1]
    found = await api.list_referrals(external_ref="PAGE-3").to_list()
    assert [referral.external_ref for referral in found] == ["PAGE-3"]
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert len(await api.list_referrals(status="eligible", created_from=since).to_list()) == 5
    assert await api.list_referrals(status="withdrawn").to_list() == []

    sync_api = sync_sdk(credentials_of(desk))
    sync_listed = await in_thread(lambda: [referral.external_ref for referral in sync_api.list_referrals(limit=3)])
    assert sync_listed == listed
    first_page = await in_thread(lambda: next(iter(sync_api.list_referrals(limit=4).pages())))
    resumed = await in_thread(lambda: sync_api.list_referrals(limit=4, cursor=first_page.next_cursor).to_list())
    assert [referral.external_ref for referral in first_page.data + resumed] == listed


async def test_problems_become_typed_exceptions(
    make_desk: Any, session: AsyncSession, async_sdk: Callable[..., AsyncClient], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    other: PartnerDesk = await make_desk(name="别家银行")
    api = async_sdk(credentials_of(desk))

    bad = individual(desk.program.id, "BAD-1")
    bad["subject"]["national_id"] = "230102199305171230"  # wrong check digit
    with pytest.raises(UnprocessableEntityError) as invalid:
        await api.create_referral(bad)
    error = invalid.value
    assert error.status == 422 and error.type == "/problems/validation-error"
    assert error.code == "validation-error" and error.request_id
    assert error.request_id == recorder.responses[-1].headers["x-request-id"]
    assert any(item["loc"][-1] == "national_id" for item in error.errors)
    assert "230102199305171230" not in str(error)

    await api.create_referral(vip(desk.program.id, "TAKEN-1"))
    with pytest.raises(ConflictError) as taken:
        await api.create_referral(vip(desk.program.id, "TAKEN-1"))  # another person under a used reference
    assert taken.value.status == 409 and taken.value.code == "external-ref-taken" and taken.value.request_id

    other_referral = await async_sdk(credentials_of(other)).create_referral(vip(other.program.id, "THEIRS"))
    with pytest.raises(NotFoundError) as missing:
        await api.get_referral(other_referral.id)  # another partner's referral: 404, like a missing one
    assert missing.value.code == "not-found" and missing.value.request_id
    with pytest.raises(UnprocessableEntityError) as closed:
        await api.create_referral(vip(other.program.id, "WRONG-PROGRAM"))
    assert closed.value.code == "program-not-available"

    with pytest.raises(BadRequestError) as cursor:
        await api.list_referrals(cursor="not-a-cursor").to_list()
    assert cursor.value.code == "invalid-cursor"

    created = await auth_service.create_client(
        session,
        Actor.system("test"),
        name="read only",
        kind=PrincipalKind.partner,
        partner_id=desk.partner.id,
        scopes=["referrals:read"],
    )
    reader = async_sdk(Credentials(created.client.id, created.secret))
    with pytest.raises(PermissionDeniedError) as scope:
        await reader.create_referral(vip(desk.program.id, "NO-SCOPE"))
    assert scope.value.code == "insufficient-scope"
    assert isinstance(scope.value, APIError)


async def test_429_is_retried_after_the_retry_after_it_names(
    make_desk: Any, session: AsyncSession, async_sdk: Callable[..., AsyncClient], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    created = await auth_service.create_client(
        session,
        Actor.system("test"),
        name="slow lane",
        kind=PrincipalKind.partner,
        partner_id=desk.partner.id,
        rate_limit_per_second=1,  # bursts of 2
    )
    api = async_sdk(Credentials(created.client.id, created.secret), retry=RetryPolicy(max_retries=3))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await anyio.sleep(seconds)

    api._sleep = sleep  # type: ignore[method-assign]
    started = time.monotonic()
    for _ in range(10):  # the burst is 2 calls; a slow machine refills the bucket a little meanwhile
        await api.get_program(desk.program.id)
        if slept:
            break
    statuses = [response.status_code for response in recorder.responses if response.request.method == "GET"]
    assert statuses[-2:] == [429, 200] and statuses.count(429) == 1  # every call succeeded in the end
    retry_after = float(next(r for r in recorder.responses if r.status_code == 429).headers["retry-after"])
    assert slept == [retry_after] and time.monotonic() - started >= retry_after

    patient = async_sdk(
        Credentials(created.client.id, created.secret), retry=RetryPolicy(max_retries=3, retry_after_max=0)
    )
    with pytest.raises(RateLimitError) as limited:  # a wait longer than the policy accepts is not waited for
        for _ in range(10):
            await patient.get_program(desk.program.id)
    assert limited.value.retry_after is not None and limited.value.retry_after >= 1


async def test_5xx_and_connection_errors_back_off_then_give_up(
    make_desk: Any, async_sdk: Callable[..., AsyncClient], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk), retry=RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.02))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    api._sleep = sleep  # type: ignore[method-assign]
    path = f"/v1/programs/{desk.program.id}"
    recorder.fail("GET", path, httpx.Response(502), httpx.ConnectError("refused"))
    assert (await api.get_program(desk.program.id)).id == desk.program.id
    assert len(slept) == 2 and all(0 <= delay <= 0.02 for delay in slept)

    recorder.fail("GET", path, *[httpx.Response(500, json={"title": "Internal", "request_id": "r-1"})] * 3)
    with pytest.raises(ServerError) as failed:
        await api.get_program(desk.program.id)
    assert failed.value.status == 500 and failed.value.request_id == "r-1"
    assert len(recorder.sent("GET", path)) == 3 + 3  # 1 + 2 retries each time


def test_consent_needs_an_aware_time_and_hashes_the_notice() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Consent(
            captured_at=datetime(2026, 11, 1, 10),
            channel="mobile_app",
            notice_version="v",
            notice_sha256="0" * 64,
            recipient_name="r",
            purpose="p",
            data_categories=["name"],
            retention_days=1,
            evidence_ref="e",
        )
    assert Consent.hash_notice("通知") == hashlib.sha256("通知".encode()).hexdigest()


async def test_the_partners_own_funnel_and_timing_reports(
    make_desk: Any, async_sdk: Callable[..., AsyncClient], sync_sdk: Callable[..., Client], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    other: PartnerDesk = await make_desk(name="别家银行")
    api = async_sdk(credentials_of(desk))
    for ref in ("FUN-1", "FUN-2"):
        await api.create_referral(vip(desk.program.id, ref))
    await async_sdk(credentials_of(other)).create_referral(vip(other.program.id, "NOT-MINE"))

    today = business_today()
    funnel = await api.get_funnel_report(start=today - timedelta(days=1), end=today, group_by=["program"])
    assert funnel.total.counts.received == 2 and funnel.total.counts.eligible == 2  # never another partner's
    assert [row.group.program_id for row in funnel.rows] == [desk.program.id]
    assert funnel.period.end == today and funnel.group_by == ["program"]
    query = recorder.sent("GET", "/v1/reports/funnel")[-1].url.params
    assert query["from"] == (today - timedelta(days=1)).isoformat() and query.get_list("group_by") == ["program"]

    sync_api = sync_sdk(credentials_of(desk))
    timing = await in_thread(lambda: sync_api.get_time_to_convert_report(kind=["vip"]))
    assert timing.total.account_opened.referrals == 0 and timing.total.account_opened.median_days is None
