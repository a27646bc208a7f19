"""The one writer of spreadsheet cells: every CSV and XLSX the service exports is written through here.

Text a spreadsheet would run as a formula (OWASP's CSV injection guidance: a leading ``=``, ``+``, ``-``, ``@``,
tab or carriage return, and their full-width forms U+FF1D, U+FF0B, U+FF0D and U+FF20, which some spreadsheets
read as the same) gets a leading apostrophe, in headers as in data: a partner's name, a reference or a note is
never a live formula on a finance desk. In XLSX every text cell is moreover written with the string type, so
openpyxl never stores it as a formula. Numbers (negative ones too) stay numbers; control characters a workbook
cannot hold are dropped.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise(value: Any) -> Any:
    """Text as a spreadsheet must hold it (never a formula); anything else unchanged."""
    if not isinstance(value, str):
        return value
    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_document(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> bytes:
    """Header and rows, every cell neutralised, empty for ``None``; UTF-8 with a byte-order mark (so that
    spreadsheets read Chinese names as UTF-8) and CRLF line ends."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in itertools.chain([header], rows):
        writer.writerow(["" if value is None else neutralise(value) for value in row])
    return buffer.getvalue().encode("utf-8-sig")


def xlsx_cell(sheet: Worksheet, value: Any, *, font: Font | None = None) -> Cell:
    """One cell for ``sheet.append``, in normal and write-only workbooks alike: text typed as a string."""
    cell = WriteOnlyCell(sheet, value=neutralise(value))
    if isinstance(cell.value, str):
        cell.data_type = "s"
    if font is not None:
        cell.font = font
    return cell


def append_row(sheet: Worksheet, values: Iterable[Any], *, font: Font | None = None) -> None:
    sheet.append([xlsx_cell(sheet, value, font=font) for value in values])


def set_cell(sheet: Worksheet, row: int, column: int, value: Any) -> Cell:
    """Write one cell of a normal (not write-only) sheet in place."""
    cell = sheet.cell(row=row, column=column)
    cell.value = neutralise(value)
    if isinstance(cell.value, str):
        cell.data_type = "s"
    return cell
