"""总览: what the alliance brought in over one period, against the period before (环比).

Every figure comes from the reports (``app.reports.service``) over the same period, so that the cards, the
funnel, the charts and the lists they link to agree: the trend's months add up to the cards, the funnel's first
step is the cards' referrals received. The view model is plain data; ``charts_of`` draws it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import PartnerKind
from app.console import charts, formatting
from app.console.manager.periods import Period
from app.core.tenancy import Tenant
from app.fees import queues as fee_queues
from app.referrals import oversight
from app.referrals.models import ConflictStatus
from app.reports import service as reports
from app.reports.queries import ReportQuery
from app.reports.schemas import FeesRow, FunnelRow, GroupBy, StructureRow
from app.risk import service as risk
from app.risk.schemas import CaseStatus

# The alliance channels of the seed, by the kind of partner that serves each.
CHANNELS: tuple[tuple[PartnerKind, str], ...] = (
    (PartnerKind.bank, "Bank-securities"),
    (PartnerKind.insurer, "Insurance-securities"),
    (PartnerKind.corporate, "Industry alliance"),
)
CHANNEL_COLOURS = {PartnerKind.bank: "#1d4ed8", PartnerKind.insurer: "#16a34a", PartnerKind.corporate: "#ea580c"}
AGE_LABELS = {
    "under_25": "Under 25",
    "25_35": "25-35",
    "36_45": "36-45",
    "46_55": "46-55",
    "over_55": "Over 55",
    "none": "No age (enterprise)",
}
TARGET_BAND = "25_35"


def figure(unit: str, value: float | None) -> str:
    """A figure as the cards write it: counts with separators, CNY from fen, rates in percent, ratios as x.xx."""
    if value is None:
        return formatting.NOT_APPLICABLE
    if unit == "fen":
        return formatting.yuan(int(value))
    if unit == "rate":
        return formatting.percent(value)
    if unit == "ratio":
        return f"{value:.2f}"
    return formatting.count(int(value))


def change_shown(headline: Headline, t: Callable[..., str]) -> str:
    """环比 as written on a card: ``+12.5%`` for counts and money, ``+1.2 pp`` for rates, ``+0.10`` for ratios."""
    change = headline.change
    if change is None:
        return formatting.NOT_APPLICABLE
    if headline.unit == "rate":
        return t("{points} pp", points=f"{change * 100:+.1f}")
    if headline.unit == "ratio":
        return f"{change:+.2f}"
    return f"{change * 100:+.1f}%"


@dataclass(frozen=True)
class Headline:
    """A card: this period's figure, the previous period's, and what it counts (the tooltip)."""

    label: str
    unit: str  # count | fen | rate | ratio
    value: float | None
    previous: float | None
    explains: str
    lower_is_better: bool = False

    @property
    def direction(self) -> str:
        """``up`` (green) when the change is good news, ``down`` (red) when it is bad: a cost that rises is bad."""
        change = self.change
        if not change:
            return ""
        return "up" if (change > 0) != self.lower_is_better else "down"

    @property
    def shown(self) -> str:
        return figure(self.unit, self.value)

    @property
    def previous_shown(self) -> str:
        return figure(self.unit, self.previous)

    @property
    def change(self) -> float | None:
        """Counts and money: the relative change; rates: the change in percentage points (as a fraction)."""
        if self.value is None or self.previous is None:
            return None
        if self.unit in ("rate", "ratio"):
            return self.value - self.previous
        if self.previous == 0:
            return None
        return (self.value - self.previous) / self.previous


@dataclass(frozen=True)
class Step:
    stage: str
    label: str
    count: int
    rate: float | None  # of the step before


@dataclass(frozen=True)
class ChannelMonths:
    kind: PartnerKind
    label: str
    received: list[int]
    converted: list[int]
    fees_fen: list[int]


@dataclass(frozen=True)
class Task:
    label: str
    count: int
    href: str
    scope: str  # who may open the queue; others see the count without the link
    explains: str
    handled_by: str


@dataclass
class Overview:
    period: Period
    previous: Period
    headlines: list[Headline]
    funnel: list[Step]
    months: list[str]
    channels: list[ChannelMonths]
    structure: StructureRow
    tasks: list[Task] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.funnel[0].count == 0

    @property
    def month_totals(self) -> list[int]:
        """Referrals received per month, every channel: adds up to the funnel's first step."""
        return [sum(channel.received[i] for channel in self.channels) for i in range(len(self.months))]


FUNNEL_STEPS = (
    ("received", "Received"),
    ("eligible", "Eligible"),
    ("account_opened", "Account opened"),
    ("funded", "Funded"),
    ("converted", "Converted"),
)


def funnel_steps(row: FunnelRow) -> list[Step]:
    counts = row.counts.model_dump()
    rates = row.stage_rates.model_dump()
    return [Step(stage, label, counts[stage], rates.get(stage)) for stage, label in FUNNEL_STEPS]


def headlines(funnel: tuple[FunnelRow, FunnelRow], fees: tuple[FeesRow, FeesRow]) -> list[Headline]:
    (now, before), (money, money_before) = funnel, fees
    return [
        Headline("Referrals received", "count", now.counts.received, before.counts.received, "Received in the period"),
        Headline(
            "Accounts opened", "count", now.counts.account_opened, before.counts.account_opened, "Opened, of those"
        ),
        Headline("Funded accounts", "count", now.counts.funded, before.counts.funded, "Funded, of those"),
        Headline("Converted", "count", now.counts.converted, before.counts.converted, "Converted, of those"),
        Headline(
            "Conversion rate",
            "rate",
            now.overall_rates.converted,
            before.overall_rates.converted,
            "Converted / received",
        ),
        Headline(
            "Fees accrued",
            "fen",
            money.fees_accrued_fen,
            money_before.fees_accrued_fen,
            "Fee lines of these referrals, reversed ones excluded",
        ),
        Headline(
            "Cost per funded account",
            "fen",
            money.cost_per_funded_account_fen,
            money_before.cost_per_funded_account_fen,
            "Fees accrued / funded accounts",
            lower_is_better=True,
        ),
        Headline(
            "Revenue / fees",
            "ratio",
            money.revenue_to_fee_ratio,
            money_before.revenue_to_fee_ratio,
            "Revenue recorded for these clients / fees accrued",
        ),
    ]


def channel_months(months: list[str], funnel_rows: list[FunnelRow], fees_rows: list[FeesRow]) -> list[ChannelMonths]:
    """Each channel's figures per month of the period, zero where it had none (every month is drawn)."""
    position = {month: index for index, month in enumerate(months)}
    channels = []
    for kind, label in CHANNELS:
        received, converted, fees_fen = [0] * len(months), [0] * len(months), [0] * len(months)
        for row in funnel_rows:
            if row.group.partner_kind == kind and row.group.month in position:
                received[position[row.group.month]] += row.counts.received
                converted[position[row.group.month]] += row.counts.converted
        for money in fees_rows:
            if money.group.partner_kind == kind and money.group.month in position:
                fees_fen[position[money.group.month]] += money.fees_accrued_fen
        channels.append(ChannelMonths(kind, label, received, converted, fees_fen))
    return channels


async def tasks(session: AsyncSession) -> list[Task]:
    """The queues waiting for someone, each linked pre-filtered."""
    open_conflicts = await oversight.count_conflicts(session, ConflictStatus.open)
    open_cases = await risk.count_cases(session, risk.CaseFilters(status=CaseStatus.open))
    statements = await fee_queues.statements_by_status(session)
    return [
        Task(
            "Open conflicts",
            open_conflicts,
            "/console/conflicts?tab=open",
            "attribution:manage",
            "Later referrals of a person another partner holds, waiting for a decision",
            "Handled by alliance managers",
        ),
        Task(
            "Open risk cases",
            open_cases,
            "/console/risk-cases?tab=open",
            "risk:read",
            "Partners under review: their fee lines are held until the case is closed",
            "Handled by alliance managers",
        ),
        Task(
            "Statements awaiting approval",
            statements.get("issued", 0),
            "/console/statements?status=issued",
            "finance:read",
            "Issued statements that finance has not approved yet",
            "Handled by finance",
        ),
        Task(
            "Disputed statements",
            statements.get("disputed", 0),
            "/console/statements?status=disputed",
            "finance:read",
            "Statements whose partner disputed lines",
            "Handled by finance",
        ),
    ]


def _query(period: Period, **changes: Any) -> ReportQuery:
    return replace(ReportQuery(period.start, period.end), **changes)


async def overview(session: AsyncSession, tenant: Tenant, period: Period) -> Overview:
    """The page's figures: this period and the one before, by month and channel, the client structure."""
    previous = period.previous()
    now, before = _query(period), _query(previous)
    funnel_now = await reports.funnel(session, tenant, now)
    funnel_before = await reports.funnel(session, tenant, before)
    fees_now = await reports.fees(session, tenant, now)
    fees_before = await reports.fees(session, tenant, before)
    by_month = _query(period, group_by=(GroupBy.month, GroupBy.partner_kind))
    trend = await reports.funnel(session, tenant, by_month)
    trend_fees = await reports.fees(session, tenant, by_month)
    structure = await reports.client_structure(session, tenant, now)
    months = period.month_keys
    return Overview(
        period=period,
        previous=previous,
        headlines=headlines((funnel_now.total, funnel_before.total), (fees_now.total, fees_before.total)),
        funnel=funnel_steps(funnel_now.total),
        months=months,
        channels=channel_months(months, trend.rows, trend_fees.rows),
        structure=structure.total,
        tasks=await tasks(session),
    )


def age_bars(structure: StructureRow) -> list[tuple[str, str, int, int]]:
    """(band, label, received, converted) per age band, enterprises last."""
    return [
        (band, label, structure.received_by_age.get(band, 0), structure.converted_by_age.get(band, 0))
        for band, label in AGE_LABELS.items()
    ]


def charts_of(view: Overview, t: Any) -> dict[str, Markup]:
    """The overview's charts, in the reader's language."""
    months = view.months
    colours = CHANNEL_COLOURS
    received = [charts.Series(t(c.label), c.received, colours[c.kind]) for c in view.channels]
    converted = [charts.Series(t(c.label), c.converted, colours[c.kind]) for c in view.channels]
    fees = [charts.Series(t(c.label), c.fees_fen, colours[c.kind]) for c in view.channels]
    ages = [
        charts.Bar(t(label), converted_count, band == TARGET_BAND)
        for band, label, _, converted_count in age_bars(view.structure)
        if band != "none"
    ]
    steps = [charts.FunnelStep(t(step.label), step.count, step.rate) for step in view.funnel]
    return {
        "funnel": charts.funnel_chart(t("Funnel"), steps),
        "received": charts.bar_chart(t("Referrals received by month and channel"), months, received),
        "converted": charts.line_chart(t("Converted by month and channel"), months, converted),
        "fees": charts.line_chart(
            t("Fees accrued by month and channel (CNY)"),
            months,
            fees,
            ticks=charts.money_ticks,
            value=charts.money_value,
            money=True,
            width=1100,
        ),
        "ages": charts.band_chart(t("Converted clients by age"), ages, marked_label=t("25-35: the young-client goal")),
    }
