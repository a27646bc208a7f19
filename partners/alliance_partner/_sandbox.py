"""``client.sandbox``: the test clock and the simulated back office, in a sandbox (or development) deployment
only; production answers 404 (``NotFoundError``) to all of them. Written once for both clients, like every
operation (see ``_plans``): ``Sandbox`` and ``AsyncSandbox`` only hand the plans to their client."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from alliance_partner._calls import CallingClient
from alliance_partner._models import ClockAdvance, SandboxClock, SimulatedEventType, Simulation
from alliance_partner._plans import Awaited, Blocking, Plan, operation

T = TypeVar("T")


class SandboxOperations:
    """Your sandbox: move your test clock, and have the simulated back office report what happens to your
    referrals' clients, through the very code that handles the firm's real events."""

    def __init__(self, client: CallingClient[Any]) -> None:
        self._client = client

    @operation
    def get_clock(self) -> Plan[SandboxClock]:
        """Your test clock: its ``now`` is what every rule reads for you (windows, holds, month ends)."""
        client = self._client
        return (yield from client._read(SandboxClock, client._call("sandbox.get_clock")))

    @operation
    def advance_clock(self, *, to: datetime | None = None, by_days: int | None = None) -> Plan[ClockAdvance]:
        """Move your test clock forward, to ``to`` (aware) or by ``by_days``, running every job that falls due in
        between (expiry, hold release, retention, month close) in order; the answer says what ran."""
        if (to is None) == (by_days is None):
            raise ValueError("give exactly one of to= or by_days=")
        body: dict[str, Any] = {"to": to} if to is not None else {"by_days": by_days}
        client = self._client
        return (yield from client._read(ClockAdvance, client._action("sandbox.advance_clock", body)))

    @operation
    def simulate(
        self,
        referral_id: str,
        type: SimulatedEventType,
        *,
        amount: int | None = None,
        product_code: str | None = None,
        idempotency_key: str | None = None,
    ) -> Plan[Simulation]:
        """Have the simulated back office report ``type`` about your referral's client, now (your test clock):
        ``account_opened`` (an eligible referral), then ``account_funded``, ``assets_snapshot``,
        ``bundle_purchased``/``bundle_cancelled`` (with a ``product_code`` of its program), ``revenue_recorded``,
        ``account_closed``. ``amount`` is integer fen, on the money events. The answer has the referral's new
        status and the fee lines created; your webhooks are notified as in production.
        """
        body: dict[str, Any] = {"type": type}
        if amount is not None:
            body["amount"] = amount
        if product_code is not None:
            body["product_code"] = product_code
        client = self._client
        spec = client._create("sandbox.simulate", body, idempotency_key, referral_id=referral_id)
        return (yield from client._read(Simulation, spec))


class Sandbox(SandboxOperations, Blocking):
    """``Client.sandbox``: the sandbox's operations, blocking."""

    def _run(self, plan: Plan[T]) -> T:
        client: Any = self._client
        return client._run(plan)  # type: ignore[no-any-return]


class AsyncSandbox(SandboxOperations, Awaited):
    """``AsyncClient.sandbox``: the sandbox's operations, awaited."""

    async def _run(self, plan: Plan[T]) -> T:
        client: Any = self._client
        return await client._run(plan)  # type: ignore[no-any-return]
