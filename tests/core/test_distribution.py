"""The schema on a Citus cluster (docs/scaling.md), held to the code.

The oracle is the page's table of every table, its class and its distribution column, read here from the page
itself (nothing is imported from the app to say where a table goes). Checked: every table of the models is on the
page, the columns named there exist (or are marked "to add"), and every statement the hot paths send (a single
submission, a duplicate one, a batch chunk, a conversion feed call, ``GET /v1/referrals/{id}``, the list) filters
each distributed table it touches on that table's distribution column, or writes the column in the rows it
inserts: on the cluster each is a router statement to the shards of its keys, never a fan-out to every node.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import app.tables  # noqa: F401  (every table model, for the metadata)
from app.core import clock
from tests.conftest import CallerFactory
from tests.factories.referrals import PartnerDesk, individual, national_id

PAGE = Path(__file__).resolve().parents[2] / "docs" / "scaling.md"
ROW = re.compile(r"^\|\s*`(\w+)`\s*\|\s*(\w+)\s*\|\s*(?:`(\w+)`|—)\s*\|(.*)\|\s*$")
DISTRIBUTED = {"partner", "identity", "client", "owner"}
LOCAL = {"reference", "local"}


@dataclass(frozen=True)
class Placement:
    table: str
    kind: str
    column: str | None
    to_add: bool


def placements() -> dict[str, Placement]:
    found: dict[str, Placement] = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if match := ROW.match(line):
            table, kind, column, notes = match.groups()
            assert table not in found, f"{table} is on the page twice"
            found[table] = Placement(table, kind, column, "to add" in notes)
    return found


def test_every_table_is_placed_once_with_a_column_it_has() -> None:
    placed = placements()
    tables = SQLModel.metadata.tables
    assert set(placed) == set(tables), (
        f"missing from docs/scaling.md: {sorted(set(tables) - set(placed))}; "
        f"not a table: {sorted(set(placed) - set(tables))}"
    )
    for placement in placed.values():
        assert placement.kind in DISTRIBUTED | LOCAL, placement
        if placement.kind in LOCAL:
            assert placement.column is None, placement
            continue
        assert placement.column is not None, placement
        has = placement.column in tables[placement.table].columns
        assert has != placement.to_add, (
            f"{placement.table}.{placement.column}: the page says "
            f"{'to add' if placement.to_add else 'there'}, the model says {'there' if has else 'absent'}"
        )


# --- the hot paths' statements ------------------------------------------------------------------------------------

TOUCH = re.compile(r"\b(FROM|JOIN|UPDATE|INTO)\s+(\w+)(?:\s+(?:AS\s+)?(\w+))?", re.IGNORECASE)
NOT_ALIAS = {"where", "on", "set", "join", "left", "inner", "cross", "using", "order", "group", "limit", "for", "as"}
NOT_ALIAS |= {"select", "values", "returning", "union", "lateral", "natural", "full", "right", "with", "on"}


def _filters(statement: str, alias: str | None, table: str, column: str) -> bool:
    """``statement`` compares ``column`` of ``table`` (qualified, or not) with ``=``, ``IN`` or ``= ANY``."""
    qualifiers = {table, *([alias] if alias else [])}
    for match in re.finditer(
        rf"(?:\b(\w+)\.)?\b{column}\s*(?:=|\bIN\b)|(?:=|\bIN\b)\s*(?:\b(\w+)\.)?{column}\b", statement, re.IGNORECASE
    ):
        qualifier = match.group(1) or match.group(2)
        if qualifier is None or qualifier in qualifiers:
            return True
    # A tuple of columns: ``(r.partner_id, r.id) IN (…)``.
    return bool(re.search(rf"\(\s*(?:\w+\.)?{column}\s*,[^()]*\)\s*IN\b", statement, re.IGNORECASE))


def _inserts(statement: str, table: str, column: str) -> bool:
    """An ``INSERT INTO table (… column …)``: the rows carry their key, the cluster routes each."""
    match = re.search(rf"\bINSERT INTO\s+{table}(?:\s+AS\s+\w+)?\s*\(([^)]*)\)", statement, re.IGNORECASE)
    return match is not None and re.search(rf"\b{column}\b", match.group(1)) is not None


def unrouted(statement: str, placed: dict[str, Placement]) -> list[str]:
    """The distributed tables ``statement`` touches without their distribution column."""
    missing = []
    for verb, name, alias in TOUCH.findall(statement):
        placement = placed.get(name.lower())
        if placement is None or placement.kind not in DISTRIBUTED or placement.to_add or placement.column is None:
            continue
        alias = None if alias and alias.lower() in NOT_ALIAS else alias
        if verb.upper() == "INTO":
            ok = _inserts(statement, name, placement.column)
        else:
            ok = _filters(statement, alias, name, placement.column)
        if not ok:
            missing.append(name.lower())
    return missing


# Statements of the hot paths that other domains' work has yet to key, each with where and what is missing (an
# entry no statement needs any more fails the test): (path, table) -> what to do.
KNOWN_GAPS: dict[tuple[str, str], str] = {
    ("batch", "referral_batches"): "app/referrals/batches: the batch's own row by its id only; read it by "
    "(partner_id, id), as its router already knows the caller's partner",
    ("conversion feed", "conversion_events"): "app/conversions: the flush of the events it loaded, by id only; "
    "key them by (client_ref, id)",
}


class Capture:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.sent: list[tuple[str, str]] = []
        self.path = ""

    def _record(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        self.sent.append((self.path, " ".join(statement.split())))

    @contextmanager
    def on(self, path: str) -> Iterator[None]:
        self.path = path
        event.listen(self.engine, "before_cursor_execute", self._record)
        try:
            yield
        finally:
            event.remove(self.engine, "before_cursor_execute", self._record)


async def test_every_hot_statement_filters_on_its_tables_distribution_key(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    bank: PartnerDesk,
    other_bank: PartnerDesk,
    caller: CallerFactory,
) -> None:
    placed = placements()
    capture = Capture(engine)
    held = national_id()
    theirs = await client.post(
        "/v1/referrals", json=individual(other_bank.program.id, national_id=held), headers=other_bank.headers()
    )
    assert theirs.status_code == 201, theirs.text

    with capture.on("single submission"):
        first = await client.post("/v1/referrals", json=individual(bank.program.id), headers=bank.headers())
    assert first.status_code == 201, first.text
    with capture.on("single submission of a person another partner holds"):
        duplicate = await client.post(
            "/v1/referrals", json=individual(bank.program.id, national_id=held), headers=bank.headers()
        )
    assert duplicate.status_code == 201 and duplicate.json()["status"] == "duplicate", duplicate.text

    lines: list[dict[str, Any]] = [individual(bank.program.id) for _ in range(3)]
    lines.append(individual(bank.program.id, national_id=held))
    with capture.on("batch"):
        batch = await client.post(
            "/v1/referral-batches",
            content="".join(json.dumps(line) + "\n" for line in lines).encode(),
            headers={**bank.headers(), "Content-Type": "application/x-ndjson"},
        )
    assert batch.status_code in (200, 201, 202), batch.text

    back_office = await caller("back_office")
    person = lines[0]["subject"]["national_id"]
    event_body = {
        "events": [
            {
                "source_event_id": f"dist-{person}",
                "type": "account_opened",
                "occurred_at": clock.now().isoformat(),
                "client_ref": f"C-{person}",
                "national_id": person,
            }
        ]
    }
    with capture.on("conversion feed"):
        fed = await client.post("/v1/conversion-events", json=event_body, headers=back_office.headers)
    assert fed.status_code == 200, fed.text

    with capture.on("GET /v1/referrals/{id}"):
        one = await client.get(f"/v1/referrals/{first.json()['id']}", headers=bank.caller.headers)
    assert one.status_code == 200, one.text
    with capture.on("GET /v1/referrals"):
        listed = await client.get("/v1/referrals", params={"limit": 20}, headers=bank.caller.headers)
    assert listed.status_code == 200, listed.text

    assert {path for path, _ in capture.sent} >= {"single submission", "batch", "conversion feed"}
    problems, gaps_seen = [], set()
    for path, statement in capture.sent:
        for table in unrouted(statement, placed):
            if (path, table) in KNOWN_GAPS:
                gaps_seen.add((path, table))
            else:
                problems.append(f"{path}: {table} without {placed[table].column}, in: {statement[:400]}")
    assert not problems, "\n".join(problems)
    assert gaps_seen == set(KNOWN_GAPS), f"no longer a gap: {sorted(set(KNOWN_GAPS) - gaps_seen)}"
