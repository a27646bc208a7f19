"""An audit event's details as a person may read them: indented JSON (the template escapes it), with anything
personal or secret masked. Callers of ``audit.record`` keep personal data out of the details; this is the second
line, for a field someone added later (a partner's contacts in a change, say)."""

from __future__ import annotations

import json
from typing import Any

from app.privacy.crypto import mask_mobile, mask_name

# Keys whose values (and everything under them) are personal or secret.
PERSONAL_KEYS = frozenset(
    {
        "contacts",
        "contact",
        "name",
        "full_name",
        "person_name",
        "mobile",
        "phone",
        "email",
        "id_number",
        "identity",
        "identity_number",
        "address",
        "payout_account_ref",
        "account_number",
        "secret",
        "client_secret",
        "password",
        "token",
        "access_token",
    }
)
HIDDEN = "***"


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, str) and value:
        if len(value) == 11 and value.isdigit():
            return mask_mobile(value)
        return mask_name(value) if len(value) <= 4 else value[:1] + HIDDEN
    return HIDDEN if value is not None else None


def _screened(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _masked(item) if key.lower() in PERSONAL_KEYS else _screened(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_screened(item) for item in value]
    return value


def readable_details(details: dict[str, Any]) -> str:
    """The details as indented JSON with personal and secret values masked; ``""`` when there are none."""
    if not details:
        return ""
    return json.dumps(_screened(details), ensure_ascii=False, indent=2, sort_keys=True, default=str)
