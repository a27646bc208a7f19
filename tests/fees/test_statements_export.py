"""Statement exports: CSV parsed back, XLSX opened with openpyxl, formulas neutralised, Chinese names intact."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx
import openpyxl
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.core.spreadsheets import neutralise
from app.fees import statements
from app.fees.models import FeeRule
from tests.conftest import CallerFactory
from tests.reconciliation.books import Finance, book

NAME = "哈尔滨银行股份有限公司"
HOSTILE_REFS = ["=1+1", "@SUM(A1)", "+8613800000000", "-2+3", "REF-OK"]


@pytest.fixture
async def exported(
    client: httpx.AsyncClient, session: AsyncSession, caller: CallerFactory, make_partner: Any
) -> tuple[Finance, str, str]:
    partner = await make_partner(legal_name=NAME)
    finance = Finance(client, await caller("staff", role="finance"))
    for index, ref in enumerate(HOSTILE_REFS):
        await book(session, partner.id, 10_000 * (index + 1), ref=ref)
    await book(session, partner.id, -5_000, rule=FeeRule.clawback, ref="=1+1")
    await statements.create_adjustment(
        session,
        Actor.system("test"),
        partner_id=partner.id,
        amount_fen=777,
        external_ref="ADJ-1",
        reason='=HYPERLINK("http://evil.example","点我") 补发',
        now=datetime(2026, 3, 20, tzinfo=UTC),
    )
    statement = await finance.statement_of("2026-03", partner.id)
    await finance.act(statement["id"], "issue")
    me = await caller("partner", partner=partner)
    claim = {"lines": [{"external_ref": "@evil", "fee_type": "cap", "amount_fen": 1}]}
    response = await client.post(f"/v1/statements/{statement['id']}/claims", json=claim, headers=me.headers)
    assert response.status_code == 201, response.text
    return finance, statement["id"], partner.id


async def _export(finance: Finance, statement_id: str, format: str) -> httpx.Response:
    return await finance.client.get(
        f"/v1/finance/statements/{statement_id}/export", params={"format": format}, headers=finance.caller.headers
    )


async def test_csv_export_parses_back_with_every_reference(exported: tuple[Finance, str, str]) -> None:
    finance, statement_id, partner_id = exported
    response = await _export(finance, statement_id, "csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="statement-2026-03-{partner_id}.csv"' in response.headers["content-disposition"]
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert len(rows) == 7
    assert {row["partner_name"] for row in rows} == {NAME}
    assert {row["statement_id"] for row in rows} == {statement_id}
    refs = sorted(row["external_ref"] for row in rows)
    assert refs == sorted(["'=1+1", "'=1+1", "'@SUM(A1)", "'+8613800000000", "'-2+3", "REF-OK", "ADJ-1"])
    assert all(row["external_ref"] for row in rows)
    assert sum(int(row["amount_fen"]) for row in rows) == 150_000 - 5_000 + 777
    assert "-5000" in {row["amount_fen"] for row in rows}  # numbers are written as numbers, never quoted
    [adjustment] = [row for row in rows if row["fee_type"] == "adjustment"]
    assert adjustment["note"] == '\'=HYPERLINK("http://evil.example","点我") 补发'
    assert not any(value.startswith(("=", "+", "@")) for row in rows for value in row.values())


async def test_xlsx_export_opens_with_no_formula_anywhere(exported: tuple[Finance, str, str]) -> None:
    finance, statement_id, _ = exported
    response = await _export(finance, statement_id, "xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["Statement", "Lines", "Reconciliation"]
    summary = {row[0]: row[1] for row in workbook["Statement"].iter_rows(min_row=2, values_only=True)}
    assert summary["partner_name"] == NAME and summary["status"] == "issued"
    assert (summary["lines_total_fen"], summary["vat_fen"], summary["gross_fen"]) == (145_777, 8_747, 154_524)
    lines = list(workbook["Lines"].iter_rows(values_only=True))
    header, body = lines[0], lines[1:]
    assert len(body) == 7
    ref_at, amount_at = header.index("external_ref"), header.index("amount_fen")
    assert "'=1+1" in {row[ref_at] for row in body}
    assert all(isinstance(row[amount_at], int) for row in body)
    items = list(workbook["Reconciliation"].iter_rows(values_only=True))
    assert "'@evil" in {row[items[0].index("external_ref")] for row in items[1:]}
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{sheet.title}!{cell.coordinate} is a formula: {cell.value}"


async def test_xlsx_export_without_a_claim_has_no_reconciliation_sheet(
    client: httpx.AsyncClient, session: AsyncSession, caller: CallerFactory, make_partner: Any
) -> None:
    partner = await make_partner(legal_name=NAME)
    finance = Finance(client, await caller("staff", role="finance"))
    await book(session, partner.id, 12_345, ref="REF-1")
    statement = await finance.statement_of("2026-03", partner.id)
    await finance.act(statement["id"], "issue")
    response = await _export(finance, statement["id"], "xlsx")
    assert response.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["Statement", "Lines"]
    [line] = list(workbook["Lines"].iter_rows(min_row=2, values_only=True))
    assert 12_345 in line and "REF-1" in line


async def test_unknown_export_format_is_refused(exported: tuple[Finance, str, str]) -> None:
    finance, statement_id, _ = exported
    assert (await _export(finance, statement_id, "pdf")).status_code == 422


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=A1", "'=A1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("ok", "ok"),
        (-5, -5),
        (None, None),
    ],
)
def test_neutralise(value: object, expected: object) -> None:
    assert neutralise(value) == expected
