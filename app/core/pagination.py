"""Cursor pagination: ``{"data": [...], "next_cursor": ...}`` over a (created_at, id) keyset, newest first."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import DateTime, Select, String, and_, bindparam, or_

from app.core.problems import Problem

T = TypeVar("T")
S = TypeVar("S", bound=Select[Any])

MAX_LIMIT = 500


class InvalidCursor(Problem):
    status, slug, title = 400, "invalid-cursor", "Invalid cursor"


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


class PageParams(BaseModel):
    limit: int
    cursor: str | None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


def _encode(created_at: datetime, row_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), row_id]).encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        return datetime.fromisoformat(created_at), str(row_id)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("The cursor is not one this API returned.") from exc


def cursor_position(params: PageParams) -> tuple[datetime, str] | None:
    """Where the page starts: the (created_at, id) of the last row of the previous page, if a cursor was given."""
    return _decode(params.cursor) if params.cursor else None


def after_position(created_at: Any, row_id: Any) -> Any:
    """The keyset condition of ``paginate_query`` with the position as bound parameters (``after_created_at``,
    ``after_id``, the values of ``cursor_position``), for a statement built once and run for every cursor."""
    after_created: Any = bindparam("after_created_at", type_=DateTime(timezone=True))
    after_id: Any = bindparam("after_id", type_=String)
    return or_(created_at < after_created, and_(created_at == after_created, row_id < after_id))


def paginate_query(
    statement: S,
    params: PageParams,
    created_at: Any,
    row_id: Any,
) -> S:
    """Order newest first and start after the cursor; fetches one extra row to know whether a page follows."""
    if params.cursor:
        after_created, after_id = _decode(params.cursor)
        statement = statement.where(
            or_(created_at < after_created, and_(created_at == after_created, row_id < after_id))
        )
    return statement.order_by(created_at.desc(), row_id.desc()).limit(params.limit + 1)


def page_of(rows: list[Any], params: PageParams, item: Any = None) -> Page[Any]:
    """Turn the rows of ``paginate_query`` into a page; ``item`` converts each row to its response schema."""
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    next_cursor = _encode(rows[-1].created_at, rows[-1].id) if more and rows else None
    return Page(data=[item(row) if item else row for row in rows], next_cursor=next_cursor)
