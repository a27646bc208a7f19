"""The bodies of uploads: a batch of referrals (CSV or JSON Lines) and a claim (CSV or JSON)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from alliance_partner._models import BatchFormat, ClaimLine, ReferralCreate, to_json


def json_body(value: Any) -> bytes:
    return json.dumps(to_json(value), ensure_ascii=False, separators=(",", ":")).encode()


BatchSource = str | bytes | Path | Iterable[ReferralCreate | Mapping[str, Any]]


def batch_payload(source: BatchSource, format: BatchFormat | None) -> tuple[bytes, BatchFormat]:
    """The bytes to upload and their format.

    ``source`` is a file (``Path``: ``.csv``, or ``.jsonl``/``.ndjson``), the file's content (``str`` or
    ``bytes``: CSV unless it starts with ``{`` or ``format`` says otherwise), or rows (``ReferralCreate`` or
    dicts shaped like the body of ``POST /v1/referrals``), sent as JSON Lines, one row per line.
    """
    if isinstance(source, Path):
        suffix = source.suffix.lower()
        guessed: BatchFormat = "jsonl" if suffix in (".jsonl", ".ndjson") else "csv"
        return source.read_bytes(), format or guessed
    if isinstance(source, str | bytes):
        content = source.encode() if isinstance(source, str) else source
        head = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        return content, format or ("jsonl" if head == b"{" else "csv")
    if format == "csv":
        return rows_to_csv(source), "csv"
    lines = [json.dumps(to_json(row), ensure_ascii=False, separators=(",", ":")) for row in source]
    return ("\n".join(lines) + "\n").encode(), "jsonl"


ClaimSource = str | bytes | Path | Iterable[ClaimLine | Mapping[str, Any]]


def claim_payload(source: ClaimSource) -> tuple[bytes, str]:
    """A claim's bytes and media type: a CSV or JSON file (``Path``) or content, or claim lines (sent as JSON)."""
    if isinstance(source, Path):
        content = source.read_bytes()
        return content, "application/json" if source.suffix.lower() == ".json" else "text/csv"
    if isinstance(source, str | bytes):
        content = source.encode() if isinstance(source, str) else source
        head = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        return content, "application/json" if head == b"{" else "text/csv"
    return json_body({"lines": list(source)}), "application/json"


CSV_COLUMNS = (
    "program_id",
    "external_ref",
    "kind",
    "name",
    "mobile",
    "national_id",
    "credit_code",
    "contact_mobile",
    "declared_assets_band",
    "employer",
    "consent_captured_at",
    "consent_channel",
    "consent_notice_version",
    "consent_notice_sha256",
    "consent_recipient_name",
    "consent_purpose",
    "consent_data_categories",
    "consent_retention_days",
    "consent_separate",
    "consent_evidence_ref",
)


def rows_to_csv(rows: Iterable[ReferralCreate | Mapping[str, Any]]) -> bytes:
    """Rows as the batch CSV format (the columns of ``POST /v1/referral-batches``), header first."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        body = to_json(row)
        cells: dict[str, Any] = {key: body.get(key) for key in ("program_id", "external_ref", "kind")}
        cells.update(body.get("subject") or {})
        for name, value in (body.get("consent") or {}).items():
            column = "consent_separate" if name == "separate_consent" else f"consent_{name}"
            if name == "data_categories":
                value = ";".join(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            cells[column] = value
        unknown = set(cells) - set(CSV_COLUMNS)
        if unknown:
            raise ValueError(f"fields with no batch CSV column: {', '.join(sorted(unknown))}")
        writer.writerow({key: "" if value is None else value for key, value in cells.items()})
    return buffer.getvalue().encode()
