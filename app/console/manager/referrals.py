"""推荐查询: find a person's referrals by ID number, credit code or mobile, through the blind indexes (the number
is hashed, never stored or logged); a referral's page with its timeline, masked; and unmasking with a stated
purpose (``pii:unmask``, audited by ``app.referrals.service.unmask_referral``).

The search is a posted form, not a query string: an ID number in a URL would end up in access logs and browser
history. A referral's page is addressed by its id (``?referral=``), which is no personal data.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.catalog import service as catalog
from app.core.pagination import PageParams
from app.core.problems import Problem
from app.core.tenancy import Tenant
from app.privacy.crypto import BlindIndex, DataCipher
from app.privacy.identity import checked_credit_code, checked_national_id
from app.referrals import oversight, registry, service
from app.referrals.models import Referral
from app.referrals.schemas import normalise_mobile

MAX_RESULTS = 100
PURPOSE_MIN, PURPOSE_MAX = 3, 300


@dataclass(frozen=True)
class SearchKey:
    kind: str  # national_id | credit_code | mobile
    national_id: str | None = None
    credit_code: str | None = None
    mobile: str | None = None


def search_key(raw: str | None) -> SearchKey | None:
    """What the person typed, read as a mobile number, a resident ID number or a credit code (checked)."""
    value = (raw or "").strip()
    if not value or len(value) > 40:
        return None
    try:
        return SearchKey("mobile", mobile=normalise_mobile(value))
    except ValueError:
        pass
    try:
        return SearchKey("national_id", national_id=checked_national_id(value))
    except ValueError:
        pass
    try:
        return SearchKey("credit_code", credit_code=checked_credit_code(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class Found:
    referral: Referral
    partner_name: str
    program_name: str


async def search(session: AsyncSession, tenant: Tenant, index: BlindIndex, key: SearchKey) -> list[Found]:
    """The referrals of the person (every partner's), newest first, with their partners' and programs' names."""
    filters = service.ReferralFilters(
        identity_hash=registry.search_identity_hash(index, key.national_id, key.credit_code),
        mobile_hash=registry.search_mobile_hash(index, key.mobile),
    )
    referrals = await service.list_referrals(session, tenant, PageParams(limit=MAX_RESULTS, cursor=None), filters)
    referrals = referrals[:MAX_RESULTS]
    everything = PageParams(limit=1000, cursor=None)  # the catalog is small: two queries, not one per referral
    partners = {partner.id: partner.display_name for partner in await catalog.list_partners(session, everything)}
    programs = {program.id: program.name for program in await catalog.list_programs(session, everything, tenant)}
    return [
        Found(referral, partners.get(referral.partner_id, "—"), programs.get(referral.program_id, "—"))
        for referral in referrals
    ]


async def referral_page(session: AsyncSession, referral_id: str) -> oversight.StaffReferral | None:
    try:
        return await oversight.staff_referral(session, referral_id)
    except Problem:
        return None


def checked_purpose(purpose: str | None) -> str | None:
    text = (purpose or "").strip()
    return text if PURPOSE_MIN <= len(text) <= PURPOSE_MAX else None


async def unmask(
    session: AsyncSession, actor: Actor, cipher: DataCipher, referral_id: str, purpose: str
) -> dict[str, str | None]:
    """The personal data in clear, once; the read is in the audit log with the person and the purpose."""
    return await service.unmask_referral(session, actor, referral_id, cipher, purpose)
