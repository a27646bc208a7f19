"""Webhooks through the SDK: endpoint management, and ``verify_webhook`` against what the service signs."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from alliance_partner import (
    AsyncClient,
    NotFoundError,
    UnprocessableEntityError,
    WebhookEvent,
    WebhookVerificationError,
    sign_webhook,
    verify_webhook,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks import Webhook

from app.core.config import Settings
from app.core.database import Database
from app.webhooks import signing
from app.webhooks.delivery import deliver_due
from tests.factories.referrals import PartnerDesk, individual
from tests.partners.conftest import credentials_of

SECRET = signing.new_secret()
OTHER = signing.new_secret()
BODY = json.dumps(
    {
        "type": "referral.status_changed",
        "timestamp": "2026-11-25T10:00:00+00:00",
        "data": {
            "referral_id": "ref_1",
            "external_ref": "C0001001",
            "from_status": "received",
            "to_status": "eligible",
        },
    },
    separators=(",", ":"),
    ensure_ascii=False,
).encode()


def signed(
    secrets: list[str], body: bytes = BODY, *, at: int | None = None, message_id: str = "msg_1"
) -> dict[str, str]:
    return signing.signed_headers(secrets, message_id, at if at is not None else int(time.time()), body)


def test_a_delivery_signed_by_the_service_verifies() -> None:
    event = verify_webhook(BODY, signed([SECRET]), SECRET)
    assert isinstance(event, WebhookEvent)
    assert event.id == "msg_1" and event.type == "referral.status_changed"
    assert event.data["external_ref"] == "C0001001" and event.timestamp is not None
    assert abs(event.signed_at.timestamp() - time.time()) < 5
    # Header names in any case, as a list of pairs too; the payload as text.
    upper = {name.upper(): value for name, value in signed([SECRET]).items()}
    assert verify_webhook(BODY.decode(), list(upper.items()), SECRET).id == "msg_1"


def test_during_a_rotation_either_secret_verifies() -> None:
    headers = signed([OTHER, SECRET])  # the service signs with both while the old secret overlaps
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify_webhook(BODY, headers, SECRET).id == "msg_1"
    assert verify_webhook(BODY, headers, OTHER).id == "msg_1"
    assert verify_webhook(BODY, signed([SECRET]), [OTHER, SECRET]).id == "msg_1"  # the receiver's own overlap


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("wrong secret", lambda: (BODY, signed([OTHER]))),
        ("tampered body", lambda: (BODY.replace(b"eligible", b"converted"), signed([SECRET]))),
        ("another message id", lambda: (BODY, {**signed([SECRET]), "webhook-id": "msg_2"})),
        ("too old", lambda: (BODY, signed([SECRET], at=int(time.time()) - 301))),
        ("too far ahead", lambda: (BODY, signed([SECRET], at=int(time.time()) + 301))),
        ("timestamp not a number", lambda: (BODY, {**signed([SECRET]), "webhook-timestamp": "1e9"})),
        (
            "no signature header",
            lambda: (BODY, {k: v for k, v in signed([SECRET]).items() if k != "webhook-signature"}),
        ),
        ("no id header", lambda: (BODY, {k: v for k, v in signed([SECRET]).items() if k != "webhook-id"})),
        ("unsigned scheme", lambda: (BODY, {**signed([SECRET]), "webhook-signature": "v1a,AAAA v2,BBBB"})),
        ("garbage signature", lambda: (BODY, {**signed([SECRET]), "webhook-signature": "v1,not-base64!! v1 ,"})),
        ("not json", lambda: (b"hello", signed([SECRET], b"hello"))),
        ("json but no object", lambda: (b"[1]", signed([SECRET], b"[1]"))),
    ],
)
def test_what_does_not_verify(case: str, make: Callable[[], tuple[bytes, dict[str, str]]]) -> None:
    body, headers = make()
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, SECRET)


def test_tolerance_and_clock_are_adjustable() -> None:
    at = int(time.time()) - 3600
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(BODY, signed([SECRET], at=at), SECRET)
    assert verify_webhook(BODY, signed([SECRET], at=at), SECRET, tolerance=7200).id == "msg_1"
    assert verify_webhook(BODY, signed([SECRET], at=at), SECRET, now=at + 10).id == "msg_1"


def test_secrets_must_be_whsec_base64() -> None:
    with pytest.raises(ValueError, match="not a webhook secret"):
        verify_webhook(BODY, signed([SECRET]), "whsec_***")
    with pytest.raises(ValueError, match="no webhook secret"):
        verify_webhook(BODY, signed([SECRET]), [])
    raw = base64.b64decode(SECRET.removeprefix("whsec_"))
    assert verify_webhook(BODY, signed([SECRET]), raw).id == "msg_1"  # the key bytes themselves


def test_cross_checked_with_the_standardwebhooks_package() -> None:
    now = int(time.time())
    ours = {
        "webhook-id": "msg_9",
        "webhook-timestamp": str(now),
        "webhook-signature": sign_webhook(SECRET, "msg_9", now, BODY),
    }
    assert Webhook(SECRET).verify(BODY, ours)["type"] == "referral.status_changed"
    assert sign_webhook(SECRET, "msg_9", now, BODY) == signing.signature(SECRET, "msg_9", now, BODY)
    from datetime import UTC, datetime

    theirs = Webhook(SECRET).sign("msg_9", datetime.fromtimestamp(now, UTC), BODY.decode())
    assert verify_webhook(BODY, {**ours, "webhook-signature": theirs}, SECRET).id == "msg_9"


async def test_endpoints_and_deliveries_through_the_sdk(
    make_desk: Any,
    async_sdk: Callable[..., AsyncClient],
    connection: AsyncConnection,
    settings: Settings,
) -> None:
    """Register an endpoint, let the service deliver a real event to it, verify it with the secret."""
    desk: PartnerDesk = await make_desk()
    other: PartnerDesk = await make_desk(name="别家银行")
    api = async_sdk(credentials_of(desk))
    created = await api.create_webhook_endpoint(
        "https://bank.example/alliance/webhooks", ["referral.status_changed"], description="status changes"
    )
    assert (
        created.secret.startswith("whsec_") and created.enabled and created.event_types == ["referral.status_changed"]
    )
    assert [endpoint.id async for endpoint in api.list_webhook_endpoints()] == [created.id]
    assert (await api.get_webhook_endpoint(created.id)).url == created.url
    with pytest.raises(NotFoundError):
        await async_sdk(credentials_of(other)).get_webhook_endpoint(created.id)
    with pytest.raises(UnprocessableEntityError):
        await api.create_webhook_endpoint("ftp://bank.example/hooks", ["referral.status_changed"])

    await api.create_referral(individual(desk.program.id, "HOOKED-1"))
    received: list[httpx.Request] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        database = Database(connection, join_savepoint=True)
        assert await deliver_due(database.sessionmaker, settings, http) == 1
    [request] = received
    event = verify_webhook(request.content, request.headers, created.secret)
    assert event.type == "referral.status_changed" and event.data["external_ref"] == "HOOKED-1"

    [delivery] = await api.list_webhook_deliveries(endpoint_id=created.id).to_list()
    assert delivery.id == event.id and delivery.status == "succeeded"
    detail = await api.get_webhook_delivery(delivery.id)
    assert detail.payload["data"]["external_ref"] == "HOOKED-1" and detail.attempt_log[0].status_code == 204
    retried = await api.retry_webhook_delivery(delivery.id)
    assert retried.id == delivery.id and retried.status == "pending"

    rotated = await api.rotate_webhook_secret(created.id)
    assert rotated.secret != created.secret and rotated.previous_secret_expires_at is not None
    test_delivery = await api.send_test_webhook(created.id)
    assert test_delivery.event_type == "webhook.test"
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        await deliver_due(database.sessionmaker, settings, http)
    for request in received[1:]:  # signed with both secrets during the overlap
        assert verify_webhook(request.content, request.headers, rotated.secret)
        assert verify_webhook(request.content, request.headers, created.secret)

    updated = await api.update_webhook_endpoint(created.id, enabled=False, description=None)
    assert updated.enabled is False and updated.description is None
    with pytest.raises(ValueError, match="nothing to change"):
        await api.update_webhook_endpoint(created.id)
    await api.delete_webhook_endpoint(created.id)
    deleted = await api.get_webhook_endpoint(created.id)  # the delivery log is kept: the endpoint stays, disabled
    assert deleted.enabled is False and deleted.disabled_reason == "deleted" and deleted.event_types == []
