"""The audit log, read-only, for admins and auditors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.audit import service
from app.audit.schemas import AuditEventOut
from app.auth.deps import HotRead, Principal, requires
from app.core.compiled import ReadsDep
from app.core.pagination import Page, PageParams, page_of, page_params
from app.core.problems import problem_responses

router = APIRouter(
    prefix="/v1/admin",
    tags=["audit"],
    responses=problem_responses(401, 403, 429),
)


async def list_audit_events(
    reads: ReadsDep,
    principal: Annotated[Principal, requires("audit:read")],
    params: Annotated[PageParams, Depends(page_params)],
    action: Annotated[str | None, Query(max_length=60)] = None,
    actor_id: Annotated[str | None, Query(max_length=80)] = None,
    object_id: Annotated[str | None, Query(max_length=80)] = None,
) -> Page[AuditEventOut]:
    rows = await service.list_events(reads, params, action=action, actor_id=actor_id, object_id=object_id)
    return page_of(rows, params)


# One statement, read only, on a pooled connection outside any transaction; and called often: a hot read.
router.add_api_route(
    "/audit-events",
    list_audit_events,
    methods=["GET"],
    response_model=Page[AuditEventOut],
    summary="Search the audit log, newest first",
    route_class_override=HotRead,
)
