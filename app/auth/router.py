"""Credential management for admins: OAuth clients and signing keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.audit import service as audit
from app.auth import service
from app.auth.deps import Principal, requires
from app.auth.keys import rotate_signing_key
from app.auth.schemas import ClientCreate, ClientCreated, ClientOut, KeyRotated, SecretRotate, SecretRotated
from app.auth.scopes import PrincipalKind
from app.core.database import SessionDep
from app.core.idempotency import IdempotentCreate
from app.core.pagination import Page, PageParams, page_of, page_params
from app.core.problems import problem_responses

router = APIRouter(
    prefix="/v1/admin",
    tags=["credentials"],
    responses=problem_responses(401, 403, 404, 429),
)
ClientsAdmin = Annotated[Principal, requires("clients:manage")]


@router.post("/clients", status_code=201, response_model=ClientCreated, summary="Create an OAuth client")
async def create_client(
    body: ClientCreate,
    request: Request,
    session: SessionDep,
    principal: ClientsAdmin,
    once: IdempotentCreate,
) -> Response:
    async def create() -> ClientCreated:
        created = await service.create_client(
            session,
            principal.actor(request),
            name=body.name,
            kind=body.kind,
            role=body.role,
            partner_id=body.partner_id,
            scopes=body.scopes,
            auth_method=body.auth_method,
            jwks=body.jwks,
            jwks_uri=body.jwks_uri,
            rate_limit_per_second=body.rate_limit_per_second,
            private_targets_allowed=request.app.state.settings.private_targets_allowed,
        )
        return ClientCreated(**ClientOut.of(created.client).model_dump(), client_secret=created.secret)

    return await once.create(principal.client_id, body, create, sealed=("client_secret",))


@router.get("/clients", response_model=Page[ClientOut], summary="List OAuth clients")
async def list_clients(
    session: SessionDep,
    principal: ClientsAdmin,
    params: Annotated[PageParams, Depends(page_params)],
    partner_id: Annotated[str | None, Query(max_length=40)] = None,
    kind: PrincipalKind | None = None,
) -> Page[ClientOut]:
    rows = await service.list_clients(session, params, partner_id=partner_id, kind=kind)
    return page_of(rows, params, ClientOut.of)


@router.get("/clients/{client_id}", response_model=ClientOut, summary="Read an OAuth client")
async def get_client(client_id: str, session: SessionDep, principal: ClientsAdmin) -> ClientOut:
    return ClientOut.of(await service.get_client(session, client_id))


@router.post("/clients/{client_id}/rotate-secret", response_model=SecretRotated, summary="Rotate a client secret")
async def rotate_secret(
    client_id: str, request: Request, session: SessionDep, principal: ClientsAdmin, body: SecretRotate | None = None
) -> SecretRotated:
    grace = body.grace_period_s if body and body.grace_period_s is not None else None
    settings = request.app.state.settings
    client, secret, until = await service.rotate_client_secret(
        session,
        principal.actor(request),
        client_id,
        grace_s=settings.secret_rotation_grace_s if grace is None else grace,
    )
    return SecretRotated(client_id=client.id, client_secret=secret, previous_secret_expires_at=until)


@router.post("/clients/{client_id}/revoke", response_model=ClientOut, summary="Revoke an OAuth client at once")
async def revoke_client(client_id: str, request: Request, session: SessionDep, principal: ClientsAdmin) -> ClientOut:
    return ClientOut.of(await service.revoke_client(session, principal.actor(request), client_id))


@router.post("/keys/rotate", response_model=KeyRotated, summary="Rotate the access-token signing key")
async def rotate_key(
    request: Request, session: SessionDep, principal: Annotated[Principal, requires("keys:manage")]
) -> KeyRotated:
    retired, active = await rotate_signing_key(session, request.app.state.settings)
    await audit.record(
        session,
        principal.actor(request),
        "signing_key.rotated",
        object_type="signing_key",
        object_id=active,
        retired=retired,
    )
    request.app.state.keyring.invalidate()
    return KeyRotated(retired_kid=retired, active_kid=active)
