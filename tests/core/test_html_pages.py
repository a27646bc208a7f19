"""Every page the service serves as HTML works offline: nothing it references lives on another host, and every
local asset it references is served.

The pages are enumerated from the app: every route left out of the OpenAPI document (the documentation and the
problem-type pages) and every documented route that offers ``format=html`` (the reports). The console's pages
need a person's session and are checked the same way in ``tests/console``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app.auth.scopes import StaffRole
from app.core.problem_types import PROBLEM_TYPES
from tests.conftest import CallerFactory
from tests.factories.openapi import format_choices

URL_ATTRIBUTES = {"src", "href", "action", "formaction", "poster", "data", "srcset", "xlink:href"}
ABSOLUTE = re.compile(r"(?i)\b(?:https?:|wss?:|ftp:)?//[a-z0-9.-]+")
HOSTILE_NAME = '<img src="https://evil.example/x.png"> 银行'


class References(HTMLParser):
    """Every URL an HTML page makes a browser load or follow, and the text of its inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_code = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value:
                self.urls += [part.split()[0] for part in value.split(",")] if name == "srcset" else [value]
            elif name == "style" and value:
                self.inline.append(value)
        self._in_code = tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._in_code = False

    def handle_data(self, data: str) -> None:
        if self._in_code:
            self.inline.append(data)


def html_routes(app: FastAPI) -> set[str]:
    """Paths of the pages: routes outside the OpenAPI document, and documented routes with a ``format=html``."""
    paths = set()
    for context in iter_route_contexts(app.routes):
        route = context.route
        if isinstance(route, APIRoute) and not route.include_in_schema and not context.path.startswith("/console"):
            paths.add(context.path)
    document = app.openapi()
    for path, operations in document["paths"].items():
        if "html" in format_choices(document, operations.get("get", {})):
            paths.add(path)
    return paths


async def assert_works_offline(client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> str:
    """Fetch the page; every reference stays on the service and answers 200. Returns the page's text."""
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, (url, response.text[:300])
    assert response.headers["content-type"].startswith("text/html"), url
    page = References()
    page.feed(response.text)
    for reference in page.urls:
        parts = urlsplit(reference)
        assert not parts.netloc and parts.scheme in ("", "data"), f"{url} loads {reference} from elsewhere"
        if parts.scheme == "data" or reference.startswith("#"):
            continue
        asset = await client.get(urljoin(str(response.url), reference), headers=headers)
        assert asset.status_code == 200, f"{url} references {reference}, which answers {asset.status_code}"
    for code in page.inline:
        assert not ABSOLUTE.search(code), f"{url} has an inline script or style naming another host: {code[:200]}"
    return response.text


def test_the_pages_are_the_ones_checked_below(app: FastAPI) -> None:
    """A new HTML page fails here until the test below fetches it."""
    assert html_routes(app) == {
        "/docs",
        "/docs/oauth2-redirect",
        "/problems",
        "/problems/{slug}",
        "/v1/reports/funnel",
        "/v1/reports/time-to-convert",
        "/v1/reports/client-structure",
        "/v1/reports/fees",
        "/v1/reports/partners/{id}/scorecard",
        "/v1/reports/pack",
    }


async def test_every_page_loads_nothing_from_another_host(
    client: httpx.AsyncClient, caller: CallerFactory, make_partner: object
) -> None:
    partner = await make_partner(legal_name=HOSTILE_NAME)  # type: ignore[operator]
    manager = await caller("staff", role=StaffRole.alliance_manager)

    docs = await assert_works_offline(client, "/docs")
    assert "/openapi.json" in docs and "swagger-ui-bundle.js" in docs
    await assert_works_offline(client, "/docs/oauth2-redirect")
    await assert_works_offline(client, "/problems")
    for slug in PROBLEM_TYPES:
        await assert_works_offline(client, f"/problems/{slug}")
    for report in ("funnel", "time-to-convert", "client-structure", "fees", f"partners/{partner.id}/scorecard", "pack"):
        page = await assert_works_offline(client, f"/v1/reports/{report}?format=html", headers=manager.headers)
        if "scorecard" in report:
            assert "&lt;img" in page  # the partner's name is text, not an image to load


async def test_redoc_whose_bundle_fetches_a_remote_logo_is_not_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/redoc")).status_code == 404
