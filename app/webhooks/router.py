"""Partners' webhook endpoints and their delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.auth.deps import Principal, requires
from app.core.database import SessionDep
from app.core.idempotency import IdempotentCreate
from app.core.pagination import Page, PageParams, page_of, page_params
from app.core.problems import problem_responses
from app.webhooks import service
from app.webhooks.models import DeliveryStatus
from app.webhooks.schemas import (
    AttemptOut,
    DeliveryDetail,
    DeliveryOut,
    EndpointCreate,
    EndpointCreated,
    EndpointOut,
    EndpointUpdate,
    SecretRotated,
)

router = APIRouter(prefix="/v1", tags=["webhooks"], responses=problem_responses(401, 403, 404, 429))
Manager = Annotated[Principal, requires("webhooks:manage")]
Paging = Annotated[PageParams, Depends(page_params)]


@router.post(
    "/webhook-endpoints",
    status_code=201,
    response_model=EndpointCreated,
    responses=problem_responses(422),
    summary="Register a webhook endpoint (the signing secret is shown once)",
)
async def create_endpoint(
    body: EndpointCreate,
    request: Request,
    session: SessionDep,
    principal: Manager,
    once: IdempotentCreate,
) -> Response:
    async def create() -> EndpointCreated:
        created = await service.create_endpoint(
            session,
            request.app.state.settings,
            principal.actor(request),
            principal.tenant,
            url=body.url,
            event_types=list(body.event_types),
            description=body.description,
            enabled=body.enabled,
        )
        return EndpointCreated(**EndpointOut.of(created.endpoint).model_dump(), secret=created.secret)

    return await once.create(principal.client_id, body, create, sealed=("secret",))


@router.get("/webhook-endpoints", response_model=Page[EndpointOut], summary="Your webhook endpoints")
async def list_endpoints(session: SessionDep, principal: Manager, params: Paging) -> Page[EndpointOut]:
    return page_of(await service.list_endpoints(session, principal.tenant, params), params, EndpointOut.of)


@router.get("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut, summary="One webhook endpoint")
async def get_endpoint(endpoint_id: str, session: SessionDep, principal: Manager) -> EndpointOut:
    return EndpointOut.of(await service.get_endpoint(session, principal.tenant, endpoint_id))


@router.patch(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointOut,
    responses=problem_responses(422),
    summary="Change an endpoint (re-enabling it resets its failure count)",
)
async def update_endpoint(
    endpoint_id: str, body: EndpointUpdate, request: Request, session: SessionDep, principal: Manager
) -> EndpointOut:
    values = body.model_dump(mode="json", exclude_unset=True)
    endpoint = await service.update_endpoint(
        session, request.app.state.settings, principal.tenant, principal.actor(request), endpoint_id, values
    )
    return EndpointOut.of(endpoint)


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204, summary="Remove an endpoint (its log is kept)")
async def delete_endpoint(endpoint_id: str, request: Request, session: SessionDep, principal: Manager) -> Response:
    await service.delete_endpoint(session, principal.tenant, principal.actor(request), endpoint_id)
    return Response(status_code=204)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=SecretRotated,
    summary="New signing secret; the old one keeps signing for 24 hours",
)
async def rotate_secret(endpoint_id: str, request: Request, session: SessionDep, principal: Manager) -> SecretRotated:
    endpoint, secret = await service.rotate_secret(
        session, request.app.state.settings, principal.tenant, principal.actor(request), endpoint_id
    )
    return SecretRotated(
        endpoint_id=endpoint.id, secret=secret, previous_secret_expires_at=endpoint.previous_secret_expires_at
    )


@router.post(
    "/webhook-endpoints/{endpoint_id}/test",
    status_code=202,
    response_model=DeliveryOut,
    summary="Queue a `webhook.test` delivery to this endpoint",
)
async def send_test(endpoint_id: str, session: SessionDep, principal: Manager) -> DeliveryOut:
    return DeliveryOut.of(await service.enqueue_test(session, principal.tenant, endpoint_id))


@router.get("/webhook-deliveries", response_model=Page[DeliveryOut], summary="Your delivery log, newest first")
async def list_deliveries(
    session: SessionDep,
    principal: Manager,
    params: Paging,
    endpoint_id: Annotated[str | None, Query(max_length=40)] = None,
    status: DeliveryStatus | None = None,
) -> Page[DeliveryOut]:
    rows = await service.list_deliveries(session, principal.tenant, params, endpoint_id=endpoint_id, status=status)
    return page_of(rows, params, DeliveryOut.of)


@router.get("/webhook-deliveries/{delivery_id}", response_model=DeliveryDetail, summary="A delivery and its attempts")
async def get_delivery(delivery_id: str, session: SessionDep, principal: Manager) -> DeliveryDetail:
    delivery, attempts = await service.get_delivery(session, principal.tenant, delivery_id)
    return DeliveryDetail(
        **DeliveryOut.of(delivery).model_dump(),
        payload=delivery.payload,
        attempt_log=[AttemptOut.of(attempt) for attempt in attempts],
    )


@router.post(
    "/webhook-deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=DeliveryOut,
    summary="Send a delivery again (same webhook-id)",
)
async def retry_delivery(delivery_id: str, session: SessionDep, principal: Manager) -> DeliveryOut:
    return DeliveryOut.of(await service.retry_delivery(session, principal.tenant, delivery_id))
