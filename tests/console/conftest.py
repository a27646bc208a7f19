"""Signed-in people for console tests: ``await console_as("finance")`` is a person of that role with a session, and
an httpx client on the test's app that carries the session cookie.

The person and the session are made through the people services (not the sign-in form: no argon2 work, no TOTP),
so that page tests stay fast; the sign-in form is tested on its own in ``test_sign_in.py``. Each call makes a new
person, so ``a = await console_as("finance"); b = await console_as("finance")`` are two different people of one
role (four eyes). The default base URL is https (console cookies are ``Secure`` outside development).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth.scopes import StaffRole
from app.console.access import SESSION_COOKIE
from app.core.config import Settings
from app.people import service as people_service
from app.people import sessions
from app.people.models import Person
from app.people.schemas import OpenedSession

BASE_URL = "https://testserver"
ACTOR = Actor.system("test")
_numbers = itertools.count(1)


@dataclass
class SignedIn:
    """One person signed in to the console: ``client`` sends their session cookie; post forms with ``form()``."""

    client: httpx.AsyncClient
    person: Person
    session_id: str
    token: str
    csrf_token: str

    @property
    def role(self) -> StaffRole:
        return self.person.role

    @property
    def username(self) -> str:
        return self.person.username

    @property
    def actor_id(self) -> str:
        """The ``actor_id`` of this person's rows in the audit log."""
        return f"person:{self.person.username}"

    def form(self, **fields: object) -> dict[str, object]:
        """Form fields with this session's CSRF token added."""
        return {"csrf_token": self.csrf_token, **fields}

    async def post(self, url: str, **fields: object) -> httpx.Response:
        """POST a form (with the CSRF token) as this person."""
        return await self.client.post(url, data=self.form(**fields))


class ConsoleAs(Protocol):
    async def __call__(
        self, role: StaffRole | str, *, username: str | None = None, display_name: str | None = None
    ) -> SignedIn: ...


async def sign_in_person(
    app: FastAPI,
    session: AsyncSession,
    settings: Settings,
    role: StaffRole | str,
    *,
    username: str | None = None,
    display_name: str | None = None,
) -> tuple[Person, httpx.AsyncClient, OpenedSession]:
    """A new person of ``role`` (no password: a person of the single sign-on) with an open session, and a client."""
    role = StaffRole(role)
    number = next(_numbers)
    person = await people_service.sign_in_with_sso(
        session,
        ACTOR,
        subject=f"https://idp.test person-{number}-{role.value}",
        username=username or f"test-{role.value.replace('_', '-')}-{number}",
        display_name=display_name or f"Test {role.value} {number}",
        role=role,
    )
    opened = await sessions.open_session(session, settings, person.id, method="test", ip_address="127.0.0.1")
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, cookies={SESSION_COOKIE: opened.token}
    )
    return person, client, opened


@pytest.fixture
async def console_as(app: FastAPI, session: AsyncSession, settings: Settings) -> AsyncIterator[ConsoleAs]:
    clients: list[httpx.AsyncClient] = []

    async def make(role: StaffRole | str, *, username: str | None = None, display_name: str | None = None) -> SignedIn:
        person, client, opened = await sign_in_person(
            app, session, settings, role, username=username, display_name=display_name
        )
        clients.append(client)
        return SignedIn(client, person, opened.session_id, opened.token, opened.csrf_token)

    yield make
    for client in clients:
        await client.aclose()
