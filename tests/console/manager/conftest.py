"""The manager's pages are checked against the reports' story alliance (``tests/reports/conftest.py``): three
partners, eleven referrals, one conflict (R5, the insurer's referral of R1's person), known figures."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from tests.reports.conftest import Book, write_book


@pytest.fixture
async def book(app: FastAPI, session: AsyncSession) -> Book:
    return await write_book(session, app.state.data_keyring)


# --- until the people domain's sessions land: a stand-in with the same interface as its ``console_as`` ---------

import itertools  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import httpx  # noqa: E402

from app.auth.scopes import StaffRole  # noqa: E402
from app.console import access  # noqa: E402

_numbers = itertools.count(1)


@dataclass
class SignedIn:
    client: httpx.AsyncClient
    person: access.SignedInPerson
    csrf_token: str

    @property
    def actor_id(self) -> str:
        return f"person:{self.person.username}"

    def form(self, **fields: object) -> dict[str, object]:
        return {"csrf_token": self.csrf_token, **fields}

    async def post(self, url: str, **fields: object) -> httpx.Response:
        return await self.client.post(url, data=self.form(**fields))


@pytest.fixture
async def console_as(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[object]:
    people: dict[str, access.SignedInPerson] = {}

    async def current(request: object) -> access.SignedInPerson | None:
        cookie = request.cookies.get("stand_in")  # type: ignore[attr-defined]
        return people.get(cookie or "")

    monkeypatch.setattr(access, "current_person", current)
    clients: list[httpx.AsyncClient] = []

    async def make(role: StaffRole | str, **_: object) -> SignedIn:
        number = next(_numbers)
        person = access.SignedInPerson(
            f"psn_{number}", f"person{number}", f"测试人员{number}", StaffRole(role), f"ses_{number}", f"csrf{number}"
        )
        people[person.session_id] = person
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="https://testserver",
            cookies={"stand_in": person.session_id},
        )
        clients.append(client)
        return SignedIn(client, person, person.csrf_token)

    yield make
    for client in clients:
        await client.aclose()
