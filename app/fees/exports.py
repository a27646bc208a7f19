"""Statement exports for people: CSV (UTF-8 with a byte-order mark, so that spreadsheets show Chinese names) and
XLSX (a summary sheet, the lines, and the reconciliation items when the partner has claimed).

Every cell, headers included, is written through ``app.core.spreadsheets``: a partner's reference or a note never
becomes a live formula on a finance desk. Amounts are written as numbers; times in the business timezone
(``app.core.business_time``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from app.catalog.models import Partner
from app.core import spreadsheets
from app.core.business_time import local
from app.core.spreadsheets import append_row, csv_document
from app.fees.models import FeeAccrual, Statement
from app.reconciliation.models import ReconciliationItem

CSV_MEDIA_TYPE = spreadsheets.CSV_MEDIA_TYPE
XLSX_MEDIA_TYPE = spreadsheets.XLSX_MEDIA_TYPE

LINE_COLUMNS = (
    "statement_id",
    "period",
    "partner_id",
    "partner_name",
    "line_id",
    "external_ref",
    "fee_type",
    "amount_fen",
    "currency",
    "occurred_at",
    "referral_id",
    "reverses_id",
    "note",
)
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


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):  # the business's wall clock: its date is the day the period counts it in
        return local(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(value.value, str):  # an enum member
        return value.value
    return value


def _line_row(statement: Statement, partner: Partner | None, line: FeeAccrual) -> tuple[Any, ...]:
    note = line.arithmetic.get("reason") if line.rule == "adjustment" else None
    return tuple(
        _cell(value)
        for value in (
            statement.id,
            statement.period,
            statement.partner_id,
            partner.legal_name if partner else None,
            line.id,
            line.external_ref,
            line.rule,
            line.amount_fen,
            line.currency,
            line.occurred_at,
            line.referral_id,
            line.reverses_id,
            note,
        )
    )


def _item_row(item: ReconciliationItem) -> tuple[Any, ...]:
    return tuple(
        _cell(value)
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


def statement_csv(statement: Statement, partner: Partner, lines: Iterable[FeeAccrual]) -> bytes:
    """The statement's lines, one row each, with the partner's own reference on every row."""
    return csv_document(LINE_COLUMNS, (_line_row(statement, partner, line) for line in lines))


def _sheet(workbook: Workbook, title: str, header: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> Worksheet:
    sheet = workbook.create_sheet(title)
    append_row(sheet, header, font=Font(bold=True))
    for row in rows:
        append_row(sheet, row)
    return sheet


def statement_xlsx(
    statement: Statement,
    partner: Partner | None,
    lines: Iterable[FeeAccrual],
    items: Sequence[ReconciliationItem] = (),
) -> bytes:
    """A workbook: ``Statement`` (the figures), ``Lines``, and ``Reconciliation`` when there are items."""
    workbook = Workbook(write_only=True)
    summary = (
        ("statement_id", statement.id),
        ("partner_id", statement.partner_id),
        ("partner_name", partner.legal_name if partner else None),
        ("period", statement.period),
        ("status", statement.status),
        ("currency", statement.currency),
        ("line_count", statement.line_count),
        ("lines_total_fen", statement.lines_total_fen),
        ("carried_forward_fen", statement.carried_forward_fen),
        ("net_fen", statement.net_fen),
        ("vat_rate_bp", statement.vat_rate_bp),
        ("vat_inclusive", statement.vat_inclusive),
        ("vat_fen", statement.vat_fen),
        ("gross_fen", statement.gross_fen),
        ("issued_at", statement.issued_at),
        ("approved_at", statement.approved_at),
        ("paid_at", statement.paid_at),
        ("payment_ref", statement.payment_ref),
    )
    _sheet(workbook, "Statement", ("field", "value"), ((name, _cell(value)) for name, value in summary))
    _sheet(workbook, "Lines", LINE_COLUMNS, (_line_row(statement, partner, line) for line in lines))
    if items:
        _sheet(workbook, "Reconciliation", ITEM_COLUMNS, (_item_row(item) for item in items))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
