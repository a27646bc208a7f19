"""合作机构: the partners list (status, channel, referrals and conversion over the last twelve months, fees
recorded this month) with filters in the URL, and a partner's page: a stat strip and tabs (programs, referrals,
scorecard, statements, audit), each tab shown to the roles whose scope reads it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.catalog import service as catalog
from app.catalog.models import Partner, PartnerKind, PartnerStatus
from app.console import formatting
from app.core import business_time, clock
from app.core.compiled import ReadScope
from app.core.pagination import PageParams
from app.core.problems import Problem
from app.core.tenancy import Tenant
from app.fees import queues as fee_queues
from app.fees import statements as fee_statements
from app.referrals import service as referral_service
from app.reports import service as reports
from app.reports.queries import ReportQuery, default_period
from app.reports.schemas import FeesRow, FunnelRow, GroupBy, ReportFilters

PAGE_SIZE = 50
EVERYTHING = PageParams(limit=1000, cursor=None)  # the catalog is small; lists are cut into pages here
FILTERS = {"status": tuple(s.value for s in PartnerStatus), "kind": tuple(k.value for k in PartnerKind)}
# (tab, the scope that reads it): a person sees the tabs their role may read.
TABS = (
    ("programs", "catalog:read"),
    ("referrals", "attribution:manage"),
    ("scorecard", "reports:read"),
    ("statements", "finance:read"),
    ("audit", "catalog:read"),
)
TAB_LABELS = {
    "programs": "Programs",
    "referrals": "Referrals",
    "scorecard": "Scorecard",
    "statements": "Statements",
    "audit": "Audit trail",
}


def list_url(filters: dict[str, str], page: int = 1) -> str:
    fields: dict[str, Any] = dict(filters)
    if page > 1:
        fields["page"] = page
    return "/console/partners" + (f"?{urlencode(fields)}" if fields else "")


@dataclass(frozen=True)
class PartnerRow:
    partner: Partner
    received: int
    converted: int
    conversion_rate: float | None
    fees_this_month_fen: int


@dataclass
class PartnerList:
    filters: dict[str, str]
    rows: list[PartnerRow]
    page: int
    pages: int
    total: int
    any_partner: bool
    totals: dict[str, int] = field(default_factory=dict)

    def url(self, page: int | None = None) -> str:
        return list_url(self.filters, self.page if page is None else page)

    def without(self, name: str) -> str:
        return list_url({key: value for key, value in self.filters.items() if key != name})


def twelve_months() -> ReportQuery:
    start, end = default_period(business_time.today())
    return ReportQuery(start, end)


def checked_filters(raw: dict[str, str | None]) -> tuple[dict[str, str], bool]:
    """The filters that name a value; whether any named none (then the page redirects to the cleaned URL)."""
    kept = {name: value for name, value in raw.items() if value and value in FILTERS[name]}
    return kept, any(value and name not in kept for name, value in raw.items())


async def partner_list(session: AsyncSession, tenant: Tenant, filters: dict[str, str], page: int) -> PartnerList:
    partners = await catalog.list_partners(
        session,
        EVERYTHING,
        kind=PartnerKind(filters["kind"]) if "kind" in filters else None,
        status=PartnerStatus(filters["status"]) if "status" in filters else None,
    )
    partners.sort(key=lambda partner: (partner.status != PartnerStatus.active, partner.display_name))
    funnel = await reports.funnel(session, tenant, _grouped(twelve_months()))
    by_partner = {row.group.partner_id: row for row in funnel.rows}
    month = business_time.month_of(clock.now())
    fees = await fee_queues.fees_recorded_by_partner(session, month.start, month.end)
    rows = [_row(partner, by_partner.get(partner.id), fees.get(partner.id, 0)) for partner in partners]
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    any_partner = (
        bool(rows) or not filters or bool(await catalog.list_partners(session, PageParams(limit=1, cursor=None)))
    )
    totals = {
        "received": sum(row.received for row in rows),
        "converted": sum(row.converted for row in rows),
        "fees_this_month_fen": sum(row.fees_this_month_fen for row in rows),
    }
    return PartnerList(filters, shown, min(page, pages), pages, len(rows), any_partner, totals)


def _grouped(query: ReportQuery) -> ReportQuery:
    return ReportQuery(query.start, query.end, group_by=(GroupBy.partner,))


def _row(partner: Partner, funnel: FunnelRow | None, fees_fen: int) -> PartnerRow:
    if funnel is None:
        return PartnerRow(partner, 0, 0, None, fees_fen)
    counts = funnel.counts
    return PartnerRow(partner, counts.received, counts.converted, funnel.overall_rates.converted, fees_fen)


# --- one partner --------------------------------------------------------------------------------------------------


@dataclass
class PartnerPage:
    partner: Partner
    tab: str
    tabs: list[str]
    funnel: FunnelRow
    fees: FeesRow
    fees_this_month_fen: int
    content: dict[str, Any]


def tabs_for(scopes: frozenset[str]) -> list[str]:
    return [tab for tab, scope in TABS if scope in scopes]


async def find_partner(session: AsyncSession, partner_id: str) -> Partner | None:
    try:
        return await catalog.get_partner(session, partner_id)
    except Problem:
        return None


async def partner_page(
    session: AsyncSession, tenant: Tenant, staff: Any, partner: Partner, tab: str, tabs: list[str]
) -> PartnerPage:
    query = twelve_months()
    mine = ReportQuery(query.start, query.end, filters=ReportFilters(partner_ids=[partner.id]))
    funnel = (await reports.funnel(session, tenant, mine)).total
    fees = (await reports.fees(session, tenant, mine)).total
    month = business_time.month_of(clock.now())
    this_month = await fee_queues.fees_recorded_by_partner(session, month.start, month.end, partner.id)
    content = await _tab_content(session, tenant, staff, partner, tab, query)
    return PartnerPage(partner, tab, tabs, funnel, fees, this_month.get(partner.id, 0), content)


async def _tab_content(
    session: AsyncSession, tenant: Tenant, staff: Any, partner: Partner, tab: str, query: ReportQuery
) -> dict[str, Any]:
    if tab == "programs":
        programs = await catalog.list_programs(session, EVERYTHING, tenant, partner_id=partner.id)
        ids = [program.id for program in programs]
        return {
            "programs": programs,
            "in_force": await catalog.schedules_in_force(session, ids),
            "products": await catalog.program_products(session, ids),
        }
    if tab == "referrals":
        filters = referral_service.ReferralFilters(partner_id=partner.id)
        latest = await referral_service.list_referrals(session, tenant, PageParams(limit=50, cursor=None), filters)
        return {"referrals": latest[:50]}
    if tab == "scorecard":
        return {"scorecard": await reports.scorecard(session, staff, partner.id, query)}
    if tab == "statements":
        of_partner = fee_statements.StatementFilters(partner_id=partner.id)
        found = await fee_statements.list_statements(session, tenant, PageParams(limit=24, cursor=None), of_partner)
        return {"statements": found[:24]}
    first_page = PageParams(limit=50, cursor=None)
    events = await audit.list_events(ReadScope.joining(session), first_page, object_id=partner.id)
    return {"events": events[:50]}


def metric(unit: str, value: float | None) -> str:
    """A scorecard figure: counts and money may be averages per partner (decimals), written as the unit wants."""
    if value is None:
        return formatting.NOT_APPLICABLE
    if unit == "fen":
        return formatting.yuan(round(value))
    if unit == "rate":
        return formatting.percent(value)
    if unit == "days":
        return f"{value:.1f}"
    if unit == "ratio":
        return f"{value:.2f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else formatting.count(value)
