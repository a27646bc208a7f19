"""The console's shell: where a browser without a session is sent, its assets served from the package, its
language choice, and how it writes money and rates."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.console import formatting
from app.console.i18n import LOCALE_COOKIE
from tests.console.policy import CONSOLE_POLICY, console_routes


async def test_the_console_without_a_session_leads_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/console")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?next=/console"


async def test_htmx_and_the_stylesheet_come_from_the_service(client: httpx.AsyncClient) -> None:
    htmx = await client.get("/console/static/htmx.min.js")
    assert htmx.status_code == 200 and b"htmx" in htmx.content[:2000]
    css = await client.get("/console/static/console.css")
    assert css.status_code == 200 and "http" not in css.text


async def test_choosing_english_sets_a_cookie_and_comes_back_to_a_console_page(client: httpx.AsyncClient) -> None:
    response = await client.post("/console/language", data={"lang": "en", "next": "/console/statements?status=x"})
    assert response.status_code == 303
    assert response.headers["location"] == "/console/statements?status=x"
    assert f"{LOCALE_COOKIE}=en" in response.headers["set-cookie"]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/console", "/v1/referrals"])
async def test_the_language_form_never_leads_off_the_console(client: httpx.AsyncClient, target: str) -> None:
    response = await client.post("/console/language", data={"lang": "zh", "next": target})
    assert response.headers["location"] == "/console"


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "0.00"),
        (1, "0.01"),
        (-5, "-0.05"),
        (123456, "1,234.56"),
        (-100000000, "-1,000,000.00"),
        (12345678901234567, "123,456,789,012,345.67"),
        (None, "—"),
    ],
)
def test_money_is_written_in_yuan_with_separators_exactly(fen: int | None, text: str) -> None:
    assert formatting.yuan(fen) == text


def test_rates_are_percentages_with_one_decimal() -> None:
    assert formatting.percent(0.1234) == "12.3%"
    assert formatting.percent(1) == "100.0%"
    assert formatting.percent(None) == "—"


def test_every_console_route_has_an_entry(app: FastAPI) -> None:
    missing = [route for route in console_routes(app) if route not in CONSOLE_POLICY]
    assert not missing, "Console routes without an entry in tests/console/policy.py (add one each): " + repr(missing)
    stale = [route for route in CONSOLE_POLICY if route not in console_routes(app)]
    assert not stale, f"Entries for routes the console does not serve: {stale}"


async def test_a_console_page_ignores_query_parameters_it_does_not_know(client: httpx.AsyncClient) -> None:
    """People's links carry all sorts of extras: the page reads what it knows (no JSON 422 for a browser)."""
    response = await client.get("/console?utm_source=mail")
    assert response.status_code == 303


async def test_a_failure_on_a_console_page_is_a_page_and_the_api_keeps_its_problems(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from fastapi import APIRouter

    from app.core.problems import NotFound

    probe = APIRouter()

    @probe.get("/console/__probe_missing")
    async def missing() -> None:
        raise NotFound("No such statement.")

    @probe.get("/v1/__probe_missing")
    async def api_missing() -> None:
        raise NotFound("No such statement.")

    app.include_router(probe)
    try:
        page = await client.get("/console/__probe_missing")
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "未找到该记录" in page.text and "No such statement." in page.text
        api = await client.get("/v1/__probe_missing")
        assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"
    finally:
        app.router.routes[:] = [route for route in app.router.routes if "__probe" not in getattr(route, "path", "")]
