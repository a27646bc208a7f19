"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from pydantic import BaseModel
from sqlalchemy import text
from starlette.responses import Response

from app.core.database import Database
from app.core.migrations import head_revisions
from app.core.problems import PROBLEM_RESPONSES, ServiceUnavailable

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    migrations: str


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The database is reachable and migrated to head",
    responses={503: PROBLEM_RESPONSES[503]},
)
async def readyz(request: Request) -> Readiness:
    database: Database = request.app.state.database
    timeout = request.app.state.settings.readiness_timeout_s
    try:
        applied = await asyncio.wait_for(_applied_revisions(database), timeout)
    except Exception as exc:
        raise ServiceUnavailable("The database is unreachable.", headers={"Retry-After": "5"}) from exc
    if applied != head_revisions():
        raise ServiceUnavailable("The database schema is not at the latest migration; run `alliance migrate`.")
    return Readiness(status="ready", database="ok", migrations="head")


async def _applied_revisions(database: Database) -> set[str]:
    async with database.sessionmaker() as session:
        rows = await session.execute(text("SELECT version_num FROM alembic_version"))
        return {row[0] for row in rows}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    """With several API processes (``alliance serve --workers N`` sets ``PROMETHEUS_MULTIPROC_DIR``) each writes
    its metrics to a file of its own in that directory, and whichever process answers sums them all."""
    directory = os.environ.get(MULTIPROCESS_DIR)
    if not directory or not os.path.isdir(directory):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
