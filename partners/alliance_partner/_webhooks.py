"""Verifying webhook deliveries: the Standard Webhooks scheme (https://www.standardwebhooks.com/).

Each delivery carries ``webhook-id`` (the message id, the same on every retry), ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature``: one or more space-separated ``v1,<base64 HMAC-SHA256>`` of
``"{id}.{timestamp}.{raw body}"`` under the endpoint's secret (two while a secret rotation overlaps).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from alliance_partner._exceptions import WebhookVerificationError
from alliance_partner._models import WebhookEvent

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300
MAX_SIGNATURES = 10  # a header is a handful of signatures; more is noise or an attack


def _secret_key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a webhook secret: expected 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign_webhook(secret: str | bytes, message_id: str, timestamp: int, payload: bytes) -> str:
    """The ``v1,…`` signature of one message, as the service computes it (for tests of your receiver)."""
    signed = f"{message_id}.{timestamp}.".encode() + payload
    return "v1," + base64.b64encode(hmac.new(_secret_key(secret), signed, hashlib.sha256).digest()).decode()


def _headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(name).lower(): str(value) for name, value in items}


def _signatures(header: str) -> list[bytes]:
    found = []
    for entry in header.split(" ")[:MAX_SIGNATURES]:
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue  # another scheme (e.g. v1a, asymmetric) or noise: not ours to check
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify_webhook(
    payload: bytes | str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    secret: str | bytes | Sequence[str],
    *,
    tolerance: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> WebhookEvent:
    """Verify one delivery and return its event; raise ``WebhookVerificationError`` if it does not verify.

    ``payload`` must be the raw body exactly as received (bytes; never re-serialised JSON). ``headers`` may be
    any mapping or list of pairs (names are matched case-insensitively). ``secret`` is the endpoint's
    ``whsec_…`` secret, or several (e.g. old and new while you roll a rotation out). The timestamp must be
    within ``tolerance`` seconds of ``now`` either way, which bounds replays; deduplicate on ``event.id``
    too, since a retried delivery repeats it. Signatures are compared in constant time.
    """
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    found = _headers(headers)
    message_id = found.get("webhook-id", "")
    timestamp_header = found.get("webhook-timestamp", "")
    signature_header = found.get("webhook-signature", "")
    if not (message_id and timestamp_header and signature_header):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not timestamp_header.isdigit() or len(timestamp_header) > 12:
        raise WebhookVerificationError("webhook-timestamp is not Unix seconds")
    timestamp = int(timestamp_header)
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("webhook-timestamp is too far in the future")

    keys = [_secret_key(secret)] if isinstance(secret, str | bytes) else [_secret_key(item) for item in secret]
    if not keys:
        raise ValueError("no webhook secret given")
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in keys]
    matched = False
    for candidate in _signatures(signature_header):
        for digest in expected:
            # No early exit: every comparison runs, each in constant time.
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise WebhookVerificationError("no signature matches the secret")

    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookVerificationError("the payload is not JSON") from None
    if not isinstance(document, dict):
        raise WebhookVerificationError("the payload is not a JSON object")
    when = document.get("timestamp")
    data = document.get("data")
    return WebhookEvent(
        id=message_id,
        type=str(document.get("type", "")),
        timestamp=datetime.fromisoformat(when) if isinstance(when, str) else None,
        data=data if isinstance(data, dict) else {},
        signed_at=datetime.fromtimestamp(timestamp, UTC),
    )
