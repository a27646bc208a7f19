"""Idempotency keys: the same key with the same body returns the first response; with another body, a 422.

The key is claimed by inserting its row in the request's own transaction: a concurrent request with the same key
waits on that row until the first commits (then replays its response) or rolls back (then runs itself). A
failed request stores nothing, so it may be retried with the same key.

A response that shows a secret once (a signing secret, a client secret) names it in ``claim``: the stored replay
holds it sealed with the master key, like the service's own copies of key material, and opens it only to replay.

Routes that create something use the ``IdempotentCreate`` (or ``IdempotentCreateKeyRequired``) dependency and
answer with ``once.create(owner, body, make)``: the whole sequence (claim, replay, run, remember) lives here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select
from starlette.responses import JSONResponse, Response

from app.core import clock
from app.core.config import Settings
from app.core.crypto import SealedBox, decode_master_key
from app.core.database import SessionDep
from app.core.models import created_at_field
from app.core.problems import Unprocessable

RETENTION = timedelta(hours=24)
REPLAY_HEADER = "Idempotent-Replayed"


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_records"

    owner: str = Field(primary_key=True, max_length=40)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    status_code: int | None = None
    response_body: Any = Field(default=None, sa_type=JSONB, nullable=True)
    created_at: datetime = created_at_field()
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False, index=True)


class IdempotencyKeyReused(Unprocessable):
    slug, title = "idempotency-key-reused", "Idempotency key reused"


_KEY_HEADER = Header(
    alias="Idempotency-Key",
    min_length=1,
    max_length=200,
    description="Makes the call safe to retry: the same key and body return the first response.",
)
IdempotencyKeyHeader = Annotated[str | None, _KEY_HEADER]
RequiredIdempotencyKeyHeader = Annotated[str, _KEY_HEADER]


def fingerprint(method: str, path: str, body: BaseModel | dict[str, Any] | None) -> str:
    payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else jsonable_encoder(body)
    canonical = json.dumps([method.upper(), path, payload], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class SealedFields:
    """Top-level fields of a response that its stored replay holds sealed."""

    box: SealedBox
    names: tuple[str, ...]

    def seal(self, content: Any) -> Any:
        if not isinstance(content, dict):
            return content
        return {
            name: {"sealed": base64.b64encode(self.box.seal(json.dumps(value).encode())).decode()}
            if name in self.names and value is not None
            else value
            for name, value in content.items()
        }

    def open(self, stored: Any) -> Any:
        if not isinstance(stored, dict):
            return stored
        return {
            name: json.loads(self.box.open(base64.b64decode(value["sealed"])))
            if name in self.names and isinstance(value, dict) and "sealed" in value
            else value
            for name, value in stored.items()
        }


def sealed_fields(settings: Settings, *names: str) -> SealedFields:
    """``names`` sealed in stored replays, under a key derived from the master key for this purpose only."""
    return SealedFields(SealedBox(decode_master_key(settings.master_key_value), "idempotent-replays"), names)


@dataclass
class IdempotentCall:
    """What ``claim`` found: either a response to replay, or a claimed key to ``remember`` the answer under."""

    session: AsyncSession
    owner: str
    key: str | None
    replay: JSONResponse | None = None
    sealed: SealedFields | None = None

    async def remember(self, status_code: int, body: Any) -> JSONResponse:
        """Store the answer with the key (in the same transaction as the change) and return it."""
        content = jsonable_encoder(body)
        if self.key is not None:
            stored = self.sealed.seal(content) if self.sealed else content
            await self.session.execute(
                sa.update(IdempotencyRecord)
                .where(col(IdempotencyRecord.owner) == self.owner, col(IdempotencyRecord.key) == self.key)
                .values(status_code=status_code, response_body=stored)
            )
        return JSONResponse(content, status_code=status_code)


async def claim(
    session: AsyncSession, owner: str, key: str | None, request_hash: str, *, sealed: SealedFields | None = None
) -> IdempotentCall:
    """Claim ``key`` for this request, or find the response it already produced. ``sealed`` names the fields of
    the response that are secrets (see ``sealed_fields``)."""
    if key is None:
        return IdempotentCall(session, owner, None)
    now = clock.now()
    # Claim a new key, or an expired one (the row is then reused), in one statement.
    statement = insert(IdempotencyRecord).values(
        owner=owner, key=key, request_hash=request_hash, created_at=now, expires_at=now + RETENTION
    )
    inserted = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["owner", "key"],
            set_={
                "request_hash": statement.excluded.request_hash,
                "status_code": None,
                "response_body": None,
                "created_at": statement.excluded.created_at,
                "expires_at": statement.excluded.expires_at,
            },
            where=col(IdempotencyRecord.expires_at) < now,
        ).returning(col(IdempotencyRecord.key))
    )
    if inserted is not None:
        return IdempotentCall(session, owner, key, sealed=sealed)
    record = (
        await session.scalars(
            select(IdempotencyRecord).where(col(IdempotencyRecord.owner) == owner, col(IdempotencyRecord.key) == key)
        )
    ).one()
    if record.request_hash != request_hash:
        raise IdempotencyKeyReused("This Idempotency-Key was used with a different request; use a new key.")
    content = sealed.open(record.response_body) if sealed else record.response_body
    replay = JSONResponse(content, status_code=record.status_code or 200, headers={REPLAY_HEADER: "true"})
    return IdempotentCall(session, owner, key, replay=replay, sealed=sealed)


@dataclass(frozen=True)
class Answer:
    """What a create call answers when its status depends on the outcome (e.g. 200 for "you already sent it")."""

    status_code: int
    body: Any


@dataclass(frozen=True)
class OnceOnly:
    """One create request and its Idempotency-Key (None: the caller sent none, nothing is remembered)."""

    request: Request
    session: AsyncSession
    key: str | None

    async def create(
        self,
        owner: str,
        body: BaseModel | dict[str, Any] | None,
        make: Callable[[], Awaitable[Any]],
        *,
        status_code: int = 201,
        sealed: tuple[str, ...] = (),
    ) -> Response:
        """Replay what this key already answered for ``owner`` (refusing another ``body`` with it), or run ``make``
        and remember its answer (the response body, or an ``Answer``) under the key. ``sealed`` names the secret
        fields of the answer (see ``sealed_fields``)."""
        request_hash = fingerprint(self.request.method, self.request.url.path, body)
        box = sealed_fields(self.request.app.state.settings, *sealed) if sealed else None
        call = await claim(self.session, owner, self.key, request_hash, sealed=box)
        if call.replay:
            return call.replay
        made = await make()
        if isinstance(made, Answer):
            return await call.remember(made.status_code, made.body)
        return await call.remember(status_code, made)


async def _once_only(request: Request, session: SessionDep, key: IdempotencyKeyHeader = None) -> OnceOnly:
    return OnceOnly(request, session, key)


async def _once_only_key_required(request: Request, session: SessionDep, key: RequiredIdempotencyKeyHeader) -> OnceOnly:
    return OnceOnly(request, session, key)


IdempotentCreate = Annotated[OnceOnly, Depends(_once_only)]
IdempotentCreateKeyRequired = Annotated[OnceOnly, Depends(_once_only_key_required)]


# For a create that runs as one statement: the CTE ``stored``, the live answer the key (``:owner``, ``:key``)
# already has, if any, with its body as the text of the stored jsonb (see ``claimed_answer_cte``).
STORED_ANSWER_CTE = """
    stored AS (
        SELECT request_hash, status_code, CAST(response_body AS text) AS body FROM idempotency_records
        WHERE owner = :owner AND key = :key AND expires_at >= CAST(:now AS timestamptz)
    )"""


def claimed_answer_cte(answer: str) -> str:
    """For a create that runs as one statement: the CTE ``claimed``, claiming the key (``:owner``, ``:key``,
    ``:request_hash``, at ``:now`` until ``:expires_at``; a new or an expired key only) with the answer that
    ``answer`` (a CTE of one row: status_code, body as jsonb) holds, and returning it with its body as the text of
    the stored jsonb: the answer sent and every replay of it are the same bytes. A claim that loses to a concurrent
    request with the same key waits for it and returns nothing."""
    return f"""
    claimed AS (
        INSERT INTO idempotency_records AS record
            (owner, key, request_hash, status_code, response_body, created_at, expires_at)
        SELECT :owner, :key, :request_hash, a.status_code, a.body, CAST(:now AS timestamptz),
               CAST(:expires_at AS timestamptz)
        FROM {answer} AS a
        ON CONFLICT (owner, key) DO UPDATE SET
            request_hash = excluded.request_hash, status_code = excluded.status_code,
            response_body = excluded.response_body, created_at = excluded.created_at,
            expires_at = excluded.expires_at
        WHERE record.expires_at < CAST(:now AS timestamptz)
        RETURNING record.status_code, CAST(record.response_body AS text) AS body
    )"""


def stored_answer(status_code: int, body: str, *, replayed: bool) -> Response:
    """An answer whose body is the text of the jsonb stored with its key (see ``claimed_answer_cte``)."""
    headers = {REPLAY_HEADER: "true"} if replayed else None
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)
