from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.identifiers import credit_code_check_character
from tests.conftest import Caller, CallerFactory


def credit_code(first17: str = "91230100MA1XY0001") -> str:
    return first17 + credit_code_check_character(first17)


@pytest.fixture
async def manager(caller: CallerFactory) -> Caller:
    return await caller("staff", role="alliance_manager")


class Catalog:
    """Builds catalog rows through the API, as an alliance manager would."""

    def __init__(self, client: httpx.AsyncClient, manager: Caller) -> None:
        self.client = client
        self.headers = manager.headers

    async def post(self, path: str, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
        response = await self.client.post(path, json=body, headers=self.headers)
        assert response.status_code == expect, response.text
        return dict(response.json())

    async def partner(self, kind: str = "bank", **fields: Any) -> dict[str, Any]:
        return await self.post("/v1/admin/partners", {"kind": kind, "legal_name": "哈尔滨测试银行", **fields})

    async def product(self, code: str = "BANK_WM_PLUS_EQUITY", kinds: tuple[str, ...] = ("bank",)) -> dict[str, Any]:
        return await self.post(
            "/v1/admin/products",
            {
                "code": code,
                "name": "银行理财 + 证券",
                "components": [{"kind": "bank_wealth_product", "name": "Wealth product"}],
                "allowed_partner_kinds": list(kinds),
            },
        )

    async def program(self, partner_id: str, product_codes: list[str], **fields: Any) -> dict[str, Any]:
        body = {
            "partner_id": partner_id,
            "name": "VIP 银证合作",
            "channel": "vip_referral",
            "effective_from": "2026-01-01",
            "product_codes": product_codes,
            **fields,
        }
        return await self.post("/v1/admin/programs", body)

    async def schedule(self, program_id: str, effective_from: str = "2026-01-01", **rules: Any) -> dict[str, Any]:
        return await self.post(
            "/v1/admin/fee-schedules",
            {"program_id": program_id, "effective_from": effective_from, "rules": rules or RULES},
        )


RULES: dict[str, Any] = {
    "funded_bounty": {
        "min_assets_fen": 1_000_000,
        "by_tier": {"retail": 20_000, "hnw": 150_000, "institutional": 500_000},
    },
    "bundle_fees": [{"product_code": "BANK_WM_PLUS_EQUITY", "flat_fen": 10_000, "bps": 30, "max_fen": 500_000}],
    "revenue_share": {"bps": 1000, "months": 12},
    "caps": {"per_referral_fen": 2_000_000, "per_partner_month_fen": 50_000_000},
}


@pytest.fixture
def catalog(client: httpx.AsyncClient, manager: Caller) -> Catalog:
    return Catalog(client, manager)
