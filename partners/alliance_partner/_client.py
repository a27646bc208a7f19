"""``Client``: the synchronous client. Every operation is in ``_operations``; this module only blocks."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any, TypeVar

import httpx

from alliance_partner._oauth import OAuth2Client
from alliance_partner._operations import Operations
from alliance_partner._pagination import SyncPager
from alliance_partner._plans import Blocking, Listing, Locked, Plan, start

T = TypeVar("T")


class Client(Operations[httpx.BaseTransport], Blocking):
    """A partner's synchronous client of the Alliance API.

    ```python
    with Client(base_url="https://alliance.example", client_id="cli_...", client_secret="acs_...") as alliance:
        referral = alliance.create_referral(ReferralCreate(...))
    ```

    Its options are documented on ``__init__``.

    One client is safe to share between threads; reuse it rather than creating one per call.
    """

    def _connect(self, transport: httpx.BaseTransport | None) -> OAuth2Client:
        return OAuth2Client(**self._oauth_options(transport))

    def _new_lock(self) -> threading.Lock:
        return threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _run(self, plan: Plan[T]) -> T:
        """Carry out ``plan``, blocking on each of its effects."""
        outcome: Any = None
        failure: Exception | None = None
        while True:
            try:
                effect = plan.send(outcome) if failure is None else plan.throw(failure)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            try:
                outcome, failure = self._perform(effect), None
            except Exception as error:  # handed to the plan, which knows what it means
                outcome, failure = None, error

    def _perform(self, effect: Any) -> Any:
        if isinstance(effect, Locked):
            with self._token_lock:
                return self._run(effect.plan)
        return start(effect, self)

    def _pager(self, listing: Listing[T]) -> SyncPager[T]:
        return SyncPager(lambda cursor: self._run(self._fetch_page(listing, cursor)), listing.cursor)
