"""The back office's daily file: the same semantics as ``POST /v1/conversion-events``, read from CSV in chunks
of at most 10,000 events, each chunk one transaction (a rerun after a crash finds the done chunks duplicate).

Every event of one client goes into the same chunk, whatever its place in the file, so that events sharing a
time are applied in funnel order (``app.conversions.models.SAME_TIME_ORDER``) as they are within one call. The
file is read once to count its lines, then once per group of clients (a stable hash of the client reference): at
most about ``GROUP_EVENTS`` events are held at a time, and nothing is written to disk besides the database.
A client with more than 10,000 events in one file is the one exception: its events are cut at chunk size.
"""

from __future__ import annotations

import csv
import heapq
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from app.conversions.schemas import MAX_EVENTS
from app.conversions.service import ingest_events
from app.core.database import Database
from app.privacy.crypto import BlindIndex

COLUMNS = (
    "source_event_id",
    "type",
    "occurred_at",
    "client_ref",
    "national_id",
    "credit_code",
    "amount",
    "currency",
    "product_code",
)
GROUP_EVENTS = 50_000
FIRST_REJECTIONS = 20

Numbered = tuple[int, dict[str, Any]]  # the event's line in the file (the header is line 1), the event


def _event(row: dict[str, str]) -> dict[str, Any]:
    event: dict[str, Any] = {name: value for name, value in row.items() if name in COLUMNS and value not in ("", None)}
    if "amount" in event and event["amount"].lstrip("-").isdigit():
        event["amount"] = int(event["amount"])  # otherwise left as text: validation rejects it with its reason
    return event


def _rows(path: Path) -> Iterator[Numbered]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"source_event_id", "type", "occurred_at", "client_ref"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"the file lacks column(s): {', '.join(sorted(missing))}")
        for number, row in enumerate(reader, start=2):
            yield number, _event(row)


def _group_of(event: dict[str, Any], groups: int) -> int:
    client_ref = event.get("client_ref")
    return zlib.crc32(client_ref.encode()) % groups if isinstance(client_ref, str) else 0


def read_chunks(path: Path, size: int = MAX_EVENTS) -> Iterator[list[Numbered]]:
    """The file's events in chunks of at most ``size``, each client's events in one chunk (see the module)."""
    total = sum(1 for _ in _rows(path))
    groups = max(1, -(-total // GROUP_EVENTS))
    for group in range(groups):
        by_client: dict[Any, list[Numbered]] = {}
        for number, event in _rows(path):
            if _group_of(event, groups) == group:
                by_client.setdefault(event.get("client_ref"), []).append((number, event))
        chunk: list[Numbered] = []
        for events in by_client.values():
            if chunk and len(chunk) + len(events) > size:
                yield chunk
                chunk = []
            chunk.extend(events)
            while len(chunk) >= size:
                yield chunk[:size]
                chunk = chunk[size:]
        if chunk:
            yield chunk


async def import_file(
    database: Database,
    index: BlindIndex,
    path: Path,
    on_chunk: Callable[[int], None] | None = None,
    chunk_size: int = MAX_EVENTS,
) -> tuple[Counter[str], list[str]]:
    """Import every event; returns the count per result and the first rejections (line number and reason)."""
    totals: Counter[str] = Counter()
    rejections: list[tuple[int, str]] = []
    for chunk in read_chunks(path, chunk_size):
        async with database.sessionmaker() as session, session.begin():
            results = await ingest_events(session, index, [event for _, event in chunk])
        for result in results:
            totals[result.result] += 1
            if result.result == "rejected":
                rejections.append((chunk[result.index][0], result.reason or "rejected"))
        rejections = heapq.nsmallest(FIRST_REJECTIONS, rejections)
        if on_chunk:
            on_chunk(len(chunk))
    return totals, [f"line {line}: {reason}" for line, reason in rejections]
