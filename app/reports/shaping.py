"""What every report shares once its sums are read: rates, the groups as the API shows them, their order, the
header. Pure functions of the rows a report read (``app.reports.queries``), no database."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from app.core import clock
from app.reports import summary
from app.reports.queries import ReportQuery
from app.reports.schemas import GroupBy, ReportGroup

RATE_PLACES = 4
TIERS = ("retail", "hnw", "institutional")
STAGES = tuple(summary.STAGES)

GROUP_FIELDS = {
    GroupBy.partner: ("partner_id", "partner_name"),
    GroupBy.partner_kind: ("partner_kind",),
    GroupBy.program: ("program_id", "program_name"),
    GroupBy.product: ("product_code", "product_name"),
    GroupBy.tier: ("tier",),
    GroupBy.kind: ("kind",),
    GroupBy.month: ("month",),
}
_TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}
NO_GROUP: dict[str, Any] = dict.fromkeys(ReportGroup.model_fields)

Payload = dict[str, Any]  # a report as plain data, shaped as its model: JSON straight from it, or validated


def rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, RATE_PLACES) if denominator else None


def group_of(row: Mapping[str, Any], group_by: Iterable[GroupBy]) -> dict[str, Any]:
    """The group's fields as the API shows them: months ``YYYY-MM``, no product or tier as ``null``; the
    dimensions not grouped by are ``null`` too (as the model shows them)."""
    group: dict[str, Any] = dict(NO_GROUP)
    for dimension in group_by:
        for name in GROUP_FIELDS[dimension]:
            value = row[name]
            if name == "month":
                value = f"{value:%Y-%m}"
            elif name in ("tier", "product_code", "product_name") and not value:
                value = None
            group[name] = value
    if group.get("product_code") is None and "product_name" in group:
        group["product_name"] = None
    return group


def group_key(row: Mapping[str, Any], group_by: Iterable[GroupBy]) -> tuple[Any, ...]:
    return tuple(row[name] for dimension in group_by for name in GROUP_FIELDS[dimension])


def _sort_key(group: Mapping[str, Any], group_by: Iterable[GroupBy]) -> tuple[Any, ...]:
    """Rows in a readable order whatever the database's collation: partners and programs by name, tiers by
    rank, months by date; no product or no tier last."""
    key: list[Any] = []
    for dimension in group_by:
        if dimension == GroupBy.partner:
            key += [group["partner_name"] or "", group["partner_id"]]
        elif dimension == GroupBy.program:
            key += [group["program_name"] or "", group["program_id"]]
        elif dimension == GroupBy.tier:
            key.append(_TIER_RANK.get(group["tier"], len(TIERS)))
        else:
            value = group[GROUP_FIELDS[dimension][0]]
            key.append((value is None, str(value or "")))
    return tuple(key)


def in_order(items: Iterable[dict[str, Any]], group_by: Sequence[GroupBy]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: _sort_key(item["group"], group_by))


def summed(rows: Iterable[Mapping[str, Any]], names: Iterable[str]) -> dict[str, int]:
    names = list(names)
    totals = dict.fromkeys(names, 0)
    for row in rows:
        for name in names:
            totals[name] += int(row[name] or 0)
    return totals


def payload(report: str, data: Payload) -> Payload:
    return {"report": report, "currency": "CNY", **data}


def header(query: ReportQuery, group_by: Sequence[GroupBy] | None = None) -> dict[str, Any]:
    return {
        "period": query.period,
        "filters": query.filters,
        "group_by": list(query.group_by if group_by is None else group_by),
        "generated_at": clock.now(),
    }


def grouped_payload(
    report: str,
    query: ReportQuery,
    rows: Sequence[Mapping[str, Any]],
    row_of: Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]],
    names: Iterable[str],
) -> Payload:
    """A report of one row per group (``row_of`` its group and sums) and a total row over the sums of ``names``."""
    return payload(
        report,
        {
            **header(query),
            "rows": in_order((row_of(group_of(row, query.group_by), row) for row in rows), query.group_by),
            "total": row_of(dict(NO_GROUP), summed(rows, names)),
        },
    )
