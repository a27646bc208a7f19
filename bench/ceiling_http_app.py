"""The bare FastAPI app the HTTP ceiling loads: one POST endpoint, one asyncpg INSERT, nothing else.

Separate from ``app/`` on purpose: no middleware, no ORM, no session, no logging per request. The bench serves it
with ``uvicorn bench.ceiling_http_app:app`` and passes the database in ``BENCH_DSN``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from pydantic import BaseModel

DSN_ENV = "BENCH_DSN"
POOL_SIZE_ENV = "BENCH_POOL_SIZE"
TABLE = "referral_http"

CREATE_TABLE = f"""
CREATE TABLE {TABLE} (
    id text PRIMARY KEY,
    partner_id text NOT NULL,
    external_ref text NOT NULL,
    kind text NOT NULL,
    birth_year integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = f"INSERT INTO {TABLE} (id, partner_id, external_ref, kind, birth_year) VALUES ($1, $2, $3, $4, $5)"


class ReferralIn(BaseModel):
    partner_id: str
    external_ref: str
    kind: str
    birth_year: int


class ReferralOut(BaseModel):
    id: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    size = int(os.environ.get(POOL_SIZE_ENV, "10"))
    async with asyncpg.create_pool(os.environ[DSN_ENV], min_size=size, max_size=size) as pool:
        app.state.pool = pool
        yield


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/referrals", status_code=201)
async def create_referral(body: ReferralIn, request: Request) -> ReferralOut:
    referral_id = str(uuid.uuid4())
    pool: asyncpg.Pool = request.app.state.pool
    await pool.execute(INSERT, referral_id, body.partner_id, body.external_ref, body.kind, body.birth_year)
    return ReferralOut(id=referral_id)
