"""Every kind of principal the API knows, with a real token each: shared by the authorization matrix and the fuzzer."""

from __future__ import annotations

from fastapi import FastAPI

from app.auth.scopes import PrincipalKind, StaffRole
from tests.conftest import Caller, CallerFactory

PRINCIPALS: dict[str, tuple[PrincipalKind, StaffRole | None]] = {
    "partner": (PrincipalKind.partner, None),
    "back_office": (PrincipalKind.back_office, None),
    **{role.value: (PrincipalKind.staff, role) for role in StaffRole},
}


async def make_callers(caller: CallerFactory, names: list[str] | None = None) -> dict[str, Caller]:
    """A client and a fresh token for each named principal (all of them by default)."""
    chosen = names if names is not None else list(PRINCIPALS)
    callers = {}
    for name in chosen:
        kind, role = PRINCIPALS[name]
        callers[name] = await caller(kind, role=role)
    return callers


def disable_rate_limit(app: FastAPI) -> None:
    """Tests that send hundreds of calls with one token: the rate limit is tested on its own elsewhere."""
    app.state.api_rate_limits.take = lambda *args, **kwargs: 0.0
