"""``CompiledRead``: a statement run on the raw driver connection gives the values ``session.execute`` gives, inside
the session's transaction, and fails as ``session.execute`` fails (so the problem handler answers the same)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.audit.models import AuditEvent
from app.catalog.models import PartnerKind, Program, ProgramChannel, ProgramStatus
from app.core.compiled import CompiledRead

_events = AuditEvent.__table__  # type: ignore[attr-defined]
_programs = Program.__table__  # type: ignore[attr-defined]


async def test_values_are_those_of_session_execute(session: AsyncSession) -> None:
    object_id = "obj_compiled_read"
    session.add(
        AuditEvent(actor_id="cli_x", actor_kind="staff", action="demo.read", object_id=object_id, details={"a": [1]})
    )
    await session.flush()  # not committed: the read must run in the session's transaction to see it
    statement = select(*_events.c).where(_events.c.object_id == bindparam("object_id")).limit(bindparam("rows"))
    read = CompiledRead(statement)

    rows = await read.rows(await session.connection(), {"object_id": object_id, "rows": 5})

    expected = [dict(row) for row in (await session.execute(statement, {"object_id": object_id, "rows": 5})).mappings()]
    assert rows == expected
    assert rows[0]["details"] == {"a": [1]}
    assert isinstance(rows[0]["created_at"], datetime) and rows[0]["created_at"].tzinfo is not None


async def test_enum_columns_and_literal_parameters_decode_as_the_orm_does(
    session: AsyncSession,
    make_partner,  # type: ignore[no-untyped-def]
) -> None:
    partner = await make_partner(PartnerKind.bank)
    program = Program(
        partner_id=partner.id,
        name="银证合作",
        channel=ProgramChannel.vip_referral,
        effective_from=datetime(2026, 1, 1, tzinfo=UTC).date(),
    )
    session.add(program)
    await session.flush()
    # ``status`` compared to a literal (bound when the statement is built, an enum with a bind processor).
    statement = select(_programs.c.id, _programs.c.channel, _programs.c.status).where(
        _programs.c.partner_id == bindparam("partner_id"), _programs.c.status == ProgramStatus.active
    )

    rows = await CompiledRead(statement).rows(await session.connection(), {"partner_id": partner.id})

    assert rows == [{"id": program.id, "channel": ProgramChannel.vip_referral, "status": ProgramStatus.active}]
    assert type(rows[0]["channel"]) is ProgramChannel


async def test_a_refused_value_is_the_error_session_execute_raises(session: AsyncSession) -> None:
    read = CompiledRead(select(_events.c.id).where(_events.c.action == bindparam("action")))

    with pytest.raises(DBAPIError) as raised:
        await read.rows(await session.connection(), {"action": "a\x00b"})

    assert getattr(raised.value.orig, "sqlstate", None) == "22021"  # answered 422 "invalid-text"
    assert not raised.value.connection_invalidated


async def test_a_lost_connection_is_invalidated_and_answered_as_unavailable(engine: AsyncEngine) -> None:
    read = CompiledRead(select(_events.c.id).limit(1))
    async with engine.connect() as victim, engine.connect() as killer:
        pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await victim.rollback()
        await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

        with pytest.raises(DBAPIError) as raised:
            await read.rows(victim, {})

        assert raised.value.connection_invalidated  # what the problem handler answers 503
        assert victim.invalidated
    async with engine.connect() as fresh:  # the pool replaced the connection
        assert await read.rows(fresh, {}) is not None
