"""The console's own routes (home, language) and how it is mounted: static files from the package, the page
routers of each area, and the handlers that turn a missing session into a redirect and a missing role into the
403 page."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse, Response

from app.console.access import (
    PageForbidden,
    SignInRequired,
    StaleForm,
    current_person,
    sign_in_url,
)
from app.console.i18n import LOCALE_COOKIE, LOCALES
from app.console.navigation import home_for
from app.console.sign_in import install_throttles
from app.console.sign_in import router as sign_in_router
from app.console.sso import router as sso_router
from app.console.templating import render
from app.core.problems import Problem

ApiHandler = Callable[[Request, Any], Response | Awaitable[Response]]

STATIC_URL = "/console/static"
_STATIC = Path(__file__).parent / "static"

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
async def console_home(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return RedirectResponse(sign_in_url("/console"), status_code=303)
    return RedirectResponse(home_for(person.scopes), status_code=303)


def _local_path(target: str) -> str:
    """Only a path of the console is a place to come back to (no open redirect)."""
    return target if target.startswith("/console") and not target.startswith("//") else "/console"


@router.post("/language")
async def choose_language(lang: Annotated[str, Form()], next: Annotated[str, Form()] = "/console") -> Response:
    response = RedirectResponse(_local_path(next), status_code=303)
    if lang in LOCALES:
        response.set_cookie(LOCALE_COOKIE, lang, max_age=365 * 86400, path="/", samesite="lax")
    return response


async def _on_sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    if request.headers.get("HX-Request") == "true":  # htmx: load the sign-in page as a whole
        return Response(status_code=204, headers={"HX-Redirect": sign_in_url(exc.next_url)})
    return RedirectResponse(sign_in_url(exc.next_url), status_code=303)


async def _on_forbidden(request: Request, exc: Exception) -> Response:
    return render(request, "errors/forbidden.html", status_code=403)


async def _on_stale_form(request: Request, exc: Exception) -> Response:
    return render(request, "errors/stale_form.html", status_code=403)


def install_console(app: FastAPI, *routers: APIRouter) -> None:
    """Mount the console: its assets, its own routes and the page routers of each area."""
    app.mount(STATIC_URL, StaticFiles(directory=_STATIC), name="console-static")
    app.include_router(router)
    app.include_router(sign_in_router)
    app.include_router(sso_router)
    install_throttles(app.state, app.state.settings)
    for page_router in routers:
        app.include_router(page_router)
    app.add_exception_handler(SignInRequired, _on_sign_in_required)
    app.add_exception_handler(PageForbidden, _on_forbidden)
    app.add_exception_handler(StaleForm, _on_stale_form)
    for failure in (Problem, RequestValidationError):
        app.add_exception_handler(failure, _as_a_page_in_the_console(app.exception_handlers[failure]))


def _as_a_page_in_the_console(api_handler: ApiHandler) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A failure on a console page is a page for a person (never a JSON document); the API keeps its problems."""

    async def handler(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith("/console") or request.url.path.startswith(STATIC_URL):
            answer = api_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        if isinstance(exc, Problem):
            status, title, detail = exc.status, exc.title, exc.detail
            if title == "Conflict":  # the generic 409; "Conflict" on the console means an attribution conflict
                title = "This cannot be done in the current state"
        else:
            status, title, detail = 422, "This form is incomplete or invalid; please check it and try again", None
        context = {"status": status, "title": title, "detail": detail}
        return render(request, "errors/problem.html", context, status_code=status)

    return handler
