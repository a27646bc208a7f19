"""The console's finance pages (DESIGN.md "Reconciliation", CONSOLE.md "Pages"): 结算周期 periods, 结算单
statements and 对账差异 discrepancies, for people with ``finance:read``; actions need ``finance:write`` and follow
four eyes (经办 / 复核) as the services enforce it."""

from __future__ import annotations

from fastapi import APIRouter

from app.console.finance import words  # noqa: F401  (registers the pages' Chinese)
from app.console.finance.discrepancies import router as discrepancies_router
from app.console.finance.periods import router as periods_router
from app.console.finance.statements import router as statements_router

router = APIRouter()
for page_router in (periods_router, statements_router, discrepancies_router):
    router.include_router(page_router)

__all__ = ["router"]
