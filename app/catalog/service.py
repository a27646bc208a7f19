"""Catalog rules: the partner registry and its lifecycle, bundled products, programs, and fee-schedule versions
(drafts edited freely, activation freezes, a version in use is only ever succeeded)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col, select

from app.audit import service as audit
from app.audit.service import Actor
from app.catalog.models import (
    BundledProduct,
    FeeSchedule,
    FeeScheduleStatus,
    Partner,
    PartnerKind,
    PartnerStatus,
    Program,
    ProgramProduct,
)
from app.catalog.schemas import (
    FeeRules,
    FeeScheduleCreate,
    FeeScheduleUpdate,
    PartnerCreate,
    PartnerUpdate,
    ProductCreate,
    ProductUpdate,
    ProgramCreate,
    ProgramUpdate,
)
from app.core import business_time, clock
from app.core.pagination import PageParams, paginate_query
from app.core.problems import Conflict, NotFound, Unprocessable
from app.core.tenancy import Tenant, owned_row, scoped


class InvalidTransition(Conflict):
    slug, title = "invalid-transition", "Invalid status transition"


class FeeScheduleFrozen(Conflict):
    slug, title = "fee-schedule-frozen", "Fee schedule version is frozen"


class FeeScheduleOverlap(Conflict):
    slug, title = "fee-schedule-overlap", "Fee schedule versions would overlap"


class CatalogValidation(Unprocessable):
    slug, title = "catalog-validation", "Invalid catalog data"


def _snapshot(row: SQLModel, fields: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in fields}


async def _flush_unique(session: AsyncSession, message: str) -> None:
    """Flush; a unique-constraint violation is the caller's conflict, not a server error."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(message) from exc


async def _record_update(
    session: AsyncSession, actor: Actor, action: str, row: SQLModel, object_id: str, values: dict[str, Any]
) -> None:
    before = _snapshot(row, list(values))
    for name, value in values.items():
        setattr(row, name, value)
    session.add(row)
    await session.flush()
    if diff := audit.changes(before, values):
        object_type = str(type(row).__tablename__)
        await audit.record(session, actor, action, object_type=object_type, object_id=object_id, changes=diff)


# --- partners ---------------------------------------------------------------------------------------------------


async def create_partner(
    session: AsyncSession, actor: Actor, data: PartnerCreate, *, partner_id: str | None = None
) -> Partner:
    """Register a partner; it starts active. Defaults: VAT 6% exclusive, standard rate-limit tier."""
    values = data.model_dump(exclude_none=True)
    values.setdefault("display_name", data.legal_name)
    partner = Partner(**values)
    if partner_id:
        partner.id = partner_id
    session.add(partner)
    await _flush_unique(session, "A partner with this credit code is already registered.")
    await audit.record(
        session, actor, "partner.created", object_type="partner", object_id=partner.id, kind=data.kind.value
    )
    return partner


async def get_partner(session: AsyncSession, partner_id: str) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound("No such partner.")
    return partner


async def list_partners(
    session: AsyncSession,
    params: PageParams,
    *,
    kind: PartnerKind | None = None,
    status: PartnerStatus | None = None,
) -> list[Partner]:
    statement = select(Partner)
    if kind:
        statement = statement.where(col(Partner.kind) == kind)
    if status:
        statement = statement.where(col(Partner.status) == status)
    statement = paginate_query(statement, params, col(Partner.created_at), col(Partner.id))
    return list((await session.scalars(statement)).all())


async def update_partner(session: AsyncSession, actor: Actor, partner_id: str, data: PartnerUpdate) -> Partner:
    partner = await get_partner(session, partner_id)
    if partner.status is PartnerStatus.terminated:
        raise InvalidTransition("A terminated partner is kept for history and cannot be changed.")
    values = data.model_dump(exclude_unset=True)
    if "contacts" in values:
        values["contacts"] = [contact.model_dump() for contact in data.contacts or []]
    await _record_update(session, actor, "partner.updated", partner, partner.id, values)
    await _flush_unique(session, "A partner with this credit code is already registered.")
    return partner


_PARTNER_TRANSITIONS = {
    PartnerStatus.suspended: {PartnerStatus.active},
    PartnerStatus.active: {PartnerStatus.suspended},
    PartnerStatus.terminated: {PartnerStatus.active, PartnerStatus.suspended},
}


async def change_partner_status(
    session: AsyncSession, actor: Actor, partner_id: str, target: PartnerStatus, reason: str
) -> Partner:
    """Suspend, reactivate or terminate. Tokens are checked against the status on every call, so a suspension
    takes effect at once; termination is final and keeps every row."""
    partner = await get_partner(session, partner_id)
    if partner.status not in _PARTNER_TRANSITIONS[target]:
        raise InvalidTransition(f"A {partner.status.value} partner cannot become {target.value}.")
    await _record_update(
        session, actor, f"partner.{target.value}", partner, partner.id, {"status": target, "status_reason": reason}
    )
    return partner


# --- products ---------------------------------------------------------------------------------------------------


async def create_product(session: AsyncSession, actor: Actor, data: ProductCreate) -> BundledProduct:
    product = BundledProduct(**data.model_dump(mode="json"))
    session.add(product)
    await _flush_unique(session, f"A product with code {data.code} already exists.")
    await audit.record(
        session, actor, "product.created", object_type="bundled_product", object_id=product.id, code=data.code
    )
    return product


async def get_product(session: AsyncSession, product_id: str) -> BundledProduct:
    product = await session.get(BundledProduct, product_id)
    if product is None:
        raise NotFound("No such product.")
    return product


async def list_products(
    session: AsyncSession, params: PageParams, *, active: bool | None = None
) -> list[BundledProduct]:
    statement = select(BundledProduct)
    if active is not None:
        statement = statement.where(col(BundledProduct.active) == active)
    statement = paginate_query(statement, params, col(BundledProduct.created_at), col(BundledProduct.id))
    return list((await session.scalars(statement)).all())


async def update_product(session: AsyncSession, actor: Actor, product_id: str, data: ProductUpdate) -> BundledProduct:
    product = await get_product(session, product_id)
    values = data.model_dump(mode="json", exclude_unset=True)
    await _record_update(session, actor, "product.updated", product, product.id, values)
    return product


async def _offerable_products(session: AsyncSession, partner: Partner, codes: list[str]) -> list[BundledProduct]:
    """The products behind ``codes``, each active and allowed for the partner's kind."""
    products = list((await session.scalars(select(BundledProduct).where(col(BundledProduct.code).in_(codes)))).all())
    found = {product.code for product in products}
    if missing := sorted(set(codes) - found):
        raise CatalogValidation(f"Unknown product code(s): {', '.join(missing)}.")
    for product in products:
        if not product.active:
            raise CatalogValidation(f"Product {product.code} is not active.")
        if partner.kind.value not in product.allowed_partner_kinds:
            raise CatalogValidation(f"Product {product.code} cannot be offered by a {partner.kind.value}.")
    return products


# --- programs ---------------------------------------------------------------------------------------------------


async def create_program(
    session: AsyncSession, actor: Actor, data: ProgramCreate, *, program_id: str | None = None
) -> Program:
    partner = await get_partner(session, data.partner_id)
    if partner.status is PartnerStatus.terminated:
        raise CatalogValidation("A terminated partner cannot get new programs.")
    if data.effective_to and data.effective_to <= data.effective_from:
        raise CatalogValidation("effective_to must be after effective_from.")
    products = await _offerable_products(session, partner, data.product_codes or [])
    program = Program(**data.model_dump(exclude_none=True, exclude={"product_codes"}))
    if program_id:
        program.id = program_id
    session.add(program)
    await session.flush()
    session.add_all([ProgramProduct(program_id=program.id, product_id=product.id) for product in products])
    await session.flush()
    await audit.record(
        session,
        actor,
        "program.created",
        object_type="program",
        object_id=program.id,
        partner_id=partner.id,
        product_codes=sorted(product.code for product in products),
    )
    return program


async def get_program(session: AsyncSession, program_id: str, tenant: Tenant) -> Program:
    program = (await session.scalars(owned_row(Program, program_id, tenant))).one_or_none()
    if program is None:
        raise NotFound("No such program.")
    return program


async def list_programs(
    session: AsyncSession, params: PageParams, tenant: Tenant, *, partner_id: str | None = None
) -> list[Program]:
    statement = scoped(select(Program), tenant, col(Program.partner_id))
    if partner_id:
        statement = statement.where(col(Program.partner_id) == partner_id)
    statement = paginate_query(statement, params, col(Program.created_at), col(Program.id))
    return list((await session.scalars(statement)).all())


async def update_program(session: AsyncSession, actor: Actor, program_id: str, data: ProgramUpdate) -> Program:
    program = await get_program(session, program_id, Tenant.everyone(actor))
    values = data.model_dump(exclude_unset=True, exclude={"product_codes"})
    effective_from = values.get("effective_from", program.effective_from)
    effective_to = values.get("effective_to", program.effective_to)
    if effective_to and effective_to <= effective_from:
        raise CatalogValidation("effective_to must be after effective_from.")
    await _record_update(session, actor, "program.updated", program, program.id, values)
    if data.product_codes is not None:
        partner = await get_partner(session, program.partner_id)
        products = await _offerable_products(session, partner, data.product_codes)
        await _replace_products(session, actor, program, products)
    return program


async def _replace_products(
    session: AsyncSession, actor: Actor, program: Program, products: list[BundledProduct]
) -> None:
    current = (await program_products(session, [program.id])).get(program.id, [])
    before = sorted(product.code for product in current)
    after = sorted(product.code for product in products)
    if before == after:
        return
    await session.execute(
        ProgramProduct.__table__.delete().where(ProgramProduct.__table__.c.program_id == program.id)  # type: ignore[attr-defined]
    )
    session.add_all([ProgramProduct(program_id=program.id, product_id=product.id) for product in products])
    await session.flush()
    await audit.record(
        session,
        actor,
        "program.updated",
        object_type="program",
        object_id=program.id,
        changes={"product_codes": {"from": before, "to": after}},
    )


async def program_products(session: AsyncSession, program_ids: list[str]) -> dict[str, list[BundledProduct]]:
    """The products each program offers, in one query."""
    rows = await session.execute(
        select(col(ProgramProduct.program_id), BundledProduct)
        .join(BundledProduct, col(BundledProduct.id) == col(ProgramProduct.product_id))
        .where(col(ProgramProduct.program_id).in_(program_ids))
        .order_by(col(BundledProduct.code))
    )
    grouped: dict[str, list[BundledProduct]] = {program_id: [] for program_id in program_ids}
    for program_id, product in rows:
        grouped[program_id].append(product)
    return grouped


# --- fee schedules ----------------------------------------------------------------------------------------------


async def _lock_program(session: AsyncSession, program_id: str) -> Program:
    # Versions of one program are numbered and activated one at a time.
    program = (
        await session.scalars(select(Program).where(col(Program.id) == program_id).with_for_update())
    ).one_or_none()
    if program is None:
        raise NotFound("No such program.")
    return program


async def _check_rules_against_program(session: AsyncSession, program: Program, rules: FeeRules) -> None:
    offered = {product.code for product in (await program_products(session, [program.id]))[program.id]}
    if unknown := sorted({fee.product_code for fee in rules.bundle_fees} - offered):
        raise CatalogValidation(f"Bundle fees for products the program does not offer: {', '.join(unknown)}.")


async def create_fee_schedule(session: AsyncSession, actor: Actor, data: FeeScheduleCreate) -> FeeSchedule:
    """A new draft version of a program's fee schedule."""
    program = await _lock_program(session, data.program_id)
    await _check_rules_against_program(session, program, data.rules)
    latest = await session.scalar(
        select(func.max(FeeSchedule.version)).where(col(FeeSchedule.program_id) == program.id)
    )
    schedule = FeeSchedule(
        program_id=program.id,
        version=(latest or 0) + 1,
        effective_from=data.effective_from,
        rules=data.rules.model_dump(mode="json"),
    )
    session.add(schedule)
    await session.flush()
    await audit.record(
        session,
        actor,
        "fee_schedule.created",
        object_type="fee_schedule",
        object_id=schedule.id,
        program_id=program.id,
        version=schedule.version,
    )
    return schedule


async def get_fee_schedule(session: AsyncSession, schedule_id: str) -> FeeSchedule:
    schedule = await session.get(FeeSchedule, schedule_id)
    if schedule is None:
        raise NotFound("No such fee schedule.")
    return schedule


async def list_fee_schedules(
    session: AsyncSession, params: PageParams, *, program_id: str | None = None
) -> list[FeeSchedule]:
    statement = select(FeeSchedule)
    if program_id:
        statement = statement.where(col(FeeSchedule.program_id) == program_id)
    statement = paginate_query(statement, params, col(FeeSchedule.created_at), col(FeeSchedule.id))
    return list((await session.scalars(statement)).all())


def _ensure_draft(schedule: FeeSchedule) -> None:
    if schedule.first_accrual_at is not None:
        raise FeeScheduleFrozen("This version has produced accruals: it can only be succeeded by a new version.")
    if schedule.status is not FeeScheduleStatus.draft:
        raise FeeScheduleFrozen("An active version is frozen: create a new version to change the rules.")


async def update_fee_schedule(
    session: AsyncSession, actor: Actor, schedule_id: str, data: FeeScheduleUpdate
) -> FeeSchedule:
    schedule = await get_fee_schedule(session, schedule_id)
    _ensure_draft(schedule)
    values = data.model_dump(mode="json", exclude_unset=True)
    if data.rules is not None:
        program = await get_program(session, schedule.program_id, Tenant.everyone(actor))
        await _check_rules_against_program(session, program, data.rules)
    if data.effective_from is not None:
        values["effective_from"] = data.effective_from
    await _record_update(session, actor, "fee_schedule.updated", schedule, schedule.id, values)
    return schedule


async def delete_fee_schedule(session: AsyncSession, actor: Actor, schedule_id: str) -> None:
    schedule = await get_fee_schedule(session, schedule_id)
    _ensure_draft(schedule)
    await session.delete(schedule)
    await session.flush()
    await audit.record(session, actor, "fee_schedule.deleted", object_type="fee_schedule", object_id=schedule_id)


async def activate_fee_schedule(session: AsyncSession, actor: Actor, schedule_id: str) -> FeeSchedule:
    """Put a draft in force from its ``effective_from``; the version before it then ends on that date.

    Versions only ever follow one another: the new one must start after every active version began, and after
    today when the version it succeeds has produced accruals (money already earned is never re-priced).
    """
    schedule = await get_fee_schedule(session, schedule_id)
    await _lock_program(session, schedule.program_id)
    await session.refresh(schedule)
    _ensure_draft(schedule)
    actives = list(
        (
            await session.scalars(
                select(FeeSchedule)
                .where(
                    col(FeeSchedule.program_id) == schedule.program_id,
                    col(FeeSchedule.status) == FeeScheduleStatus.active,
                )
                .order_by(col(FeeSchedule.effective_from).desc())
            )
        ).all()
    )
    predecessor = actives[0] if actives else None
    if predecessor and schedule.effective_from <= predecessor.effective_from:
        raise FeeScheduleOverlap(
            f"Version {predecessor.version} is in force from {predecessor.effective_from}; "
            "a new version must start later."
        )
    if predecessor and predecessor.first_accrual_at is not None and schedule.effective_from < business_time.today():
        raise FeeScheduleOverlap(
            f"Version {predecessor.version} has produced accruals; its successor cannot start in the past."
        )
    if predecessor:
        await _record_update(
            session,
            actor,
            "fee_schedule.succeeded",
            predecessor,
            predecessor.id,
            {"effective_to": schedule.effective_from},
        )
    await _record_update(
        session,
        actor,
        "fee_schedule.activated",
        schedule,
        schedule.id,
        {"status": FeeScheduleStatus.active, "activated_at": clock.now()},
    )
    return schedule


async def schedules_in_force(
    session: AsyncSession, program_ids: list[str], on: date | None = None
) -> dict[str, FeeSchedule]:
    """The active version covering ``on`` (default today) for each program, in one query."""
    on = on or business_time.today()
    rows = await session.scalars(
        select(FeeSchedule).where(
            col(FeeSchedule.program_id).in_(program_ids),
            col(FeeSchedule.status) == FeeScheduleStatus.active,
            col(FeeSchedule.effective_from) <= on,
            or_(col(FeeSchedule.effective_to).is_(None), col(FeeSchedule.effective_to) > on),
        )
    )
    return {schedule.program_id: schedule for schedule in rows}


async def mark_fee_schedules_used(session: AsyncSession, schedule_ids: Collection[str], now: datetime) -> None:
    """Called by the fee engine for the versions its lines were computed under: a version's first accrual fixes
    it, and from then on it never changes (one statement, however many versions)."""
    if not schedule_ids:
        return
    await session.execute(
        update(FeeSchedule)
        .where(col(FeeSchedule.id).in_(sorted(schedule_ids)), col(FeeSchedule.first_accrual_at).is_(None))
        .values(first_accrual_at=now)
    )
