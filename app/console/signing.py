"""What signing in by password and by single sign-on share: where a person may be sent back to, the sign-in page
with its double-submit token, the console's cookies, and the answer that opens a session."""

from __future__ import annotations

import secrets

from fastapi import Request
from starlette.responses import Response

from app.audit.service import Actor
from app.console.access import SESSION_COOKIE
from app.console.templating import redirect, render
from app.core.config import Settings
from app.people.schemas import OpenedSession

SIGN_IN_URL = "/console/sign-in"
PRE_SESSION_COOKIE = "console_sign_in"


def local_next(target: str | None) -> str:
    """Only a page of the console is a place to come back to (no open redirect)."""
    if not target or not target.startswith("/console") or target.startswith("//") or "\\" in target:
        return "/console"
    if target.startswith(SIGN_IN_URL):
        return "/console"
    return target


def request_actor_of(request: Request, username: str, kind: str = "staff") -> Actor:
    return Actor(
        id=f"person:{username}"[:80],
        kind=kind,
        request_id=getattr(request.state, "request_id", None),
        ip_address=request.client.host if request.client else None,
    )


def set_cookie(response: Response, settings: Settings, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        secure=settings.console_cookies_secure,
        samesite="lax",
    )


def session_response(request: Request, opened: OpenedSession, next_url: str) -> Response:
    """The answer to a successful sign-in: the session cookie, and on to the page asked for."""
    settings: Settings = request.app.state.settings
    response = redirect(local_next(next_url))
    set_cookie(response, settings, SESSION_COOKIE, opened.token, max_age=settings.console_session_lifetime_s)
    response.delete_cookie(PRE_SESSION_COOKIE, path="/console")
    return response


def sign_in_page(
    request: Request, *, next_url: str, error: str | None = None, status_code: int = 200, **fields: object
) -> Response:
    """The sign-in form, with a fresh double-submit token."""
    settings: Settings = request.app.state.settings
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "people/sign_in.html",
        {
            "next_url": local_next(next_url),
            "form_token": token,
            "error": error,
            "sso_enabled": settings.oidc_enabled,
            "local_enabled": True,
            **fields,
        },
        status_code=status_code,
    )
    set_cookie(response, settings, PRE_SESSION_COOKIE, token, max_age=3600)
    return response
