"""Another partner's objects are not found, and stay exactly as they were: every partner route with a path id.

The routes are the app's own (those the policy admits partners to, with a path parameter); the objects are real,
made for partner A by ``tests.security.tenant_objects``. Partner B's call gets the 404 an unknown id gets, and no row
of A's object (nor of what hangs from it, nor its audit trail) changes. A then makes the same calls, which reach its
objects: B's 404 came from the tenant, not from a request that could not have worked.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Caller, new_caller
from tests.security.policy import partner_routes_with_ids
from tests.security.principals import disable_rate_limit
from tests.security.tenant_objects import (
    Call,
    Objects,
    footprint,
    new_desk,
    owner_order,
    prepare,
    send,
    without_factory,
)

T = TypeVar("T")


class RolledBackWorld:
    """The usual test transaction: services flush into it, the app's requests join it."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, session: AsyncSession) -> None:
        self.app, self.client, self.session = app, client, session

    async def write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        result = await work(self.session)
        await self.session.flush()
        return result

    async def caller(self, kind: str, *, role: str | None = None, partner_id: str | None = None) -> Caller:
        return await new_caller(self.app, self.session, kind, role=role, partner_id=partner_id)


def _problem(response: httpx.Response) -> tuple[int, Any, Any, Any]:
    body = response.json() if response.headers.get("content-type") == "application/problem+json" else {}
    return response.status_code, body.get("type"), body.get("title"), body.get("detail")


def _unknown(call: Call) -> Call:
    """The same call on ids that do not exist."""
    return Call(call.method, call.path, re.sub(r"\{[^}]+\}", "x_unknown", call.path), call.body, call.parameters)


async def test_another_partner_gets_404_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    disable_rate_limit(app)
    routes = partner_routes_with_ids(app)
    assert len(routes) >= 17, routes
    assert not (missing := without_factory(routes)), "\n".join(missing)
    world = RolledBackWorld(app, client, session)
    objects = Objects(world, await new_desk(world, "甲方银行"))
    intruder = await new_desk(world, "乙方银行")

    failures = []
    for method, path in routes:
        call = await prepare(objects, method, path)
        before = {name: await footprint(world, name, objects.ids[name]) for name in call.parameters}
        response = await send(world, call, intruder)
        after = {name: await footprint(world, name, objects.ids[name]) for name in call.parameters}
        unknown = await send(world, _unknown(call), intruder)
        if response.status_code != 404:
            failures.append(f"{method} {path} by another partner: {response.status_code} {response.text[:200]}")
        elif _problem(response) != _problem(unknown):
            failures.append(f"{method} {path}: {_problem(response)} differs from an unknown id's {_problem(unknown)}")
        for name in call.parameters:
            if before[name] != after[name]:
                changed = [rows for rows in before[name] if before[name][rows] != after[name][rows]]
                failures.append(f"{method} {path} by another partner changed A's {name} rows: {changed}")

    for method, path in owner_order(routes):
        call = await prepare(objects, method, path)
        response = await send(world, call, objects.owner)
        if not 200 <= response.status_code < 300:
            failures.append(f"{method} {path} by its owner: {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)
