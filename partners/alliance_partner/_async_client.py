"""``AsyncClient``: the asynchronous client (asyncio or trio, through anyio like httpx). Every operation is in
``_operations``; this module only awaits."""

from __future__ import annotations

import inspect
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from alliance_partner._oauth import AsyncOAuth2Client
from alliance_partner._operations import Operations
from alliance_partner._pagination import AsyncPager
from alliance_partner._plans import Awaited, Listing, Locked, Plan, start

T = TypeVar("T")


class AsyncClient(Operations[httpx.AsyncBaseTransport], Awaited):
    """A partner's asynchronous client of the Alliance API; the same methods as ``Client``, awaited.

    ```python
    async with AsyncClient(base_url="https://alliance.example", client_id="cli_...", client_secret="acs_...") as api:
        referral = await api.create_referral(ReferralCreate(...))
        async for program in api.list_programs():
            ...
    ```

    Its options are documented on ``__init__``.

    One client is safe to share between tasks; reuse it rather than creating one per call.
    """

    def _connect(self, transport: httpx.AsyncBaseTransport | None) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(**self._oauth_options(transport))

    def _new_lock(self) -> anyio.Lock:
        return anyio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def _run(self, plan: Plan[T]) -> T:
        """Carry out ``plan``, awaiting each of its effects."""
        outcome: Any = None
        failure: Exception | None = None
        while True:
            try:
                effect = plan.send(outcome) if failure is None else plan.throw(failure)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            try:
                outcome, failure = await self._perform(effect), None
            except Exception as error:  # handed to the plan, which knows what it means
                outcome, failure = None, error

    async def _perform(self, effect: Any) -> Any:
        if isinstance(effect, Locked):
            async with self._token_lock:
                return await self._run(effect.plan)
        outcome = start(effect, self)
        return (await outcome) if inspect.isawaitable(outcome) else outcome

    def _pager(self, listing: Listing[T]) -> AsyncPager[T]:
        return AsyncPager(lambda cursor: self._run(self._fetch_page(listing, cursor)), listing.cursor)
