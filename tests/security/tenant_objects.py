"""Real objects of one partner, for the cross-tenant tests: one factory per kind of path parameter.

``OBJECT_FACTORIES`` makes, for each path parameter of a partner route (``referral_id``, ``statement_id``, ...), an
object of partner A through the public API or the services, as the partner's integration and finance would. A new
partner route whose path parameter has no factory here fails the cross-tenant tests, naming it. ``FOOTPRINTS`` says
which rows make up an object (its own and the ones that hang from it), to compare before and after another
partner's call; ``REQUESTS`` gives the body a route needs to reach its lookup (routes absent from it get none).

Everything goes through a ``World``: the rolled-back test transaction of the usual fixtures, or a scratch database
whose every step commits (to watch locks from another connection).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.models import Partner, PartnerKind, Program
from app.catalog.schemas import PartnerCreate
from app.fees.models import FeeRule
from app.reconciliation.models import MatchClass, ReconciliationItem
from tests.conftest import Caller
from tests.factories.referrals import PartnerDesk, individual, make_program
from tests.reconciliation.books import MARCH, book

T = TypeVar("T")
ACTOR = Actor.system("test")


class World(Protocol):
    """Where the objects live: an API client, a way to run work in a session, and principals."""

    client: httpx.AsyncClient

    async def write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T: ...

    async def caller(self, kind: str, *, role: str | None = None, partner_id: str | None = None) -> Caller: ...


async def new_desk(world: World, name: str) -> PartnerDesk:
    """A bank with a program and a token."""

    async def create(session: AsyncSession) -> tuple[Partner, Program]:
        partner = await catalog.create_partner(session, ACTOR, PartnerCreate(kind=PartnerKind.bank, legal_name=name))
        return partner, await make_program(session, partner)

    partner, program = await world.write(create)
    return PartnerDesk(await world.caller("partner", partner_id=partner.id), partner, program)


@dataclass
class Objects:
    """Partner A's objects, by the path parameter that names them."""

    world: World
    owner: PartnerDesk
    ids: dict[str, str] = field(default_factory=dict)

    async def id_of(self, parameter: str) -> str:
        """The id of A's object for ``parameter``, made the first time it is asked for."""
        if parameter not in self.ids:
            self.ids[parameter] = await OBJECT_FACTORIES[parameter](self)
        return self.ids[parameter]


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201, 202), response.text
    return dict(response.json())


async def _program(objects: Objects) -> str:
    return objects.owner.program.id


async def _referral(objects: Objects) -> str:
    program_id = await objects.id_of("program_id")
    response = await objects.world.client.post(
        "/v1/referrals", json=individual(program_id), headers=objects.owner.headers()
    )
    return str(_created(response)["id"])


async def _batch(objects: Objects) -> str:
    program_id = await objects.id_of("program_id")
    lines = "\n".join(json.dumps(individual(program_id), ensure_ascii=False) for _ in range(2)) + "\n"
    headers = {**objects.owner.headers(), "Content-Type": "application/x-ndjson"}
    response = await objects.world.client.post("/v1/referral-batches", content=lines.encode(), headers=headers)
    return str(_created(response)["id"])


async def _endpoint(objects: Objects) -> str:
    body = {"url": "http://127.0.0.1:9/hooks", "event_types": ["referral.status_changed"]}
    response = await objects.world.client.post("/v1/webhook-endpoints", json=body, headers=objects.owner.headers())
    return str(_created(response)["id"])


async def _delivery(objects: Objects) -> str:
    endpoint_id = await objects.id_of("endpoint_id")
    response = await objects.world.client.post(
        f"/v1/webhook-endpoints/{endpoint_id}/test", headers=objects.owner.headers()
    )
    return str(_created(response)["id"])


# A's claim for its March statement: one line matches, one differs (an item the partner may dispute).
CLAIM = [
    {"external_ref": "T-1", "fee_type": FeeRule.funded_bounty.value, "amount_fen": 20_000},
    {"external_ref": "T-2", "fee_type": FeeRule.funded_bounty.value, "amount_fen": 99_000},
]


async def _statement(objects: Objects) -> str:
    """An issued March statement of A with two lines, and A's claim against it."""

    async def lines(session: AsyncSession) -> None:
        for ref in ("T-1", "T-2"):
            await book(session, objects.owner.partner.id, 20_000, ref=ref, at=MARCH)

    await objects.world.write(lines)
    finance = await objects.world.caller("staff", role="finance")
    client = objects.world.client
    closed = _created(await client.post("/v1/finance/periods/2026-03/close", headers=finance.headers))
    [statement] = [item for item in closed["statements"] if item["partner_id"] == objects.owner.partner.id]
    _created(await client.post(f"/v1/finance/statements/{statement['id']}/issue", headers=finance.headers))
    claim = await client.post(
        f"/v1/statements/{statement['id']}/claims", json={"lines": CLAIM}, headers=objects.owner.headers()
    )
    _created(claim)
    return str(statement["id"])


OBJECT_FACTORIES: dict[str, Callable[[Objects], Awaitable[str]]] = {
    "program_id": _program,
    "referral_id": _referral,
    "batch_id": _batch,
    "endpoint_id": _endpoint,
    "delivery_id": _delivery,
    "statement_id": _statement,
}

# The rows of each kind of object: (table, column holding the object's id).
FOOTPRINTS: dict[str, list[tuple[str, str]]] = {
    "program_id": [("programs", "id"), ("program_products", "program_id"), ("fee_schedules", "program_id")],
    "referral_id": [("referrals", "id"), ("referral_events", "referral_id")],
    "batch_id": [("referral_batches", "id"), ("referral_batch_results", "batch_id"), ("referrals", "batch_id")],
    "endpoint_id": [("webhook_endpoints", "id"), ("webhook_deliveries", "endpoint_id")],
    "delivery_id": [("webhook_deliveries", "id"), ("webhook_attempts", "delivery_id")],
    "statement_id": [
        ("statements", "id"),
        ("fee_accruals", "statement_id"),
        ("claims", "statement_id"),
        ("reconciliation_items", "statement_id"),
    ],
}


async def footprint(world: World, parameter: str, object_id: str) -> dict[str, Any]:
    """Every row of the object (and its audit trail), as JSON, in a stable order."""

    async def read(session: AsyncSession) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        for table, column in [*FOOTPRINTS[parameter], ("audit_events", "object_id")]:
            rows[f"{table}.{column}"] = await session.scalar(
                text(
                    f"SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]'::jsonb) "
                    f"FROM {table} t WHERE t.{column} = :id"
                ),
                {"id": object_id},
            )
        return rows

    return await world.write(read)


async def _open_item(objects: Objects) -> str:
    statement_id = await objects.id_of("statement_id")

    async def find(session: AsyncSession) -> str | None:
        return await session.scalar(
            select(col(ReconciliationItem.id))
            .where(
                col(ReconciliationItem.statement_id) == statement_id,
                col(ReconciliationItem.match_class) != MatchClass.matched,
            )
            .order_by(col(ReconciliationItem.id))
            .limit(1)
        )

    item_id = await objects.world.write(find)
    assert item_id, "A's statement has no discrepancy to dispute"
    return item_id


async def _dispute(objects: Objects) -> dict[str, Any]:
    return {"items": [{"item_id": await _open_item(objects), "reason": "our records differ"}]}


def fixed(body: dict[str, Any]) -> Callable[[Objects], Awaitable[dict[str, Any]]]:
    async def build(objects: Objects) -> dict[str, Any]:
        return body

    return build


# The JSON body each partner route needs to get past validation to its lookup (built from A's objects).
REQUESTS: dict[tuple[str, str], Callable[[Objects], Awaitable[dict[str, Any]]]] = {
    ("POST", "/v1/referrals/{referral_id}/withdraw"): fixed({"reason": "client_request"}),
    ("POST", "/v1/sandbox/referrals/{referral_id}/simulate"): fixed({"type": "account_opened"}),
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): fixed({"description": "renamed by its owner"}),
    ("POST", "/v1/statements/{statement_id}/claims"): fixed({"lines": CLAIM}),
    ("POST", "/v1/statements/{statement_id}/disputes"): _dispute,
    ("POST", "/v1/sandbox/clock/advance"): fixed({"by_days": 1}),
}


def path_parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def without_factory(routes: list[tuple[str, str]]) -> list[str]:
    """The routes naming a path parameter that no factory makes, for the failure message."""
    return [
        f"{method} {path}: no factory for {parameter} in tests/security/tenant_objects.py OBJECT_FACTORIES"
        for method, path in routes
        for parameter in path_parameters(path)
        if parameter not in OBJECT_FACTORIES or parameter not in FOOTPRINTS
    ]


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    url: str
    body: dict[str, Any] | None
    parameters: list[str]


async def prepare(objects: Objects, method: str, path: str) -> Call:
    """The call of ``method path`` on A's objects (made on demand)."""
    url = path
    parameters = path_parameters(path)
    for parameter in parameters:
        url = url.replace("{" + parameter + "}", await objects.id_of(parameter))
    build = REQUESTS.get((method, path))
    body = await build(objects) if build else None
    return Call(method, path, url, body, parameters)


async def send(world: World, call: Call, who: PartnerDesk) -> httpx.Response:
    return await world.client.request(call.method, call.url, json=call.body, headers=who.headers())


def owner_order(routes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Reads first, deletions and withdrawals last: the order in which the owner can make every call on the same
    objects (a withdrawn referral takes no further step)."""
    rank = {"GET": 0, "DELETE": 2}
    return sorted(routes, key=lambda route: 2 if route[1].endswith("/withdraw") else rank.get(route[0], 1))
