"""The funnel: referrals received in the period, the stages they reached and the outcomes they are in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.tenancy import Tenant
from app.reports.queries import ReportQuery, cohort_sums
from app.reports.schemas import FunnelCounts, FunnelReport, GroupBy
from app.reports.shaping import Payload, grouped_payload, rate

FUNNEL_STAGES = ("eligible", "account_opened", "funded", "converted")
FUNNEL_COUNTS = tuple(FunnelCounts.model_fields)


def funnel_row(group: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    counts = {name: int(values[name] or 0) for name in FUNNEL_COUNTS}
    previous = ("received", *FUNNEL_STAGES)
    return {
        "group": group,
        "counts": counts,
        "stage_rates": {stage: rate(counts[stage], counts[previous[i]]) for i, stage in enumerate(FUNNEL_STAGES)},
        "overall_rates": {stage: rate(counts[stage], counts["received"]) for stage in FUNNEL_STAGES},
    }


def funnel_of(query: ReportQuery, rows: Sequence[Mapping[str, Any]]) -> Payload:
    """The funnel from its sums per group (the ``FUNNEL_COUNTS`` of each group of ``query.group_by``)."""
    return grouped_payload("funnel", query, rows, funnel_row, FUNNEL_COUNTS)


async def funnel_payload(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> Payload:
    """Referrals received in the period, the stages they reached and the outcomes they are in, per group."""
    return funnel_of(query, await cohort_sums(session, tenant, query, FUNNEL_COUNTS, "received"))


async def funnel(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> FunnelReport:
    """Referrals received in the period, the stages they reached and the outcomes they are in, per group."""
    return FunnelReport.model_validate(await funnel_payload(session, tenant, query))


async def monthly_funnel(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> FunnelReport:
    """The funnel by month alone, under the same filters: the trend the charts draw."""
    return await funnel(session, tenant, replace(query, group_by=(GroupBy.month,)))
