"""The reports: funnel, time to convert, fees and value, client structure, a partner's scorecard.

Each report (one module each) asks ``app.reports.queries`` for sums per group (one or two statements), then works
out rates, percentiles and shares from them, with integers and exact fractions (``*_of``: pure functions of the
sums); the answer is validated once, as a whole. This module is their one entry point, and the staff's pack.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.tenancy import StaffProof, Tenant
from app.reports.client_structure import client_structure, client_structure_payload
from app.reports.fees import fees, fees_payload
from app.reports.funnel import funnel, funnel_payload, monthly_funnel
from app.reports.queries import ReportQuery
from app.reports.schemas import ReportPack
from app.reports.scorecard import scorecard, scorecard_payload
from app.reports.shaping import Payload
from app.reports.time_to_convert import percentile_cont, time_to_convert, time_to_convert_payload

__all__ = [
    "Payload",
    "client_structure",
    "client_structure_payload",
    "fees",
    "fees_payload",
    "funnel",
    "funnel_payload",
    "monthly_funnel",
    "pack",
    "percentile_cont",
    "scorecard",
    "scorecard_payload",
    "time_to_convert",
    "time_to_convert_payload",
]


async def pack(session: AsyncSession, staff: StaffProof, query: ReportQuery) -> ReportPack:
    """Every staff report over the same period, filters and grouping."""
    everyone = Tenant.everyone(staff)
    return ReportPack(
        funnel=await funnel(session, everyone, query),
        time_to_convert=await time_to_convert(session, everyone, query),
        fees=await fees(session, everyone, query),
        client_structure=await client_structure(session, everyone, query),
    )
