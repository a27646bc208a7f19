"""Recording and reading audit events. Callers never put personal data in ``details``.

Audit knows no HTTP: the HTTP layer builds the ``Actor`` of a call (``app.auth.deps.request_actor``), jobs and
the command line use ``Actor.system``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi.encoders import jsonable_encoder
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit.models import AuditEvent
from app.audit.schemas import AuditEventOut
from app.core.compiled import CompiledRead, ReadScope, rows_of
from app.core.pagination import PageParams, after_position, cursor_position


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it, and from where."""

    id: str
    kind: str
    request_id: str | None = None
    ip_address: str | None = None

    @classmethod
    def system(cls, name: str = "cli") -> Actor:
        return cls(id=name, kind="system")

    @property
    def sees_every_partner(self) -> bool:
        """Staff and the platform's own jobs act on every partner's rows (see ``Tenant.everyone``)."""
        return self.kind in ("staff", "system")


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Append one audit event to the current transaction."""
    event = AuditEvent(
        actor_id=actor.id,
        actor_kind=actor.kind,
        action=action,
        object_type=object_type,
        object_id=object_id,
        request_id=actor.request_id,
        ip_address=actor.ip_address,
        details=details,
    )
    session.add(event)
    await session.flush()
    return event


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields that differ, as ``{field: {"from": old, "to": new}}`` (JSON-ready)."""
    return {
        name: {"from": jsonable_encoder(before.get(name)), "to": jsonable_encoder(value)}
        for name, value in after.items()
        if jsonable_encoder(before.get(name)) != jsonable_encoder(value)
    }


_LISTED = AuditEvent.__table__  # type: ignore[attr-defined]
_FILTERS = ("action", "actor_id", "object_id")
_LIST_READS: dict[tuple[bool, ...], CompiledRead] = {}


def _list_read(shape: tuple[bool, ...]) -> CompiledRead:
    """The search of the log for one combination of filters (and cursor, last), compiled on its first use."""
    read = _LIST_READS.get(shape)
    if read is None:
        *filters, after_cursor = shape
        statement = select(*_LISTED.c).where(
            *(_LISTED.c[name] == bindparam(name) for name, used in zip(_FILTERS, filters, strict=True) if used)
        )
        if after_cursor:
            statement = statement.where(after_position(_LISTED.c.created_at, _LISTED.c.id))
        statement = statement.order_by(_LISTED.c.created_at.desc(), _LISTED.c.id.desc()).limit(bindparam("rows"))
        read = _LIST_READS[shape] = CompiledRead(statement)
    return read


async def list_events(
    reads: ReadScope,
    params: PageParams,
    *,
    action: str | None = None,
    actor_id: str | None = None,
    object_id: str | None = None,
) -> list[AuditEventOut]:
    """The events newest first from the cursor on (one more than a page, as ``paginate_query``)."""
    values: dict[str, Any] = {"rows": params.limit + 1}
    for name, value in zip(_FILTERS, (action, actor_id, object_id), strict=True):
        if value:
            values[name] = value
    if (position := cursor_position(params)) is not None:
        values["after_created_at"], values["after_id"] = position
    shape = (*(name in values for name in _FILTERS), position is not None)
    rows = await rows_of(reads, _list_read(shape), values)
    return [AuditEventOut(**row) for row in rows]


async def events_about(session: AsyncSession, object_ids: list[str], *, limit: int = 200) -> list[AuditEvent]:
    """The audit trail of some objects (a statement and its reconciliation items), oldest first."""
    if not object_ids:
        return []
    statement = (
        select(AuditEvent)
        .where(col(AuditEvent.object_id).in_(object_ids))
        .order_by(col(AuditEvent.created_at), col(AuditEvent.id))
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def objects_with(session: AsyncSession, action: str) -> set[str]:
    """The ids of the objects an action was ever recorded on (for example every period closed)."""
    rows = await session.scalars(select(col(AuditEvent.object_id)).where(col(AuditEvent.action) == action).distinct())
    return {object_id for object_id in rows.all() if object_id is not None}


@dataclass(frozen=True, slots=True)
class AuditSearch:
    """What a person looks for in the log: each field narrows it; ``since`` inclusive, ``until`` exclusive."""

    actor_ids: tuple[str, ...] = ()  # any of them
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _searched(search: AuditSearch) -> list[Any]:
    conditions: list[Any] = []
    if search.actor_ids:
        conditions.append(col(AuditEvent.actor_id).in_(search.actor_ids))
    if search.action:
        conditions.append(col(AuditEvent.action) == search.action)
    if search.object_type:
        conditions.append(col(AuditEvent.object_type) == search.object_type)
    if search.object_id:
        conditions.append(col(AuditEvent.object_id) == search.object_id)
    if search.since:
        conditions.append(col(AuditEvent.created_at) >= search.since)
    if search.until:
        conditions.append(col(AuditEvent.created_at) < search.until)
    return conditions


async def search_events(
    session: AsyncSession, search: AuditSearch, *, offset: int, limit: int
) -> tuple[list[AuditEvent], int]:
    """One page of the matching events, newest first, and how many match in all."""
    conditions = _searched(search)
    total = await session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions))
    rows = await session.scalars(
        select(AuditEvent)
        .where(*conditions)
        .order_by(col(AuditEvent.created_at).desc(), col(AuditEvent.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all()), int(total or 0)


async def recorded_actions(session: AsyncSession) -> list[str]:
    """Every action the log holds, for a filter to choose from."""
    return list(
        (await session.scalars(select(col(AuditEvent.action)).distinct().order_by(col(AuditEvent.action)))).all()
    )


async def recorded_object_types(session: AsyncSession) -> list[str]:
    statement = select(col(AuditEvent.object_type)).where(col(AuditEvent.object_type).is_not(None)).distinct()
    return sorted(value for value in (await session.scalars(statement)).all() if value)
