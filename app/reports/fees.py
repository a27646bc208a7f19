"""Fees and value: assets, revenue and fees of the referrals received in the period; cost per funded account."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.money import to_fen
from app.core.tenancy import Tenant
from app.reports.queries import ReportQuery, cohort_sums
from app.reports.schemas import FeesReport
from app.reports.shaping import Payload, grouped_payload, rate

MONEY = ("assets_fen", "revenue_fen", "fees_pending_fen", "fees_payable_fen", "fees_statemented_fen", "fees_paid_fen")
FEES_SUMS = (*MONEY, "funded", "converted")


def fees_row(group: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    money = {name: int(values[name] or 0) for name in MONEY}
    accrued = money["fees_pending_fen"] + money["fees_payable_fen"] + money["fees_statemented_fen"]
    accrued += money["fees_paid_fen"]
    funded = int(values["funded"] or 0)
    return {
        "group": group,
        "funded_accounts": funded,
        "converted": int(values["converted"] or 0),
        "fees_accrued_fen": accrued,
        "cost_per_funded_account_fen": to_fen(Decimal(accrued) / funded) if funded else None,
        "revenue_to_fee_ratio": rate(money["revenue_fen"], accrued),
        **money,
    }


def fees_of(query: ReportQuery, rows: Sequence[Mapping[str, Any]]) -> Payload:
    """The fees report from its sums per group (the ``FEES_SUMS`` of each group of ``query.group_by``)."""
    return grouped_payload("fees", query, rows, fees_row, FEES_SUMS)


async def fees_payload(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> Payload:
    """Assets, revenue and fees of the referrals received in the period; cost per funded account."""
    return fees_of(query, await cohort_sums(session, tenant, query, FEES_SUMS, "funded"))


async def fees(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> FeesReport:
    """Assets, revenue and fees of the referrals received in the period; cost per funded account."""
    return FeesReport.model_validate(await fees_payload(session, tenant, query))
