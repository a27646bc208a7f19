"""What the generic console tests share: the routes to walk (from ``tests/console/policy.py`` and the app, never
from a route's own declaration), their path parameters filled in, and a count of the writes a request made."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html.parser import HTMLParser

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth import service as credentials
from app.auth.scopes import PrincipalKind
from tests.console.policy import ANYONE, CONSOLE_POLICY, ROLES, console_routes

PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
UNKNOWN_ID = "unknown0id"
# Tables a request may write without changing anything a person did: the session's last-seen time.
BOOKKEEPING_TABLES = ("console_sessions",)


async def _a_client(session: AsyncSession) -> str:
    created = await credentials.create_client(
        session, Actor.system("test"), name="walked back office", kind=PrincipalKind.back_office
    )
    return created.client.id


# Real objects for the path parameters where one is cheap to make; any other parameter gets an unknown id.
REAL_OBJECTS: dict[str, Callable[[AsyncSession], Awaitable[str]]] = {"client_id": _a_client}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    admitted: tuple[str, ...]

    @property
    def parameters(self) -> list[str]:
        return PARAMETER.findall(self.path)

    @property
    def refused(self) -> tuple[str, ...]:
        return tuple(role for role in ROLES if role not in self.admitted)

    def url(self, values: dict[str, str] | None = None) -> str:
        values = values or {}
        return PARAMETER.sub(lambda match: values.get(match[1], UNKNOWN_ID), self.path)


def walked_routes(app: FastAPI) -> list[Route]:
    """Every console route that needs a session, with the roles the policy admits."""
    routes = []
    for method, path in console_routes(app):
        admitted = CONSOLE_POLICY.get((method, path))
        if method == "MOUNT" or admitted is None or admitted == ANYONE:
            continue  # a route without an entry fails test_every_console_route_has_an_entry
        assert isinstance(admitted, tuple)
        routes.append(Route(method, path, admitted))
    return routes


async def real_values(session: AsyncSession, routes: list[Route]) -> dict[str, str]:
    """One real object for each path parameter that has a maker."""
    wanted = {name for route in routes for name in route.parameters if name in REAL_OBJECTS}
    return {name: await REAL_OBJECTS[name](session) for name in sorted(wanted)}


async def writes_so_far(session: AsyncSession) -> int:
    """Rows inserted, updated or deleted in the test's transaction so far (bookkeeping tables aside).

    The app's requests run on the test's connection, so PostgreSQL's per-transaction statistics see their writes.
    """
    count = await session.scalar(
        text(
            "SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables"
            " WHERE relname <> ALL(:bookkeeping)"
        ),
        {"bookkeeping": list(BOOKKEEPING_TABLES)},
    )
    return int(count or 0)


async def audit_events(session: AsyncSession) -> int:
    return int(await session.scalar(text("SELECT count(*) FROM audit_events")) or 0)


class VisibleText(HTMLParser):
    """The text a person reads on a page: text nodes and the attributes a browser shows, outside scripts."""

    SHOWN_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        for name, value in attrs:
            if name in self.SHOWN_ATTRIBUTES and value and value.strip():
                self.texts.append(value.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden = max(0, self._hidden - 1)

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.texts.append(data.strip())
