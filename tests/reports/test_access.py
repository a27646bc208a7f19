"""Who may read which report, and a partner's view: its own referrals, in every format, never another's."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from openpyxl import load_workbook

from app.auth.scopes import StaffRole
from tests.conftest import Caller, CallerFactory
from tests.reports.conftest import Book

PERIOD = {"from": "2026-01-01", "to": "2026-02-28"}
PARTNER_REPORTS = ("/v1/reports/funnel", "/v1/reports/time-to-convert")
STAFF_REPORTS = ("/v1/reports/fees", "/v1/reports/client-structure", "/v1/reports/pack")


@pytest.fixture
async def manager(caller: CallerFactory) -> Caller:
    return await caller("staff", role=StaffRole.alliance_manager)


@pytest.fixture
async def insurer(caller: CallerFactory, book: Book) -> Caller:
    return await caller("partner", partner=book.partners["insurer"])


def scorecard_path(book: Book, name: str = "bank") -> str:
    return f"/v1/reports/partners/{book.partners[name].id}/scorecard"


async def test_no_token_is_401(client: httpx.AsyncClient, book: Book) -> None:
    for path in (*PARTNER_REPORTS, *STAFF_REPORTS, scorecard_path(book)):
        response = await client.get(path, params=PERIOD)
        assert response.status_code == 401, path
        assert response.headers["content-type"] == "application/problem+json"


async def test_partner_tokens_are_refused_the_staff_reports(
    client: httpx.AsyncClient, book: Book, insurer: Caller
) -> None:
    for path in (*STAFF_REPORTS, scorecard_path(book), scorecard_path(book, "insurer")):
        for format in ("json", "csv", "xlsx", "html"):
            response = await client.get(path, params={**PERIOD, "format": format}, headers=insurer.headers)
            assert response.status_code in (403, 422), (path, format)
            if format in ("json", "xlsx", "html") or path != "/v1/reports/pack":
                assert response.status_code == 403, (path, format)
            assert response.json()["type"].endswith("/insufficient-scope")


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (StaffRole.alliance_manager, True),
        (StaffRole.finance, True),
        (StaffRole.auditor, True),
        (StaffRole.admin, False),
    ],
)
async def test_staff_roles(
    client: httpx.AsyncClient, caller: CallerFactory, book: Book, role: StaffRole, allowed: bool
) -> None:
    who = await caller("staff", role=role)
    for path in (*PARTNER_REPORTS, *STAFF_REPORTS, scorecard_path(book)):
        response = await client.get(path, params=PERIOD, headers=who.headers)
        assert response.status_code == (200 if allowed else 403), (path, response.text)


async def test_back_office_and_narrowed_partner_tokens_are_403(
    client: httpx.AsyncClient, caller: CallerFactory, book: Book
) -> None:
    back_office = await caller("back_office")
    write_only = await caller("partner", partner=book.partners["bank"], scopes=["referrals:write"])
    for who in (back_office, write_only):
        for path in PARTNER_REPORTS:
            response = await client.get(path, params=PERIOD, headers=who.headers)
            assert response.status_code == 403, (path, response.text)
            assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_a_partner_sees_only_its_own_referrals(
    client: httpx.AsyncClient, book: Book, insurer: Caller, manager: Caller
) -> None:
    others = [book.partners[name] for name in ("bank", "corporate")]
    for path in PARTNER_REPORTS:
        for params in (
            {**PERIOD, "group_by": "partner,month"},
            {**PERIOD, "group_by": "program", "partner_id": others[0].id},  # naming another partner shows nothing
            {**PERIOD, "group_by": "partner_kind", "partner_kind": "bank"},
        ):
            response = await client.get(path, params=params, headers=insurer.headers)
            assert response.status_code == 200, response.text
            answer = response.json()
            del answer["filters"]  # echoes what the caller sent
            body = str(answer)
            for other in others:
                assert other.id not in body and other.display_name not in body
            for row in answer["rows"]:
                assert row["group"].get("partner_id") in (None, book.partners["insurer"].id)
    own = (await client.get(PARTNER_REPORTS[0], params=PERIOD, headers=insurer.headers)).json()
    everyone = (await client.get(PARTNER_REPORTS[0], params=PERIOD, headers=manager.headers)).json()
    assert (own["total"]["counts"]["received"], everyone["total"]["counts"]["received"]) == (3, 10)


async def test_a_partner_sees_only_its_own_referrals_in_every_format(
    client: httpx.AsyncClient, book: Book, insurer: Caller
) -> None:
    others = [book.partners[name] for name in ("bank", "corporate")]
    params = {**PERIOD, "group_by": "partner,month"}
    for path in PARTNER_REPORTS:
        csv_body = (await client.get(path, params={**params, "format": "csv"}, headers=insurer.headers)).content
        rows = list(csv.DictReader(io.StringIO(csv_body.decode("utf-8-sig"))))
        assert {row["partner_id"] for row in rows} == {book.partners["insurer"].id, "Total"}
        workbook = load_workbook(
            io.BytesIO((await client.get(path, params={**params, "format": "xlsx"}, headers=insurer.headers)).content)
        )
        cells = {str(cell.value) for sheet in workbook.worksheets for row in sheet.iter_rows() for cell in row}
        page = (await client.get(path, params={**params, "format": "html"}, headers=insurer.headers)).text
        for other in others:
            for text in (other.id, other.display_name):
                assert text not in csv_body.decode("utf-8-sig") and text not in cells and text not in page
        assert book.partners["insurer"].display_name in page


async def test_unknown_partner_scorecard_is_404(client: httpx.AsyncClient, manager: Caller) -> None:
    response = await client.get("/v1/reports/partners/ptn_nobody/scorecard", params=PERIOD, headers=manager.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "params",
    [
        {"group_by": "colour"},
        {"tier": "gold"},
        {"partner_kind": "bakery"},
        {"kind": "friend"},
        {"from": "2026-03-01", "to": "2026-02-01"},
        {"from": "2020-01-01", "to": "2026-02-01"},
        {"from": "yesterday"},
        {"to": "0.0"},  # pydantic alone reads numbers as Unix timestamps (found by fuzzing)
        {"from": "-3.2e-219"},
        {"to": "2026-1-5"},
        {"format": "pdf"},
        {"partner_id": ",".join(f"ptn_{n}" for n in range(201))},
    ],
)
async def test_invalid_queries_are_422(client: httpx.AsyncClient, manager: Caller, params: dict[str, str]) -> None:
    response = await client.get("/v1/reports/funnel", params=params, headers=manager.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_pack_has_no_csv(client: httpx.AsyncClient, manager: Caller) -> None:
    response = await client.get("/v1/reports/pack", params={**PERIOD, "format": "csv"}, headers=manager.headers)
    assert response.status_code == 422


async def test_openapi_documents_who_may_call(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in PARTNER_REPORTS:
        assert paths[path]["get"]["security"] == [{"oauth2": ["reports:read"]}, {"oauth2": ["referrals:read"]}]
    for path in (*STAFF_REPORTS, "/v1/reports/partners/{id}/scorecard"):
        assert paths[path]["get"]["security"] == [{"oauth2": ["reports:read"]}]
    funnel = paths["/v1/reports/funnel"]["get"]
    assert funnel["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/FunnelReport")
    assert {"text/csv; charset=utf-8", "text/html; charset=utf-8"} <= set(funnel["responses"]["200"]["content"])


@pytest.mark.parametrize("path", ["/v1/reports/funnel", "/v1/reports/time-to-convert", "/v1/reports/fees"])
@pytest.mark.parametrize("params", [{"to": "0001-01-01"}, {"from": "9999-12-01", "to": "9999-12-31"}])
async def test_days_at_the_ends_of_the_calendar_are_refused(
    client: httpx.AsyncClient, manager: Caller, path: str, params: dict[str, str]
) -> None:
    """Found by fuzzing: the default start, twelve months before ``to``, fell in year 0 (a 500)."""
    response = await client.get(path, params=params, headers=manager.headers)
    assert response.status_code == 422, response.text
    assert "Reports cover 2000-01-01 to 2099-12-31" in response.json()["detail"]
