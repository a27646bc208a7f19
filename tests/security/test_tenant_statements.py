"""Every SQL statement a partner's request sends over a partner-owned table carries the tenant rule.

The routes are every route the policy admits partners to (lists, creations and reports included, not only the
by-id ones of ``test_tenant_locks``); the tenant-owned tables are those of the metadata with a ``partner_id``
column. The owner calls each route on its own objects (so each call reaches its queries and succeeds) while every
statement the app sends is recorded. Each ``SELECT``, ``UPDATE`` or ``DELETE`` over a tenant-owned table must
filter by ``partner_id`` in a ``WHERE`` and be given the caller's partner id, or be keyed only by ids of rows the
request already reached that way (or created for the caller): an object's lines under its scoped lookup, the flush
of a row loaded scoped. A query written without ``scoped`` / ``owned_row`` (or the partner predicate of
hand-written SQL) fails here, naming its route and table. Statements creating rows (``INSERT``) are not reads.

The few statements that read across partners on purpose are listed in ``ACROSS_PARTNERS`` with the rule that needs
them; the list is checked too (an entry no statement needs any more fails).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import SQLModel

import app.tables  # noqa: F401  (every table model, for the metadata)
from app.reports import router as reports_router
from tests.factories.referrals import PartnerDesk, individual
from tests.security.policy import PARTNER, POLICY, app_routes
from tests.security.principals import disable_rate_limit
from tests.security.tenant_objects import Objects, new_desk, owner_order, prepare
from tests.security.test_cross_tenant import RolledBackWorld

TABLE = re.compile(r"\b(?:FROM|JOIN|UPDATE)\s+(\w+)", re.IGNORECASE)
PARTNER_IN_WHERE = re.compile(r"\bWHERE\b.*\bpartner_id\s*(?:=|IN\b|= ANY\b)", re.IGNORECASE | re.DOTALL)
CHECKED_VERBS = ("SELECT", "UPDATE", "DELETE", "WITH")
OBJECT_ID = re.compile(r"^[a-z]{3}_[A-Za-z0-9_-]{8,}$")

# Statements that read a tenant-owned table across partners because a rule of DESIGN.md needs it, each recognised
# by what only it contains: (table, marker in the statement) -> the rule.
ACROSS_PARTNERS: dict[tuple[str, str], str] = {
    ("referrals", "identity_hash"): "attribution rule 3: another partner's active referral for the same identity",
    ("identity_holders", "identity_hash"): "attribution rule 6: the one holder of an identity, whichever partner's",
}

# Routes that run the back office's own code for the caller: the sandbox's simulated back office reports an event
# "through the very code that handles real events" (DESIGN.md, "Sandbox"), once the request has reached the
# caller's referral scoped and refused what it may not do. The feed's statements over these tables are keyed by the
# referral's client account and program, as for the firm's back office: route -> the tables they read.
ON_BEHALF_OF_THE_BACK_OFFICE: dict[str, tuple[str, ...]] = {
    "POST /v1/sandbox/referrals/{referral_id}/simulate": ("conversion_events", "programs"),
}

# The request a partner route without a path id needs to reach its queries (the others get no body).
CREATIONS = {
    ("POST", "/v1/referrals"): "referral",
    ("POST", "/v1/referral-batches"): "batch",
    ("POST", "/v1/webhook-endpoints"): "endpoint",
}


def tenant_tables() -> set[str]:
    return {name for name, table in SQLModel.metadata.tables.items() if "partner_id" in table.columns}


@dataclass(frozen=True)
class Sent:
    route: str
    statement: str
    parameters: tuple[object, ...]


class StatementLog:
    """Every statement the app sends while recording, with its parameters."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.sent: list[Sent] = []
        self.route = ""

    def _record(self, _conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        values = tuple(parameters) if isinstance(parameters, (list, tuple)) else ()
        self.sent.append(Sent(self.route, " ".join(statement.split()), values))

    @contextmanager
    def recording(self, route: str) -> Iterator[None]:
        self.route = route
        event.listen(self.engine, "before_cursor_execute", self._record)
        try:
            yield
        finally:
            event.remove(self.engine, "before_cursor_execute", self._record)


class TenantRule:
    """Checks one request's statements in order, knowing which rows the request has reached as the caller's."""

    def __init__(self, tables: set[str], partner_id: str) -> None:
        self.tables, self.partner_id = tables, partner_id
        self.exempt: set[tuple[str, str]] = set()
        self.owned: set[str] = set()  # ids of rows this request read scoped, or created for the caller

    def _scoped(self, sent: Sent) -> bool:
        return bool(PARTNER_IN_WHERE.search(sent.statement)) and self.partner_id in sent.parameters

    def _ids(self, sent: Sent) -> set[str]:
        """Object ids among the parameters, arrays included (set-based statements key rows by ``unnest``)."""
        values = [item for value in sent.parameters for item in (value if isinstance(value, list | tuple) else [value])]
        return {value for value in values if isinstance(value, str) and OBJECT_ID.match(value)}

    def unscoped(self, sent: Sent) -> list[str]:
        """The tenant-owned tables ``sent`` reads or changes without the tenant rule (none for a new row)."""
        if "INSERT INTO" in sent.statement.upper():
            # Creating rows: the caller's, or notices built from them (joined on their partner).
            if self.partner_id in sent.parameters:
                self.owned |= self._ids(sent)
            return []
        if not sent.statement.upper().startswith(CHECKED_VERBS):
            return []
        touched = {name.lower() for name in TABLE.findall(sent.statement)} & self.tables
        if not touched:
            return []
        if self._scoped(sent):
            self.owned |= self._ids(sent)
            return []
        if self._ids(sent) and self._ids(sent) <= self.owned:
            # Keyed only by rows the request already reached scoped (an object's lines, a flush of a loaded row).
            return []
        missing = []
        for table in sorted(touched):
            reasons = [key for key in ACROSS_PARTNERS if key[0] == table and key[1] in sent.statement]
            self.exempt.update(reasons)
            if not reasons:
                missing.append(table)
        return missing


async def _create(client: httpx.AsyncClient, what: str, owner: PartnerDesk) -> httpx.Response:
    if what == "referral":
        return await client.post("/v1/referrals", json=individual(owner.program.id), headers=owner.headers())
    if what == "batch":
        lines = "".join(json.dumps(individual(owner.program.id), ensure_ascii=False) + "\n" for _ in range(2))
        headers = {**owner.headers(), "Content-Type": "application/x-ndjson"}
        return await client.post("/v1/referral-batches", content=lines.encode(), headers=headers)
    body = {"url": "http://127.0.0.1:9/hooks", "event_types": ["referral.status_changed"]}
    return await client.post("/v1/webhook-endpoints", json=body, headers=owner.headers())


@pytest.fixture
def log(engine: AsyncEngine) -> StatementLog:
    return StatementLog(engine)


async def _no_fold(database: object) -> None:
    return None


async def test_every_partner_query_over_a_tenant_table_filters_by_the_callers_partner(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, log: StatementLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    disable_rate_limit(app)
    # The report summary's fold runs after a report's answer as the platform's own job over every partner's
    # changes (tests/reports cover it); the report itself stays exact without it, and is checked here.
    monkeypatch.setattr(reports_router, "fold_queue", _no_fold)
    tables = tenant_tables()
    assert {"referrals", "statements", "webhook_endpoints", "referral_batches", "fee_accruals"} <= tables
    routes = owner_order([route for route in app_routes(app) if POLICY[route].admits(PARTNER)])
    assert len(routes) >= 25, routes
    world = RolledBackWorld(app, client, session)
    objects = Objects(world, await new_desk(world, "甲方银行"))
    await new_desk(world, "乙方银行")  # another partner's rows exist, so an unscoped read would matter
    owner = objects.owner

    failures: list[str] = []
    for method, path in routes:
        call = await prepare(objects, method, path)  # A's objects, made before recording starts
        with log.recording(f"{method} {path}"):
            if (method, path) in CREATIONS:
                response = await _create(client, CREATIONS[method, path], owner)
            else:
                response = await client.request(call.method, call.url, json=call.body, headers=owner.headers())
        if not 200 <= response.status_code < 300:
            failures.append(f"{method} {path} by its owner: {response.status_code} {response.text[:200]}")

    recorded = [sent.route for sent in log.sent]
    assert set(recorded) == {f"{method} {path}" for method, path in routes}
    exempt: set[tuple[str, str]] = set()
    for route in dict.fromkeys(recorded):
        rule = TenantRule(tables, owner.partner.id)
        feed_tables = ON_BEHALF_OF_THE_BACK_OFFICE.get(route, ())
        for sent in log.sent:
            if sent.route != route:
                continue
            for table in rule.unscoped(sent):
                if table in feed_tables:
                    exempt.add((route, table))
                else:
                    failures.append(f"{route}: {table} without the tenant rule: {sent.statement[:400]}")
        exempt |= rule.exempt
    failures.extend(f"ACROSS_PARTNERS entry no statement needs: {key}" for key in set(ACROSS_PARTNERS) - exempt)
    feed_reads = {(route, table) for route, tables in ON_BEHALF_OF_THE_BACK_OFFICE.items() for table in tables}
    failures.extend(f"ON_BEHALF_OF_THE_BACK_OFFICE entry no statement needs: {key}" for key in feed_reads - exempt)
    assert not failures, "\n".join(failures)


def test_the_rule_flags_what_lacks_the_tenant_and_passes_what_carries_it() -> None:
    rule = TenantRule({"referrals", "referral_events"}, "ptn_own")
    owned_id, foreign_id = "ref_owned123456", "ref_foreign1234"

    def sent(statement: str, *parameters: object) -> Sent:
        return Sent("GET /x", statement, parameters)

    unscoped_list = sent("SELECT referrals.id FROM referrals ORDER BY referrals.id")
    assert rule.unscoped(unscoped_list) == ["referrals"]
    by_id_unscoped = sent("SELECT referrals.id FROM referrals WHERE referrals.id = $1", foreign_id)
    assert rule.unscoped(by_id_unscoped) == ["referrals"]
    another_partner = sent("SELECT referrals.id FROM referrals WHERE referrals.partner_id = $1", "ptn_other")
    assert rule.unscoped(another_partner) == ["referrals"]
    scoped = "SELECT referrals.id FROM referrals WHERE referrals.id = $1 AND referrals.partner_id = $2"
    assert rule.unscoped(sent(scoped, owned_id, "ptn_own")) == []
    # Once reached scoped, the row's children and its flush may be keyed by its id alone; a foreign id may not.
    events = "SELECT referral_events.id FROM referral_events WHERE referral_events.referral_id = $1"
    assert rule.unscoped(sent(events, owned_id)) == []
    assert rule.unscoped(sent(events, foreign_id)) == ["referral_events"]
    assert rule.unscoped(sent("UPDATE referrals SET status=$1 WHERE referrals.id = $2", "x", owned_id)) == []
    assert rule.unscoped(sent("SELECT programs.id FROM programs WHERE programs.id = $1", foreign_id)) == []
