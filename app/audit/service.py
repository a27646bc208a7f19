"""Recording and reading audit events. Callers never put personal data in ``details``.

Audit knows no HTTP: the HTTP layer builds the ``Actor`` of a call (``app.auth.deps.request_actor``), jobs and
the command line use ``Actor.system``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.encoders import jsonable_encoder
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit.models import AuditEvent
from app.core.pagination import PageParams, paginate_query


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


async def list_events(
    session: AsyncSession,
    params: PageParams,
    *,
    action: str | None = None,
    actor_id: str | None = None,
    object_id: str | None = None,
) -> list[AuditEvent]:
    statement = select(AuditEvent)
    if action:
        statement = statement.where(col(AuditEvent.action) == action)
    if actor_id:
        statement = statement.where(col(AuditEvent.actor_id) == actor_id)
    if object_id:
        statement = statement.where(col(AuditEvent.object_id) == object_id)
    statement = paginate_query(statement, params, col(AuditEvent.created_at), col(AuditEvent.id))
    return list((await session.scalars(statement)).all())


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
