"""Catalog endpoints: the staff catalog under /v1/admin, and the partner's own programs under /v1/programs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import HotRead, Principal, requires
from app.catalog import offer, service
from app.catalog.models import FeeSchedule, PartnerKind, PartnerStatus, Program
from app.catalog.schemas import (
    FeeScheduleCreate,
    FeeScheduleOut,
    FeeScheduleUpdate,
    PartnerCreate,
    PartnerOut,
    PartnerUpdate,
    ProductCreate,
    ProductOut,
    ProductUpdate,
    ProgramCreate,
    ProgramOut,
    ProgramUpdate,
    StatusChange,
)
from app.core.compiled import ReadsDep
from app.core.database import SessionDep
from app.core.idempotency import IdempotentCreate
from app.core.pagination import Page, PageParams, page_of, page_params
from app.core.problems import problem_responses

ERRORS = problem_responses(401, 403, 404, 429)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 429)

admin = APIRouter(prefix="/v1/admin", tags=["catalog"], responses=ERRORS)
partner_view = APIRouter(prefix="/v1/programs", tags=["programs"], responses=ERRORS)

Reader = Annotated[Principal, requires("catalog:read")]
Writer = Annotated[Principal, requires("catalog:write")]
Paging = Annotated[PageParams, Depends(page_params)]


async def program_views(session: AsyncSession, programs: list[Program]) -> list[ProgramOut]:
    """Programs with their products and the fee schedule in force: two queries whatever the page size."""
    ids = [program.id for program in programs]
    products = await service.program_products(session, ids)
    schedules = await service.schedules_in_force(session, ids)
    return [ProgramOut.of(program, products[program.id], schedules.get(program.id)) for program in programs]


async def _page_of_programs(session: AsyncSession, rows: list[Program], params: PageParams) -> Page[ProgramOut]:
    page = page_of(rows, params)
    return Page(data=await program_views(session, page.data), next_cursor=page.next_cursor)


# --- partners ---------------------------------------------------------------------------------------------------


@admin.post(
    "/partners", status_code=201, response_model=PartnerOut, responses=WRITE_ERRORS, summary="Register a partner"
)
async def create_partner(
    body: PartnerCreate,
    request: Request,
    session: SessionDep,
    principal: Writer,
    once: IdempotentCreate,
) -> Response:
    async def create() -> PartnerOut:
        return PartnerOut.of(await service.create_partner(session, principal.actor(request), body))

    return await once.create(principal.client_id, body, create)


@admin.get("/partners", response_model=Page[PartnerOut], summary="List partners")
async def list_partners(
    session: SessionDep,
    principal: Reader,
    params: Paging,
    kind: PartnerKind | None = None,
    status: PartnerStatus | None = None,
) -> Page[PartnerOut]:
    rows = await service.list_partners(session, params, kind=kind, status=status)
    return page_of(rows, params, PartnerOut.of)


@admin.get("/partners/{partner_id}", response_model=PartnerOut, summary="Read a partner")
async def get_partner(partner_id: str, session: SessionDep, principal: Reader) -> PartnerOut:
    return PartnerOut.of(await service.get_partner(session, partner_id))


@admin.patch("/partners/{partner_id}", response_model=PartnerOut, responses=WRITE_ERRORS, summary="Update a partner")
async def update_partner(
    partner_id: str, body: PartnerUpdate, request: Request, session: SessionDep, principal: Writer
) -> PartnerOut:
    return PartnerOut.of(await service.update_partner(session, principal.actor(request), partner_id, body))


def _status_route(target: PartnerStatus, verb: str) -> None:
    async def change_status(
        partner_id: str, body: StatusChange, request: Request, session: SessionDep, principal: Writer
    ) -> PartnerOut:
        partner = await service.change_partner_status(
            session, principal.actor(request), partner_id, target, body.reason
        )
        return PartnerOut.of(partner)

    admin.add_api_route(
        f"/partners/{{partner_id}}/{verb}",
        change_status,
        methods=["POST"],
        response_model=PartnerOut,
        responses=WRITE_ERRORS,
        summary=f"{verb.capitalize()} a partner",
        name=f"{verb}_partner",
    )


_status_route(PartnerStatus.suspended, "suspend")
_status_route(PartnerStatus.active, "reactivate")
_status_route(PartnerStatus.terminated, "terminate")


# --- products ---------------------------------------------------------------------------------------------------


@admin.post(
    "/products", status_code=201, response_model=ProductOut, responses=WRITE_ERRORS, summary="Create a bundled product"
)
async def create_product(
    body: ProductCreate,
    request: Request,
    session: SessionDep,
    principal: Writer,
    once: IdempotentCreate,
) -> Response:
    async def create() -> ProductOut:
        return ProductOut.of(await service.create_product(session, principal.actor(request), body))

    return await once.create(principal.client_id, body, create)


@admin.get("/products", response_model=Page[ProductOut], summary="List bundled products")
async def list_products(
    session: SessionDep, principal: Reader, params: Paging, active: bool | None = None
) -> Page[ProductOut]:
    return page_of(await service.list_products(session, params, active=active), params, ProductOut.of)


@admin.get("/products/{product_id}", response_model=ProductOut, summary="Read a bundled product")
async def get_product(product_id: str, session: SessionDep, principal: Reader) -> ProductOut:
    return ProductOut.of(await service.get_product(session, product_id))


@admin.patch(
    "/products/{product_id}", response_model=ProductOut, responses=WRITE_ERRORS, summary="Update a bundled product"
)
async def update_product(
    product_id: str, body: ProductUpdate, request: Request, session: SessionDep, principal: Writer
) -> ProductOut:
    return ProductOut.of(await service.update_product(session, principal.actor(request), product_id, body))


# --- programs ---------------------------------------------------------------------------------------------------


@admin.post("/programs", status_code=201, response_model=ProgramOut, responses=WRITE_ERRORS, summary="Create a program")
async def create_program(
    body: ProgramCreate,
    request: Request,
    session: SessionDep,
    principal: Writer,
    once: IdempotentCreate,
) -> Response:
    async def create() -> ProgramOut:
        program = await service.create_program(session, principal.actor(request), body)
        return (await program_views(session, [program]))[0]

    return await once.create(principal.client_id, body, create)


@admin.get("/programs", response_model=Page[ProgramOut], summary="List programs")
async def list_programs(
    session: SessionDep,
    principal: Reader,
    params: Paging,
    partner_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Page[ProgramOut]:
    rows = await service.list_programs(session, params, principal.tenant, partner_id=partner_id)
    return await _page_of_programs(session, rows, params)


@admin.get("/programs/{program_id}", response_model=ProgramOut, summary="Read a program")
async def get_program(program_id: str, session: SessionDep, principal: Reader) -> ProgramOut:
    return (await program_views(session, [await service.get_program(session, program_id, principal.tenant)]))[0]


@admin.patch("/programs/{program_id}", response_model=ProgramOut, responses=WRITE_ERRORS, summary="Update a program")
async def update_program(
    program_id: str, body: ProgramUpdate, request: Request, session: SessionDep, principal: Writer
) -> ProgramOut:
    program = await service.update_program(session, principal.actor(request), program_id, body)
    return (await program_views(session, [program]))[0]


# --- fee schedules ----------------------------------------------------------------------------------------------


@admin.post(
    "/fee-schedules",
    status_code=201,
    response_model=FeeScheduleOut,
    responses=WRITE_ERRORS,
    summary="Draft a fee-schedule version",
)
async def create_fee_schedule(
    body: FeeScheduleCreate,
    request: Request,
    session: SessionDep,
    principal: Writer,
    once: IdempotentCreate,
) -> Response:
    async def create() -> FeeScheduleOut:
        return FeeScheduleOut.of(await service.create_fee_schedule(session, principal.actor(request), body))

    return await once.create(principal.client_id, body, create)


@admin.get("/fee-schedules", response_model=Page[FeeScheduleOut], summary="List fee-schedule versions")
async def list_fee_schedules(
    session: SessionDep,
    principal: Reader,
    params: Paging,
    program_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Page[FeeScheduleOut]:
    rows: list[FeeSchedule] = await service.list_fee_schedules(session, params, program_id=program_id)
    return page_of(rows, params, FeeScheduleOut.of)


@admin.get("/fee-schedules/{schedule_id}", response_model=FeeScheduleOut, summary="Read a fee-schedule version")
async def get_fee_schedule(schedule_id: str, session: SessionDep, principal: Reader) -> FeeScheduleOut:
    return FeeScheduleOut.of(await service.get_fee_schedule(session, schedule_id))


@admin.patch(
    "/fee-schedules/{schedule_id}",
    response_model=FeeScheduleOut,
    responses=WRITE_ERRORS,
    summary="Edit a draft version",
)
async def update_fee_schedule(
    schedule_id: str, body: FeeScheduleUpdate, request: Request, session: SessionDep, principal: Writer
) -> FeeScheduleOut:
    return FeeScheduleOut.of(await service.update_fee_schedule(session, principal.actor(request), schedule_id, body))


@admin.delete("/fee-schedules/{schedule_id}", status_code=204, responses=WRITE_ERRORS, summary="Delete a draft version")
async def delete_fee_schedule(schedule_id: str, request: Request, session: SessionDep, principal: Writer) -> Response:
    await service.delete_fee_schedule(session, principal.actor(request), schedule_id)
    return Response(status_code=204)


@admin.post(
    "/fee-schedules/{schedule_id}/activate",
    response_model=FeeScheduleOut,
    responses=WRITE_ERRORS,
    summary="Put a draft version in force (freezes it)",
)
async def activate_fee_schedule(
    schedule_id: str, request: Request, session: SessionDep, principal: Writer
) -> FeeScheduleOut:
    return FeeScheduleOut.of(await service.activate_fee_schedule(session, principal.actor(request), schedule_id))


# --- the partner's own programs ------------------------------------------------------------------------------------

PartnerReader = Annotated[Principal, requires("referrals:read")]


async def my_programs(reads: ReadsDep, principal: PartnerReader, params: Paging) -> Page[ProgramOut]:
    return await offer.partner_programs(reads, params, principal.tenant)


# Among the calls partners make most, and one statement outside any transaction: a hot read.
partner_view.add_api_route(
    "",
    my_programs,
    methods=["GET"],
    response_model=Page[ProgramOut],
    summary="Your programs, their products and fees in force",
    route_class_override=HotRead,
)


@partner_view.get("/{program_id}", response_model=ProgramOut, summary="One of your programs")
async def my_program(program_id: str, session: SessionDep, principal: PartnerReader) -> ProgramOut:
    program = await service.get_program(session, program_id, principal.tenant)
    return (await program_views(session, [program]))[0]
