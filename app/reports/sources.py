"""The sources a report sums: each a rollup, the stored facts it sums, the SQL of the queued facts recomputed,
and whose rows they are. ``app.reports.queries`` builds a report's statement from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.core.tenancy import Tenant
from app.reports import summary


class UnscopedSource(RuntimeError):
    """A partner's report reached a source whose rows belong to no partner: a report wired wrongly, refused."""


@dataclass(frozen=True, kw_only=True)
class Source:
    """What a report sums, in its parts, and whose rows they are: every source names the column that holds the
    partner a row belongs to (``tenant_column``, one of its key columns; the query builder filters every part on
    it for a partner), or says why its rows belong to no partner (``unscoped_reason``; a partner never reads it)."""

    rollup: str
    facts: str  # the stored facts the rollup sums
    fresh: str  # SQL of the facts of what is queued, recomputed now
    pending: str  # a condition on ``f``: queued
    month: str
    day: str
    key: tuple[str, ...]
    measures: dict[str, str]  # column -> what one fact row ``f`` contributes
    expand: str = ""  # joined to each fact row (one row per stage for durations)
    expanded: Mapping[str, str] = field(default_factory=dict)  # key columns taken from the join
    keep: str = "true"  # which joined rows count
    tenant_column: str | None = None
    unscoped_reason: str | None = None

    def __post_init__(self) -> None:
        if (self.tenant_column is None) == (self.unscoped_reason is None):
            raise TypeError(f"{self.rollup}: a report source takes a tenant_column or an unscoped_reason")
        if self.tenant_column is not None and self.tenant_column not in self.key:
            raise TypeError(f"{self.rollup}: the tenant column {self.tenant_column} is not a key column")

    def tenant_condition(self, tenant: Tenant) -> str | None:
        """The condition on ``f`` that keeps the tenant's rows (``:tenant_partner_id``), ``None`` for staff."""
        if tenant.partner_id is None:
            return None
        if self.tenant_column is None:
            raise UnscopedSource(f"{self.rollup} is not scoped to a partner: {self.unscoped_reason}")
        return f"f.{self.tenant_column} = :tenant_partner_id"

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.key, *self.measures)


_REFERRAL_PARTS: dict[str, Any] = {
    "facts": "report_referral_facts",
    "fresh": summary.referral_facts_sql(summary.ONLY_PENDING_REFERRALS),
    "pending": summary.ONLY_PENDING_REFERRALS.format(col="f.referral_id"),
    "month": "cohort_month",
    "day": "received_on",
    "tenant_column": "partner_id",
}
COHORTS = Source(rollup="report_cohorts", key=summary.KEY, measures=summary.COHORT_MEASURES, **_REFERRAL_PARTS)
PARTNER_MONTHS = Source(
    rollup="report_partner_months",
    key=("cohort_month", "partner_id"),
    measures=summary.COHORT_MEASURES,
    **_REFERRAL_PARTS,
)
DURATIONS = Source(
    rollup="report_durations",
    key=summary.DURATION_KEY,
    measures={"referrals": "1"},
    expand=summary.STAGE_ROWS,
    expanded={"stage": "s.stage", "days": "s.days"},
    keep="s.days IS NOT NULL",
    **_REFERRAL_PARTS,
)
ORGANIC = Source(
    rollup="report_organic",
    facts="report_organic_accounts",
    fresh=summary.organic_facts_sql(summary.ONLY_PENDING_ACCOUNTS),
    pending=summary.ONLY_PENDING_ACCOUNTS.format(col="f.client_ref"),
    month="opened_month",
    day="opened_on",
    key=summary.ORGANIC_KEY,
    measures=summary.ORGANIC_MEASURES,
    unscoped_reason="organic clients came through no partner: only the staff's client structure reads them",
)
SOURCES = (COHORTS, PARTNER_MONTHS, DURATIONS, ORGANIC)  # every source a report reads
