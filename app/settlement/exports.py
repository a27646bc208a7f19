"""The statement export as settlement hands it out: the CSV of fees (the lines), and the workbook of fees with a
``Reconciliation`` sheet of the current claim's items when the partner has claimed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.catalog.models import Partner
from app.fees import exports as fees
from app.fees.exports import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, Sheet, cell, statement_csv
from app.fees.models import FeeAccrual, Statement
from app.reconciliation.models import ReconciliationItem

__all__ = ["CSV_MEDIA_TYPE", "ITEM_COLUMNS", "XLSX_MEDIA_TYPE", "statement_csv", "statement_xlsx"]

ITEM_COLUMNS = (
    "item_id",
    "external_ref",
    "fee_type",
    "match_class",
    "ours_fen",
    "theirs_fen",
    "difference_fen",
    "reason",
    "disputed",
    "dispute_reason",
    "resolution",
    "resolution_note",
    "adjustment_id",
)


def _item_row(item: ReconciliationItem) -> tuple[Any, ...]:
    return tuple(
        cell(value)
        for value in (
            item.id,
            item.external_ref,
            item.fee_type,
            item.match_class,
            item.ours_fen,
            item.theirs_fen,
            item.difference_fen,
            item.reason,
            item.disputed,
            item.dispute_reason,
            item.resolution,
            item.resolution_note,
            item.adjustment_id,
        )
    )


def statement_xlsx(
    statement: Statement,
    partner: Partner | None,
    lines: Iterable[FeeAccrual],
    items: Sequence[ReconciliationItem] = (),
) -> bytes:
    """A workbook: ``Statement`` (the figures), ``Lines``, and ``Reconciliation`` when there are items."""
    reconciliation = [Sheet("Reconciliation", ITEM_COLUMNS, (_item_row(item) for item in items))] if items else []
    return fees.statement_xlsx(statement, partner, lines, reconciliation)
