"""A partner's scorecard: one partner against the alliance and against its peers (partners of its kind)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Partner
from app.core.problems import NotFound
from app.core.tenancy import StaffProof, Tenant
from app.reports.client_structure import tier_counts
from app.reports.fees import MONEY, fees_row
from app.reports.funnel import FUNNEL_COUNTS
from app.reports.queries import ReportQuery, aggregate, anything_queued, cohorts_for, rows_of, sums
from app.reports.schemas import GroupBy, Scorecard
from app.reports.shaping import NO_GROUP, TIERS, Payload, header, payload, rate, summed
from app.reports.time_to_convert import no_timing, timings

# --- scorecard ----------------------------------------------------------------------------------------------------

# (name, label, unit, basis): volumes are compared with the average partner, the rest pooled.
_SCORECARD = (
    ("received", "Referrals received", "count", "per_partner"),
    ("eligible_rate", "Eligible / received", "rate", "pooled"),
    ("opened_rate", "Account opened / received", "rate", "pooled"),
    ("funded_rate", "Funded / received", "rate", "pooled"),
    ("conversion_rate", "Converted / received", "rate", "pooled"),
    ("median_days_to_open", "Median days to account opened", "days", "pooled"),
    ("median_days_to_fund", "Median days to funded", "days", "pooled"),
    ("median_days_to_convert", "Median days to converted", "days", "pooled"),
    ("p90_days_to_convert", "90th percentile days to converted", "days", "pooled"),
    ("funded", "Funded accounts", "count", "per_partner"),
    ("converted", "Converted referrals", "count", "per_partner"),
    ("assets_fen", "Assets brought in", "fen", "per_partner"),
    ("revenue_fen", "Revenue recorded", "fen", "per_partner"),
    ("fees_accrued_fen", "Fees accrued", "fen", "per_partner"),
    ("fees_paid_fen", "Fees paid", "fen", "per_partner"),
    ("cost_per_funded_account_fen", "Cost per funded account", "fen", "pooled"),
    ("revenue_to_fee_ratio", "Revenue / fees", "ratio", "pooled"),
    ("share_hnw_institutional", "HNW + institutional among converted", "rate", "pooled"),
)
_SCORE_MEASURES = sums((*FUNNEL_COUNTS, *MONEY, *(f"converted_{tier}" for tier in TIERS)))


def _scores(totals: Mapping[str, int], timing: Mapping[str, Any]) -> dict[str, float | None]:
    fees = fees_row(dict(NO_GROUP), totals)
    received = totals["received"]
    return {
        "received": received,
        "eligible_rate": rate(totals["eligible"], received),
        "opened_rate": rate(totals["account_opened"], received),
        "funded_rate": rate(totals["funded"], received),
        "conversion_rate": rate(totals["converted"], received),
        "median_days_to_open": timing["account_opened"]["median_days"],
        "median_days_to_fund": timing["funded"]["median_days"],
        "median_days_to_convert": timing["converted"]["median_days"],
        "p90_days_to_convert": timing["converted"]["p90_days"],
        "funded": totals["funded"],
        "converted": totals["converted"],
        "assets_fen": totals["assets_fen"],
        "revenue_fen": totals["revenue_fen"],
        "fees_accrued_fen": fees["fees_accrued_fen"],
        "fees_paid_fen": totals["fees_paid_fen"],
        "cost_per_funded_account_fen": fees["cost_per_funded_account_fen"],
        "revenue_to_fee_ratio": fees["revenue_to_fee_ratio"],
        "share_hnw_institutional": tier_counts({**totals, "converted_unknown": 0}, "converted")[
            "share_hnw_institutional"
        ],
    }


def narrowed(query: ReportQuery, partner: Partner) -> dict[str, ReportQuery]:
    """The alliance-wide query narrowed to whom the partner is compared with: itself, its peers, the alliance."""
    return {
        "partner": replace(query, filters=query.filters.model_copy(update={"partner_ids": [partner.id]})),
        "peers": replace(query, filters=query.filters.model_copy(update={"partner_kinds": [partner.kind]})),
        "alliance": query,
    }


def alliance_wide(query: ReportQuery) -> ReportQuery:
    """The query over every partner, ungrouped: what a scorecard compares within."""
    return replace(
        query, filters=query.filters.model_copy(update={"partner_ids": [], "partner_kinds": []}), group_by=()
    )


SCORE_DIMENSIONS = (GroupBy.partner, GroupBy.partner_kind)
SCORE_SUMS = tuple(_SCORE_MEASURES)


async def scored_partner(session: AsyncSession, partner_id: str) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound("No such partner.")
    return partner


def scorecard_of(
    query: ReportQuery,
    partner: Partner,
    per_partner_rows: Sequence[Mapping[str, Any]],
    timings_of: Mapping[str, Mapping[str, Any]],
) -> Payload:
    """The scorecard from the sums per partner (``SCORE_SUMS`` per ``SCORE_DIMENSIONS``, alliance-wide) and the
    timing over everything of each of ``narrowed``: volumes against the average partner with referrals in the
    period; rates, days and ratios pooled."""
    alliance = alliance_wide(query)
    per_partner = {row["partner_id"]: row for row in per_partner_rows}
    peers = [pid for pid, row in per_partner.items() if row["partner_kind"] == partner.kind]
    totals = {
        "partner": summed([per_partner[partner.id]] if partner.id in per_partner else [], SCORE_SUMS),
        "peers": summed((per_partner[pid] for pid in peers), SCORE_SUMS),
        "alliance": summed(per_partner.values(), SCORE_SUMS),
    }
    scores = {who: _scores(totals[who], timings_of[who]) for who in totals}
    counts = {"partner": 1, "peers": len(peers), "alliance": len(per_partner)}

    def compared(who: str, name: str, basis: str) -> float | None:
        value = scores[who][name]
        if who == "partner" or basis == "pooled" or value is None:
            return value
        return round(value / counts[who], 2) if counts[who] else None

    metrics = [
        {
            "name": name,
            "label": label,
            "unit": unit,
            "basis": basis,
            **{who: compared(who, name, basis) for who in ("partner", "alliance", "peers")},
        }
        for name, label, unit, basis in _SCORECARD
    ]
    return payload(
        "scorecard",
        {
            **header(alliance, []),
            "partner": {"id": partner.id, "name": partner.display_name, "kind": partner.kind},
            "partners_in_alliance": counts["alliance"],
            "partners_in_peers": counts["peers"],
            "metrics": metrics,
        },
    )


async def scorecard_payload(session: AsyncSession, staff: StaffProof, partner_id: str, query: ReportQuery) -> Payload:
    """One partner against the alliance and against its peers (partners of its kind) over the same period and
    filters: volumes against the average partner with referrals in the period; rates, days and ratios pooled."""
    partner = await scored_partner(session, partner_id)
    alliance = alliance_wide(query)
    queued = await anything_queued(session)
    source = cohorts_for(alliance, SCORE_DIMENSIONS)
    statement = aggregate(source, alliance, Tenant.everyone(staff), SCORE_DIMENSIONS, _SCORE_MEASURES, queued=queued)
    per_partner = await rows_of(session, statement, "received")
    timings_of = {}
    for who, narrowed_query in narrowed(alliance, partner).items():
        [rows] = await timings(session, Tenant.everyone(staff), narrowed_query, [()], queued)
        timings_of[who] = rows[0] if rows else no_timing()
    return scorecard_of(query, partner, per_partner, timings_of)


async def scorecard(session: AsyncSession, staff: StaffProof, partner_id: str, query: ReportQuery) -> Scorecard:
    """One partner against the alliance and against its peers over the same period and filters."""
    return Scorecard.model_validate(await scorecard_payload(session, staff, partner_id, query))
