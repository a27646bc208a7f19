"""Each format's content: CSV parsed back, XLSX opened with openpyxl (charts included), HTML parsed."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from openpyxl.chart import BarChart, LineChart
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth.scopes import StaffRole
from app.catalog import service as catalog
from app.catalog.schemas import PartnerUpdate
from app.reports.schemas import (
    ClientStructureReport,
    FeesReport,
    FunnelReport,
    Scorecard,
    TimeToConvertReport,
)
from tests.conftest import Caller, CallerFactory
from tests.reports.conftest import Book

PERIOD = {"from": "2026-01-01", "to": "2026-02-28"}
BANK = "哈尔滨银行股份有限公司"


@pytest.fixture
async def manager(caller: CallerFactory) -> Caller:
    return await caller("staff", role=StaffRole.alliance_manager)


async def get(client: httpx.AsyncClient, who: Caller, path: str, **params: str) -> httpx.Response:
    response = await client.get(path, params={**PERIOD, **params}, headers=who.headers)
    assert response.status_code == 200, response.text
    return response


def parse_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith("\ufeff".encode())  # spreadsheets read it as UTF-8
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


async def test_json_is_the_documented_report(client: httpx.AsyncClient, manager: Caller, book: Book) -> None:
    body = (await get(client, manager, "/v1/reports/funnel", group_by="partner,month")).json()
    assert body["report"] == "funnel" and body["currency"] == "CNY"
    assert body["period"] == {
        "start": "2026-01-01",
        "end": "2026-02-28",
        "timezone": "Asia/Shanghai",
        "basis": "cohort",
    }
    assert body["group_by"] == ["partner", "month"]
    assert body["rows"][2]["group"]["partner_name"] == BANK
    assert body["total"]["counts"]["received"] == 10
    fees = (await get(client, manager, "/v1/reports/fees")).json()
    assert fees["total"]["fees_accrued_fen"] == 1_233_000 and isinstance(fees["total"]["assets_fen"], int)


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/reports/funnel", FunnelReport),
        ("/v1/reports/time-to-convert", TimeToConvertReport),
        ("/v1/reports/fees", FeesReport),
        ("/v1/reports/client-structure", ClientStructureReport),
        ("/v1/reports/partners/{bank}/scorecard", Scorecard),
    ],
)
async def test_json_is_exactly_what_the_model_documents(
    client: httpx.AsyncClient, manager: Caller, book: Book, path: str, model: type[BaseModel]
) -> None:
    """The endpoints encode their data directly: every key the OpenAPI model has, nothing else, same values."""
    for group_by in ("partner,month", "program,tier", "product,kind,partner_kind", ""):
        url = path.format(bank=book.partners["bank"].id)
        body = (await get(client, manager, url, group_by=group_by)).json()
        assert body == model.model_validate(body).model_dump(mode="json"), (path, group_by)


async def test_csv_parses_back_to_the_figures(client: httpx.AsyncClient, manager: Caller, book: Book) -> None:
    response = await get(client, manager, "/v1/reports/funnel", group_by="partner,month", format="csv")
    assert response.headers["content-disposition"] == 'attachment; filename="funnel-20260101-20260228.csv"'
    rows = parse_csv(response)
    assert list(rows[0])[:5] == ["partner_id", "partner_name", "month", "received", "eligible"]
    assert [(row["partner_name"], row["month"], row["received"], row["converted"]) for row in rows] == [
        ("中国平安人寿保险股份有限公司", "2026-01", "2", "1"),
        ("中国平安人寿保险股份有限公司", "2026-02", "1", "0"),
        (BANK, "2026-01", "4", "1"),
        (BANK, "2026-02", "2", "1"),
        ("黑土地农业集团有限公司", "2026-01", "1", "0"),
        ("", "", "10", "3"),
    ]
    assert rows[-1]["partner_id"] == "Total"
    assert rows[1]["converted_stage_rate"] == ""  # nothing funded: no rate
    assert rows[2]["account_opened_stage_rate"] == "0.5"

    fees = parse_csv(await get(client, manager, "/v1/reports/fees", group_by="partner", format="csv"))
    bank = next(row for row in fees if row["partner_name"] == BANK)
    assert (bank["fees_accrued_fen"], bank["fees_paid_fen"], bank["assets_fen"]) == ("1218000", "150000", "805000000")
    assert fees[-1]["cost_per_funded_account_fen"] == "246600"

    timing = parse_csv(await get(client, manager, "/v1/reports/time-to-convert", format="csv"))
    assert timing[-1]["account_opened_median_days"] == "2.5"

    structure = parse_csv(await get(client, manager, "/v1/reports/client-structure", format="csv"))
    assert structure[-1]["converted_share_hnw_institutional"] == "0.6667"
    assert structure[-1]["age_25_35_received"] == "5" and structure[-1]["organic_hnw"] == "1"

    card = parse_csv(
        await get(client, manager, f"/v1/reports/partners/{book.partners['bank'].id}/scorecard", format="csv")
    )
    assert {row["metric"]: row["partner"] for row in card}["fees_accrued_fen"] == "1218000"


async def test_csv_never_starts_a_formula(
    client: httpx.AsyncClient, manager: Caller, book: Book, session: AsyncSession
) -> None:
    await catalog.update_partner(
        session, Actor.system("test"), book.partners["bank"].id, PartnerUpdate(display_name="=HYPERLINK(1)")
    )
    rows = parse_csv(await get(client, manager, "/v1/reports/funnel", group_by="partner", format="csv"))
    assert "'=HYPERLINK(1)" in [row["partner_name"] for row in rows]
    workbook = load_workbook(
        io.BytesIO((await get(client, manager, "/v1/reports/funnel", group_by="partner", format="xlsx")).content)
    )
    names = [cell.value for cell in workbook["Funnel"]["B"]]
    assert "'=HYPERLINK(1)" in names and not any(isinstance(name, str) and name.startswith("=") for name in names)


async def test_xlsx_has_a_sheet_per_report_and_native_charts(
    client: httpx.AsyncClient, manager: Caller, book: Book
) -> None:
    response = await get(client, manager, "/v1/reports/funnel", group_by="partner,month", format="xlsx")
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    workbook = load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["Funnel", "Monthly trend"]
    funnel, trend = workbook["Funnel"], workbook["Monthly trend"]
    header = [cell.value for cell in funnel[4]]
    assert header[:4] == ["Partner id", "Partner", "Month", "Received"]
    assert [row[1] for row in funnel.iter_rows(min_row=5, max_row=9, values_only=True)] == [
        "中国平安人寿保险股份有限公司",
        "中国平安人寿保险股份有限公司",
        BANK,
        BANK,
        "黑土地农业集团有限公司",
    ]
    assert funnel.cell(row=10, column=1).value == "Total" and funnel.cell(row=10, column=4).value == 10
    assert funnel.cell(row=7, column=header.index("Account opened / previous") + 1).number_format == "0.00%"
    [bars] = funnel._charts
    assert isinstance(bars, BarChart) and bars.type == "bar"
    assert [trend.cell(row=row, column=1).value for row in (5, 6, 7)] == ["2026-01", "2026-02", "Total"]
    [lines] = trend._charts
    assert isinstance(lines, LineChart) and len(lines.series) == 4

    fees = load_workbook(
        io.BytesIO((await get(client, manager, "/v1/reports/fees", group_by="partner", format="xlsx")).content)
    )
    sheet = fees["Fees and value"]
    header = [cell.value for cell in sheet[4]]
    assert "Fees accrued (CNY)" in header
    bank_row = next(row for row in sheet.iter_rows(min_row=5, values_only=True) if row[1] == BANK)
    assert Decimal(str(bank_row[header.index("Fees accrued (CNY)")])) == Decimal("12180.00")  # 1,218,000 fen
    assert sheet.cell(row=5, column=header.index("Fees accrued (CNY)") + 1).number_format == "#,##0.00"


async def test_the_pack_workbook_has_every_report(client: httpx.AsyncClient, manager: Caller, book: Book) -> None:
    response = await get(client, manager, "/v1/reports/pack", group_by="month", format="xlsx")
    workbook = load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["Funnel", "Monthly trend", "Time to convert", "Fees and value", "Client structure"]
    assert len(workbook["Funnel"]._charts) == 1 and len(workbook["Monthly trend"]._charts) == 1
    structure = workbook["Client structure"]
    header = [cell.value for cell in structure[4]]
    target = header.index("Age 25-35: received") + 1
    assert structure.cell(row=4, column=target).fill.fgColor.rgb.endswith("FFF2CC")  # the 25-35 target, marked
    pack = (await get(client, manager, "/v1/reports/pack")).json()
    assert set(pack) == {"funnel", "time_to_convert", "fees", "client_structure"}


class Page(HTMLParser):
    """What a mail client or a browser offline would need to show the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value) for name, value in attrs]
        self._in_cell = tag in ("td", "th")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_cell:
            self.cells.append(data)


def parse_html(response: httpx.Response) -> Page:
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = Page()
    page.feed(response.content.decode("utf-8"))
    page.close()
    return page


def assert_self_contained(page: Page) -> None:
    assert ("meta", "charset", "utf-8") in page.attributes
    assert not {"script", "link", "img", "iframe", "object"} & set(page.tags)
    external: list[Any] = [
        (tag, name, value) for tag, name, value in page.attributes if name in ("src", "href") and value
    ]
    assert external == []


async def test_html_is_one_self_contained_page_with_charts(
    client: httpx.AsyncClient, manager: Caller, book: Book
) -> None:
    response = await get(client, manager, "/v1/reports/funnel", group_by="partner,month", format="html")
    assert response.headers["content-disposition"].startswith("inline;")
    page = parse_html(response)
    assert_self_contained(page)
    assert page.tags.count("svg") == 2  # the funnel and the monthly trend
    assert page.tags.count("table") == 2
    assert BANK in page.cells and "黑土地农业集团有限公司" in page.cells
    assert "Referral funnel" in page.text
    assert "10" in page.cells and "60.00%" in page.cells  # received; opened over received

    fees = parse_html(await get(client, manager, "/v1/reports/fees", group_by="partner", format="html"))
    assert_self_contained(fees)
    assert "¥12,180.00" in fees.cells  # the bank's 1,218,000 fen of fees, exactly

    pack = parse_html(await get(client, manager, "/v1/reports/pack", format="html"))
    assert_self_contained(pack)
    assert [
        text for text in pack.text if text in ("Funnel", "Time to convert", "Fees and value", "Client structure")
    ] == [
        "Funnel",
        "Time to convert",
        "Fees and value",
        "Client structure",
    ]
    assert pack.tags.count("svg") == 3  # funnel, trend, HNW share


async def test_html_escapes_what_partners_named(
    client: httpx.AsyncClient, manager: Caller, book: Book, session: AsyncSession
) -> None:
    await catalog.update_partner(
        session, Actor.system("test"), book.partners["bank"].id, PartnerUpdate(display_name="<script>x</script>银行")
    )
    page = parse_html(await get(client, manager, "/v1/reports/funnel", group_by="partner", format="html"))
    assert "script" not in page.tags
    assert "<script>x</script>银行" in page.cells
