"""The one spreadsheet writer: text that would start a formula is neutralised; numbers stay numbers."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook

from app.core.spreadsheets import append_row, csv_document, neutralise, set_cell


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20"])
def test_every_formula_start_gets_an_apostrophe(start: str) -> None:
    assert neutralise(f"{start}SUM(A1)") == f"'{start}SUM(A1)"


@pytest.mark.parametrize("value", [-5, -1.5, Decimal("-12.30"), 0, None, "ok", "a=b", " =1", "'=1"])
def test_anything_else_is_unchanged(value: object) -> None:
    assert neutralise(value) == value


def test_control_characters_a_workbook_cannot_hold_are_dropped() -> None:
    assert neutralise("a\x00b\x07c") == "abc"
    assert neutralise("\x01=1") == "'=1"  # dropped first, then neutralised


def test_csv_neutralises_the_header_too() -> None:
    body = csv_document(["=header", "amount"], [["@x", -5], [None, 3]])
    assert body.decode("utf-8-sig") == "'=header,amount\r\n'@x,-5\r\n,3\r\n"


@pytest.mark.parametrize("write_only", [False, True])
def test_xlsx_text_is_a_string_never_a_formula(write_only: bool) -> None:
    workbook = Workbook(write_only=write_only)
    sheet = workbook.create_sheet("S")
    append_row(sheet, ["=1+1", -5, Decimal("1.25"), None])
    if not write_only:
        set_cell(sheet, 2, 1, "\uff1dHYPERLINK()")
    buffer = io.BytesIO()
    workbook.save(buffer)
    loaded = load_workbook(io.BytesIO(buffer.getvalue()))["S"]
    assert [cell.value for cell in loaded[1]][:3] == ["'=1+1", -5, 1.25]
    assert [cell.data_type for cell in loaded[1]][:2] == ["s", "n"]
    if not write_only:
        assert loaded["A2"].value == "'\uff1dHYPERLINK()" and loaded["A2"].data_type == "s"
