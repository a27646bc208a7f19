"""The administration pages of the console (接入凭证, 签名密钥, 审计日志) for admins and auditors."""

from __future__ import annotations

from fastapi import APIRouter

from app.console.admin import words  # noqa: F401  (registers the pages' Chinese)
from app.console.admin.audit_log import router as audit_log_router
from app.console.admin.clients import router as clients_router
from app.console.admin.signing_keys import router as signing_keys_router

router = APIRouter()
for page_router in (clients_router, signing_keys_router, audit_log_router):
    router.include_router(page_router)
