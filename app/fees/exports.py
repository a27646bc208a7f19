"""Statement exports for people: CSV (UTF-8 with a byte-order mark, so that spreadsheets show Chinese names) and
XLSX (a summary sheet, the lines, and whatever further sheets the caller adds: settlement adds the
reconciliation items, ``app.settlement.exports``).

Every cell, headers included, is written through ``app.core.spreadsheets``: a partner's reference or a note never
becomes a live formula on a finance desk. Amounts are written as numbers; times in the business timezone
(``app.core.business_time``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


def cell(value: Any) -> Any:
    """A value as an export writes it: times on the business's clock, dates and enum members as text."""
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
        cell(value)
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


def statement_csv(statement: Statement, partner: Partner, lines: Iterable[FeeAccrual]) -> bytes:
    """The statement's lines, one row each, with the partner's own reference on every row."""
    return csv_document(LINE_COLUMNS, (_line_row(statement, partner, line) for line in lines))


@dataclass(frozen=True)
class Sheet:
    """One more sheet of a statement workbook: its title, its header and its rows (of ``cell`` values)."""

    title: str
    header: Sequence[str]
    rows: Iterable[tuple[Any, ...]]


def _sheet(workbook: Workbook, sheet: Sheet) -> Worksheet:
    written = workbook.create_sheet(sheet.title)
    append_row(written, sheet.header, font=Font(bold=True))
    for row in sheet.rows:
        append_row(written, row)
    return written


def statement_xlsx(
    statement: Statement,
    partner: Partner | None,
    lines: Iterable[FeeAccrual],
    more_sheets: Iterable[Sheet] = (),
) -> bytes:
    """A workbook: ``Statement`` (the figures), ``Lines``, then ``more_sheets`` in their order."""
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
    _sheet(workbook, Sheet("Statement", ("field", "value"), ((name, cell(value)) for name, value in summary)))
    _sheet(workbook, Sheet("Lines", LINE_COLUMNS, (_line_row(statement, partner, line) for line in lines)))
    for sheet in more_sheets:
        _sheet(workbook, sheet)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
