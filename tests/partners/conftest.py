"""The partner SDK (``partners/alliance_partner``) against the real application, in process.

The SDK is its own package, not installed into the service's environment: ``partners/`` goes on ``sys.path``.
``AsyncClient`` talks to the app through ``httpx.ASGITransport``. ``Client`` (synchronous) runs in a worker
thread, and ``LoopBridge`` carries each of its requests to the app on the test's event loop, where the test's
database connection lives.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.ext.asyncio import AsyncSession

PARTNERS = Path(__file__).resolve().parents[2] / "partners"
if str(PARTNERS) not in sys.path:
    sys.path.insert(0, str(PARTNERS))

from alliance_partner import AsyncClient, Client, RetryPolicy  # noqa: E402

from app.audit.service import Actor  # noqa: E402
from app.auth import service as auth_service  # noqa: E402
from app.auth.models import AuthMethod  # noqa: E402
from app.auth.scopes import PrincipalKind  # noqa: E402
from tests.auth.helpers import partner_key  # noqa: E402
from tests.factories.referrals import PartnerDesk  # noqa: E402

T = TypeVar("T")
BASE_URL = "http://testserver"
# No waiting between retries in tests, unless a test asks for it.
FAST = RetryPolicy(max_retries=3, backoff_base=0.0)


class LoopBridge(httpx.BaseTransport):
    """A synchronous transport (for ``Client``, running in a thread) that hands each request to an async
    transport on the given event loop and waits for the answer."""

    def __init__(self, transport: httpx.AsyncBaseTransport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()

        async def forward() -> httpx.Response:
            copy = httpx.Request(request.method, request.url, headers=request.headers, content=content)
            response = await self.transport.handle_async_request(copy)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)

        return asyncio.run_coroutine_threadsafe(forward(), self.loop).result(timeout=120)


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to the app, records them, and can answer some itself (to simulate failures).

    ``fail(method, path, *responses)`` queues answers for the next requests to that path: an ``httpx.Response``
    answered without reaching the app, ``"lost"`` (reach the app, then lose its answer and say 503), or an
    exception to raise.
    """

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.requests: list[httpx.Request] = []
        self.responses: list[httpx.Response] = []
        self._faults: dict[tuple[str, str], list[Any]] = {}

    def fail(self, method: str, path: str, *faults: Any) -> None:
        self._faults.setdefault((method, path), []).extend(faults)

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.method == method and request.url.path == path]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        faults = self._faults.get((request.method, request.url.path))
        if faults:
            fault = faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            if isinstance(fault, httpx.Response):
                return fault
            assert fault == "lost"
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return httpx.Response(
                503,
                json={
                    "type": "/problems/service-unavailable",
                    "title": "Service unavailable",
                    "status": 503,
                },
            )
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.responses.append(response)
        return response


@pytest.fixture
def recorder(app: FastAPI) -> Recorder:
    return Recorder(app)


@dataclass
class Credentials:
    client_id: str
    secret: str | None = None
    key: ECKey | RSAKey | None = None

    def options(self) -> dict[str, Any]:
        if self.key is not None:
            return {"client_id": self.client_id, "private_key": self.key}
        return {"client_id": self.client_id, "client_secret": self.secret}


def credentials_of(desk: PartnerDesk) -> Credentials:
    return Credentials(desk.caller.client.id, desk.caller.secret)


@pytest.fixture
async def key_desk(make_desk: Any, session: AsyncSession) -> tuple[PartnerDesk, Credentials]:
    """A partner (with a program) whose client authenticates with ``private_key_jwt``."""
    desk = await make_desk(name="北方测试人寿")
    key = partner_key("EC")
    created = await auth_service.create_client(
        session,
        Actor.system("test"),
        name="insurer (key)",
        kind=PrincipalKind.partner,
        partner_id=desk.partner.id,
        auth_method=AuthMethod.private_key_jwt,
        jwks={"keys": [key.as_dict(private=False)]},
    )
    return desk, Credentials(created.client.id, key=key)


@pytest.fixture
async def async_sdk(recorder: Recorder) -> AsyncIterator[Callable[..., AsyncClient]]:
    """``async_sdk(credentials, **options)``: an ``AsyncClient`` on the app, closed after the test."""
    made: list[AsyncClient] = []

    def make(credentials: Credentials, **options: Any) -> AsyncClient:
        options = {"base_url": BASE_URL, "retry": FAST, "transport": recorder, **credentials.options(), **options}
        client = AsyncClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def sync_sdk(recorder: Recorder) -> AsyncIterator[Callable[..., Client]]:
    """``sync_sdk(credentials, **options)``: a ``Client`` on the app; use it inside ``in_thread``."""
    made: list[Client] = []
    loop = asyncio.get_running_loop()

    def make(credentials: Credentials, **options: Any) -> Client:
        transport = LoopBridge(recorder, loop)
        options = {"base_url": BASE_URL, "retry": FAST, "transport": transport, **credentials.options(), **options}
        client = Client(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


async def in_thread(work: Callable[[], T]) -> T:
    """Run synchronous SDK code in a worker thread while the event loop serves the app."""
    return await asyncio.to_thread(work)
