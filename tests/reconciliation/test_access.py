"""Every statement and reconciliation route: 401 without a token, 403 without its scope, 404 for another tenant."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import CallerFactory
from tests.reconciliation.conftest import EXACT_CLAIM, Desk

S, I = "{statement}", "{item}"  # noqa: E741
FINANCE_ROUTES = [
    ("POST", "/v1/finance/periods/2026-03/close", "finance:write", None),
    ("GET", "/v1/finance/statements", "finance:read", None),
    ("GET", f"/v1/finance/statements/{S}", "finance:read", None),
    ("GET", f"/v1/finance/statements/{S}/lines", "finance:read", None),
    ("POST", f"/v1/finance/statements/{S}/issue", "finance:write", None),
    ("POST", f"/v1/finance/statements/{S}/approve", "finance:write", None),
    ("POST", f"/v1/finance/statements/{S}/mark-paid", "finance:write", {"payment_ref": "P"}),
    ("GET", f"/v1/finance/statements/{S}/export", "finance:read", None),
    ("POST", "/v1/finance/adjustments", "finance:write", {}),
    ("GET", "/v1/finance/reconciliation-items", "finance:read", None),
    ("POST", f"/v1/finance/reconciliation-items/{I}/resolve", "finance:write", {"resolution": "write_off"}),
]
PARTNER_ROUTES = [
    ("GET", "/v1/statements", "statements:read", None),
    ("GET", f"/v1/statements/{S}", "statements:read", None),
    ("GET", f"/v1/statements/{S}/lines", "statements:read", None),
    ("GET", f"/v1/statements/{S}/reconciliation", "statements:read", None),
    ("POST", f"/v1/statements/{S}/claims", "claims:write", {"lines": EXACT_CLAIM}),
    ("POST", f"/v1/statements/{S}/disputes", "claims:write", {"items": [{"item_id": I, "reason": "r"}]}),
]


def _concrete(value: Any, statement_id: str, item_id: str) -> Any:
    if isinstance(value, str):
        return value.replace(S, statement_id).replace(I, item_id)
    if isinstance(value, dict):
        return {key: _concrete(item, statement_id, item_id) for key, item in value.items()}
    if isinstance(value, list):
        return [_concrete(item, statement_id, item_id) for item in value]
    return value


@pytest.fixture
async def claimed(desk: Desk) -> tuple[Desk, str]:
    result = await desk.upload([*EXACT_CLAIM, {"external_ref": "X-NONE", "fee_type": "cap", "amount_fen": -1}])
    item = next(item for item in result["data"] if item["match_class"] == "unknown")
    return desk, item["id"]


async def test_every_route_needs_a_token(claimed: tuple[Desk, str]) -> None:
    desk, item_id = claimed
    for method, path, _, body in FINANCE_ROUTES + PARTNER_ROUTES:
        url = _concrete(path, desk.statement_id, item_id)
        response = await desk.client.request(method, url, json=_concrete(body, desk.statement_id, item_id))
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"
        assert response.headers["content-type"] == "application/problem+json"


async def test_every_route_needs_its_scope(claimed: tuple[Desk, str], caller: CallerFactory) -> None:
    desk, item_id = claimed
    partner = await caller("partner", partner=desk.partner)  # every partner scope, no finance scope
    auditor = await caller("staff", role="auditor")  # finance:read only
    reader_only = await caller("partner", partner=desk.partner, scopes=["statements:read"])
    no_statements = await caller("partner", partner=desk.partner, scopes=["referrals:read", "claims:write"])
    finance = desk.finance.caller  # staff: no partner scope
    wrong: dict[str, list[Any]] = {
        "finance:read": [partner],
        "finance:write": [partner, auditor],
        "statements:read": [finance, no_statements],
        "claims:write": [finance, reader_only],
    }
    for method, path, scope, body in FINANCE_ROUTES + PARTNER_ROUTES:
        for who in wrong[scope]:
            url = _concrete(path, desk.statement_id, item_id)
            response = await desk.client.request(
                method,
                url,
                json=_concrete(body, desk.statement_id, item_id),
                headers={**who.headers, "Idempotency-Key": "k"},
            )
            assert response.status_code == 403, f"{method} {path} as {who.client.name}: {response.status_code}"
            assert response.json()["type"].endswith("insufficient-scope")


async def test_another_partners_statement_is_not_found(
    claimed: tuple[Desk, str], caller: CallerFactory, make_partner: Any
) -> None:
    desk, item_id = claimed
    stranger = await caller("partner", partner=await make_partner(legal_name="别家银行"))
    for method, path, _, body in PARTNER_ROUTES:
        url = _concrete(path, desk.statement_id, item_id)
        response = await desk.client.request(
            method, url, json=_concrete(body, desk.statement_id, item_id), headers=stranger.headers
        )
        if path == "/v1/statements":
            assert response.status_code == 200 and response.json()["data"] == []
            continue
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
        assert response.json()["type"].endswith("not-found")
    # and nothing changed for the owner
    assert (await desk.reconciliation())["claim"]["line_count"] == len(EXACT_CLAIM) + 1
