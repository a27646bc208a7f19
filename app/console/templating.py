"""Rendering: one Jinja2 environment for every console page, with the number filters, the translator and the
navigation of the signed-in person. The same view renders a whole page, or only its fragment for htmx
(``HX-Request``), so that the URL always holds the state."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.console import formatting
from app.console.i18n import locale_of, translator
from app.console.navigation import navigation_for

FLASH_COOKIE = "console_flash"

environment = Environment(
    loader=PackageLoader("app.console", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(
    yuan=formatting.yuan,
    count=formatting.count,
    percent=formatting.percent,
    moment=formatting.moment,
    day=formatting.day,
)


def is_fragment_request(request: Request) -> bool:
    """htmx asks for the region it swaps; a browser (or a link opened anew) gets the whole page."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") is None


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    fragment: str | None = None,
) -> HTMLResponse:
    """Render ``template`` (or, for an htmx request, ``fragment`` when given) with the console's context."""
    locale = locale_of(request)
    person = getattr(request.state, "person", None)
    values = {
        "request": request,
        "locale": locale,
        "t": translator(locale),
        "person": person,
        "navigation": navigation_for(person.scopes if person else frozenset(), request.url.path),
        "flashes": _read_flashes(request),
        **(context or {}),
    }
    name = fragment if fragment and is_fragment_request(request) else template
    response = HTMLResponse(environment.get_template(name).render(values), status_code=status_code)
    if values["flashes"]:
        response.delete_cookie(FLASH_COOKIE, path="/console")
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(url: str, *, flash: str | None = None, level: str = "success") -> Response:
    """After a form: 303 to the page to show, with a message for the next render. htmx follows it too."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        response.set_cookie(
            FLASH_COOKIE,
            quote(json.dumps([[level, flash]], ensure_ascii=False)),
            max_age=60,
            path="/console",
            httponly=True,
            samesite="lax",
        )
    return response


def _read_flashes(request: Request) -> list[tuple[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    try:
        items = json.loads(unquote(raw))
        return [(str(level), str(text)) for level, text in items][:5]
    except (ValueError, TypeError):
        return []
