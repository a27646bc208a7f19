"""The back office's daily file: the same semantics as ``POST /v1/conversion-events``, read from CSV in chunks
of at most 10,000 events, each chunk one transaction (a rerun after a crash finds the done chunks duplicate)."""

from __future__ import annotations

import csv
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


def _event(row: dict[str, str]) -> dict[str, Any]:
    event: dict[str, Any] = {name: value for name, value in row.items() if name in COLUMNS and value not in ("", None)}
    if "amount" in event and event["amount"].lstrip("-").isdigit():
        event["amount"] = int(event["amount"])  # otherwise left as text: validation rejects it with its reason
    return event


def read_chunks(path: Path, size: int = MAX_EVENTS) -> Iterator[list[dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"source_event_id", "type", "occurred_at", "client_ref"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"the file lacks column(s): {', '.join(sorted(missing))}")
        chunk: list[dict[str, Any]] = []
        for row in reader:
            chunk.append(_event(row))
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


async def import_file(
    database: Database, index: BlindIndex, path: Path, on_chunk: Callable[[int], None] | None = None
) -> tuple[Counter[str], list[str]]:
    """Import every event; returns the count per result and the first rejections (line number and reason)."""
    totals: Counter[str] = Counter()
    rejections: list[str] = []
    line = 1  # the header
    for chunk in read_chunks(path):
        async with database.sessionmaker() as session, session.begin():
            results = await ingest_events(session, index, chunk)
        for result in results:
            totals[result.result] += 1
            if result.result == "rejected" and len(rejections) < 20:
                rejections.append(f"line {line + result.index + 1}: {result.reason}")
        line += len(chunk)
        if on_chunk:
            on_chunk(len(chunk))
    return totals, rejections
