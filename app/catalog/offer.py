"""A partner's programs as the partner sees them (each with its products and the fee schedule in force): one
statement, on SQLAlchemy Core, whatever the page size.

``GET /v1/programs`` is among the calls partners make most; it reads rows only, so it is one statement outside any
transaction (a single statement sees one snapshot of its own) instead of three statements between ``BEGIN`` and
``COMMIT``. The products and the schedule come back as JSON built by PostgreSQL and are validated by the same
response schemas as the rows the ORM loads.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import Date, Select, bindparam, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by

from app.catalog.models import BundledProduct, FeeSchedule, FeeScheduleStatus, Program, ProgramProduct
from app.catalog.schemas import FeeScheduleOut, ProductOut, ProgramOut
from app.core import business_time
from app.core.compiled import CompiledRead, ReadScope, rows_of
from app.core.pagination import Page, PageParams, after_position, cursor_position, page_of
from app.core.tenancy import Tenant

_programs = Program.__table__  # type: ignore[attr-defined]
_products = BundledProduct.__table__  # type: ignore[attr-defined]
_offers = ProgramProduct.__table__  # type: ignore[attr-defined]
_schedules = FeeSchedule.__table__  # type: ignore[attr-defined]

_PROGRAM_FIELDS = tuple(column.name for column in _programs.c)


def _statement(scoped_to_partner: bool, after_cursor: bool) -> Select[Any]:
    """One of the four shapes of the statement, compiled once (``CompiledRead``): its values are bound parameters,
    so that asyncpg's prepared statement serves every call."""
    on = bindparam("on", type_=Date)
    products = (
        select(
            func.coalesce(
                func.jsonb_agg(aggregate_order_by(func.to_jsonb(literal_column("bundled_products")), _products.c.code)),
                literal_column("'[]'::jsonb"),
                type_=JSONB,
            )
        )
        .select_from(_offers.join(_products, _products.c.id == _offers.c.product_id))
        .where(_offers.c.program_id == _programs.c.id)
        .scalar_subquery()
    )
    schedule = (
        select(func.to_jsonb(literal_column("fee_schedules"), type_=JSONB))
        .select_from(_schedules)
        .where(
            _schedules.c.program_id == _programs.c.id,
            _schedules.c.status == FeeScheduleStatus.active,
            _schedules.c.effective_from <= on,
            or_(_schedules.c.effective_to.is_(None), _schedules.c.effective_to > on),
        )
        .limit(1)
        .scalar_subquery()
    )
    statement = select(*_programs.c, products.label("products_json"), schedule.label("schedule_json"))
    if scoped_to_partner:
        statement = statement.where(_programs.c.partner_id == bindparam("partner_id"))
    if after_cursor:
        statement = statement.where(after_position(_programs.c.created_at, _programs.c.id))
    return statement.order_by(_programs.c.created_at.desc(), _programs.c.id.desc()).limit(bindparam("rows"))


_READS = {
    (scoped, after): CompiledRead(_statement(scoped, after)) for scoped in (False, True) for after in (False, True)
}


def _view(fields: dict[str, Any]) -> ProgramOut:
    schedule = fields["schedule_json"]
    return ProgramOut(
        **{name: fields[name] for name in _PROGRAM_FIELDS if name in ProgramOut.model_fields},
        products=[ProductOut.model_validate(product) for product in fields["products_json"] or []],
        fee_schedule_in_force=FeeScheduleOut.of(SimpleNamespace(**schedule)) if schedule else None,  # type: ignore[arg-type]
    )


async def partner_programs(reads: ReadScope, params: PageParams, tenant: Tenant) -> Page[ProgramOut]:
    """A page of the tenant's programs, newest first, each with its products and its schedule in force today."""
    values: dict[str, Any] = {"on": business_time.today(), "rows": params.limit + 1}
    if tenant.partner_id is not None:
        values["partner_id"] = tenant.partner_id
    if (position := cursor_position(params)) is not None:
        values["after_created_at"], values["after_id"] = position
    read = _READS[tenant.partner_id is not None, position is not None]
    rows = await rows_of(reads, read, values)
    return page_of([_view(row) for row in rows], params)
