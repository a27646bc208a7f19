"""No export ever holds a live formula: every CSV and XLSX route of the API, enumerated from the OpenAPI document,
fetched with text fields (partner names, program and product names, partners' references, finance's notes, a
partner's claim) that start with each character a spreadsheet reads as the start of a formula."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth.scopes import StaffRole
from app.catalog.models import BundledProduct
from app.fees import statements
from app.fees.models import FeeRule
from tests.conftest import CallerFactory
from tests.factories.openapi import format_choices
from tests.reconciliation.books import Finance
from tests.reconciliation.books import book as book_line
from tests.reports.conftest import Book

# OWASP's list, and the full-width forms that spreadsheets may read the same way.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
NUMBER = re.compile(r"-?\d+(\.\d+)?")
PERIOD = {"from": "2026-01-01", "to": "2026-02-28"}


def export_routes(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, format) of every download a ``format`` parameter makes a CSV or XLSX file."""
    return [
        (path, format)
        for path, operations in document["paths"].items()
        for format in sorted(format_choices(document, operations.get("get", {})) & {"csv", "xlsx"})
    ]


def csv_cells(body: bytes) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")) for cell in row]


def assert_no_formula_in_csv(where: str, body: bytes) -> list[str]:
    cells = csv_cells(body)
    for cell in cells:
        assert NUMBER.fullmatch(cell) or not cell.startswith(FORMULA_STARTS), f"{where}: {cell!r} starts a formula"
    return cells


def assert_no_formula_in_xlsx(where: str, body: bytes) -> list[Any]:
    values = []
    for sheet in load_workbook(io.BytesIO(body)).worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{where} {sheet.title}!{cell.coordinate} is a formula: {cell.value!r}"
                if isinstance(cell.value, str):
                    assert not cell.value.startswith(FORMULA_STARTS), f"{where} {sheet.title}!{cell.coordinate}"
                values.append(cell.value)
    return values


async def hostile_names(session: AsyncSession, book: Book, start: str) -> str:
    """Every partner, program and product of the book renamed to text starting with ``start``."""
    hostile = f'{start}HYPERLINK("http://evil.example","点我")'
    for index, partner in enumerate(book.partners.values()):
        partner.display_name = partner.legal_name = f"{hostile} {index}"
        session.add(partner)
    for index, program in enumerate(book.programs.values()):
        program.name = f"{hostile} program {index}"
        session.add(program)
    for product in (await session.scalars(select(BundledProduct))).all():
        product.name = f"{hostile} product"
        session.add(product)
    await session.flush()
    return hostile


@pytest.mark.parametrize("start", FORMULA_STARTS, ids=[f"U+{ord(c):04X}" for c in FORMULA_STARTS])
async def test_no_export_holds_a_formula(
    client: httpx.AsyncClient, session: AsyncSession, caller: CallerFactory, book: Book, start: str
) -> None:
    hostile = await hostile_names(session, book, start)
    bank = book.partners["bank"]
    march = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    await book_line(session, bank.id, 10_000, ref=f"{start}1+1", at=march)
    await book_line(session, bank.id, -5_000, rule=FeeRule.clawback, ref=f"{start}SUM(A1)", at=march)
    await statements.create_adjustment(
        session, Actor.system("test"), partner_id=bank.id, amount_fen=777, external_ref="ADJ-1",
        reason=f"{start}cmd|' /C calc'!A0", now=march,
    )  # fmt: skip
    finance = Finance(client, await caller("staff", role=StaffRole.finance))
    statement = await finance.statement_of("2026-03", bank.id)
    await finance.act(statement["id"], "issue")
    partner = await caller("partner", partner=bank)
    claim = {"lines": [{"external_ref": f"{start}claimed", "fee_type": "cap", "amount_fen": 1}]}
    claimed = await client.post(f"/v1/statements/{statement['id']}/claims", json=claim, headers=partner.headers)
    assert claimed.status_code == 201, claimed.text

    manager = await caller("staff", role=StaffRole.alliance_manager)
    routes = export_routes((await client.get("/openapi.json")).json())
    assert {path for path, _ in routes} >= {"/v1/reports/funnel", "/v1/finance/statements/{statement_id}/export"}
    identifiers = {"id": bank.id, "statement_id": statement["id"]}
    without_names = set()
    for path, format in routes:
        url = re.sub(r"\{(\w+)\}", lambda match: identifiers[match.group(1)], path)
        who = finance.caller.headers if path.startswith("/v1/finance/") else manager.headers
        report = {"group_by": "partner,program,product", **PERIOD} if path.startswith("/v1/reports/") else {}
        params = {"format": format, **report}  # a statement export takes no report parameters (and refuses them)
        response = await client.get(url, params=params, headers=who)
        assert response.status_code == 200, (url, format, response.text)
        if format == "csv":
            cells = assert_no_formula_in_csv(f"{url} csv", response.content)
        else:
            cells = assert_no_formula_in_xlsx(f"{url} xlsx", response.content)
        # XML, hence XLSX, reads a carriage return back as a line feed.
        read = (lambda text: text.replace("\r", "\n")) if format == "xlsx" else (lambda text: text)
        if not any(isinstance(cell, str) and cell.startswith(read("'" + hostile)) for cell in cells):
            without_names.add((path, format))
        if path.endswith("/export"):
            refs = {read(f"'{start}{ref}") for ref in ("1+1", "SUM(A1)", "cmd|' /C calc'!A0")}
            assert refs <= {cell for cell in cells if isinstance(cell, str)}, (url, format)
            # A negative amount stays a number.
            assert ("-5000" if format == "csv" else -5_000) in cells, (url, format)
            if format == "xlsx":
                assert read(f"'{start}claimed") in cells
    # The hostile names did reach every export, neutralised (one that shows no such text proves nothing), except
    # the scorecard's CSV, which holds metric ids and figures only.
    assert without_names <= {("/v1/reports/partners/{id}/scorecard", "csv")}
