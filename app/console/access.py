"""Who is signed in, and what they may open: the dependencies every console page and form declares.

``page_for(scope)`` answers the signed-in person or ends the request: no session → a redirect to sign-in (with
the page to come back to), a role without ``scope`` → the 403 page. ``form_for(scope)`` also checks the CSRF token
of the posted form. The scope is the one the matching API route needs (``ROLE_SCOPES``), so the console and the
API authorise alike.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request

from app.audit.service import Actor
from app.auth.scopes import ROLE_SCOPES, StaffRole
from app.core.tenancy import Tenant
from app.people import sessions

CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class SignedInPerson:
    """One of the firm's people, in one console session."""

    person_id: str
    username: str
    display_name: str
    role: StaffRole
    session_id: str
    csrf_token: str

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(ROLE_SCOPES[self.role])

    @property
    def sees_every_partner(self) -> bool:
        return True

    @property
    def tenant(self) -> Tenant:
        return Tenant.everyone(self)

    def actor(self, request: Request) -> Actor:
        """The audit actor: the person (by username), from this request."""
        client = request.client.host if request.client else None
        return Actor(
            id=f"person:{self.username}",
            kind="staff",
            request_id=getattr(request.state, "request_id", None),
            ip_address=client,
        )


class SignInRequired(Exception):
    """No valid session: the browser is sent to sign in, then back to ``next_url``."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class PageForbidden(Exception):
    """Signed in, but the role may not open this page (or post this form)."""


class StaleForm(Exception):
    """A posted form without this session's CSRF token."""


SESSION_COOKIE = "console_session"
_LOOKED_UP = "console_person_lookup"


async def current_person(request: Request) -> SignedInPerson | None:
    """The person of this request's session cookie, or ``None`` (no cookie, or a session that ended: idle, past
    its lifetime, signed out, or the person disabled). One statement, once per request."""
    if hasattr(request.state, _LOOKED_UP):
        found: SignedInPerson | None = getattr(request.state, _LOOKED_UP)
        return found
    token = request.cookies.get(SESSION_COOKIE)
    person = None
    if token and len(token) <= 128:
        database = request.app.state.database
        async with database.sessionmaker() as session, session.begin():
            holder = await sessions.holder_of(session, request.app.state.settings, token)
        if holder is not None:
            person = SignedInPerson(
                person_id=holder.person_id,
                username=holder.username,
                display_name=holder.display_name,
                role=holder.role,
                session_id=holder.session_id,
                csrf_token=holder.csrf_token,
            )
    setattr(request.state, _LOOKED_UP, person)
    return person


def sign_in_url(next_url: str) -> str:
    return "/console/sign-in?next=" + quote(next_url, safe="/")


def page_for(scope: str) -> Callable[[Request], Awaitable[SignedInPerson]]:
    async def dependency(request: Request) -> SignedInPerson:
        person = await current_person(request)
        if person is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target if request.method == "GET" else request.url.path)
        request.state.person = person
        if scope not in person.scopes:
            raise PageForbidden(scope)
        return person

    return dependency


def form_for(scope: str) -> Callable[[Request], Awaitable[SignedInPerson]]:
    page = page_for(scope)

    async def dependency(request: Request) -> SignedInPerson:
        person = await page(request)
        form = await request.form()
        sent = form.get(CSRF_FIELD)
        if not isinstance(sent, str) or not hmac.compare_digest(sent, person.csrf_token):
            raise StaleForm()
        return person

    return dependency
