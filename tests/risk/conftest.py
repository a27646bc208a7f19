"""Risk signals driven through the public API: partners submit, the back office reports, the signal job runs
(as the worker runs it), and the cases it opened are read back."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit.service import Actor
from app.auth.scopes import StaffRole
from app.core import clock
from app.core.config import Settings
from app.core.partner_filter import EVERY_PARTNER, PartnerFilter
from app.people import service as people
from app.people.models import Person
from app.risk.schemas import Signal, SignalKind
from app.risk.service import raise_signal
from app.risk.signals import raise_risk_signals
from tests.conftest import Caller, CallerFactory
from tests.console.conftest import console_as
from tests.factories.referrals import PartnerDesk, consent, individual, national_id
from tests.fees.conftest import make_ledger

_ids = itertools.count()
_consents = itertools.count()


@pytest.fixture
async def feed(caller: CallerFactory) -> Caller:
    return await caller("back_office")


def own_consent(at: datetime | None = None) -> dict[str, Any]:
    """Consent evidence of its own: a record reference and a capture second no other referral shares."""
    number = next(_consents)
    moment = (at or clock.now()) - timedelta(hours=1, seconds=number)
    return consent(evidence_ref=f"sig-own-{number}", captured_at=moment.isoformat())


async def submit(
    client: httpx.AsyncClient, desk: PartnerDesk, *, evidence: dict[str, Any] | None = None, **subject: Any
) -> dict[str, Any]:
    """POST /v1/referrals for a new person (or the one ``subject`` names), with consent of its own unless given."""
    body = individual(desk.program.id, **subject)
    body["consent"] = evidence or own_consent()
    answer = await client.post("/v1/referrals", json=body, headers=desk.headers())
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


def event(kind: str, client_ref: str, at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "source_event_id": f"risk-{next(_ids)}-{kind}",
        "type": kind,
        "occurred_at": (at or clock.now()).isoformat(),
        "client_ref": client_ref,
        **fields,
    }


def cny(yuan: int) -> dict[str, Any]:
    return {"amount": yuan * 100, "currency": "CNY"}


async def report(client: httpx.AsyncClient, feed: Caller, *events: dict[str, Any]) -> list[dict[str, Any]]:
    answer = await client.post("/v1/conversion-events", json={"events": list(events)}, headers=feed.headers)
    assert answer.status_code == 200, answer.text
    results = list(answer.json()["results"])
    assert all(item["result"] in ("applied", "deferred") for item in results), results
    return results


@dataclass(frozen=True)
class Raised:
    """A signal as its case keeps it."""

    kind: str
    partner_id: str
    case_id: str
    referral_ids: tuple[str, ...]
    evidence: dict[str, Any]
    fingerprint: str
    signal_id: str


@pytest.fixture
async def manager(caller: CallerFactory) -> Caller:
    return await caller("staff", role="alliance_manager")


class MakeStaffPerson(Protocol):
    async def __call__(self, role: str, username: str | None = None, *, disabled: bool = False) -> str: ...


@pytest.fixture
async def staff_person(session: AsyncSession, settings: Settings) -> MakeStaffPerson:
    """A console account of ``role`` (disabled if asked); returns its actor id, ``person:<username>``."""

    async def make(role: str, username: str | None = None, *, disabled: bool = False) -> str:
        username = username or f"risk-{role.replace('_', '-')}-{next(_ids)}"
        await people.create_person(session, Actor.system("test"), settings, username=username, role=StaffRole(role))
        if disabled:
            await session.execute(
                update(Person).where(col(Person.username) == username).values(disabled_at=clock.now())
            )
        return f"person:{username}"

    return make


async def signals_on_cases(client: httpx.AsyncClient, manager: Caller) -> list[Raised]:
    """Every signal of every case, through GET /v1/admin/risk-cases and each case's page."""
    listed = await client.get("/v1/admin/risk-cases", params={"limit": "200"}, headers=manager.headers)
    assert listed.status_code == 200, listed.text
    raised = []
    for case in listed.json()["data"]:
        detail = await client.get(f"/v1/admin/risk-cases/{case['id']}", headers=manager.headers)
        assert detail.status_code == 200, detail.text
        for signal in detail.json()["signals"]:
            raised.append(
                Raised(
                    signal["kind"],
                    case["partner_id"],
                    case["id"],
                    tuple(signal["referral_ids"]),
                    signal["evidence"],
                    signal["fingerprint"],
                    signal["id"],
                )
            )
    return sorted(raised, key=lambda signal: signal.fingerprint)


async def run_signals(
    client: httpx.AsyncClient,
    manager: Caller,
    session: AsyncSession,
    settings: Settings,
    *,
    partners: PartnerFilter = EVERY_PARTNER,
    **thresholds: Any,
) -> list[Raised]:
    """The worker's signal job at the clock's now for ``partners``, with ``thresholds`` overriding the settings;
    the signals this run added to cases, as an alliance manager reads them."""
    before = {signal.fingerprint for signal in await signals_on_cases(client, manager)}
    await raise_risk_signals(session, settings.model_copy(update=thresholds), clock.now(), partners)
    return [signal for signal in await signals_on_cases(client, manager) if signal.fingerprint not in before]


def without_personal_data(evidence: dict[str, Any], *values: str) -> None:
    text = json.dumps(evidence, ensure_ascii=False)
    for value in values:
        assert value not in text


__all__ = ["console_as", "make_ledger", "national_id"]


async def open_case(session: AsyncSession, partner_id: str, referral_ids: tuple[str, ...], fingerprint: str) -> str:
    """A referral-burst signal naming ``referral_ids``: the id of the partner's open case it went to."""
    case = await raise_signal(
        session,
        Signal(
            kind=SignalKind.referral_burst,
            partner_id=partner_id,
            referral_ids=referral_ids,
            evidence={"thresholds": {"per_day": 40}, "observed": {"per_day": 400}},
            fingerprint=fingerprint,
        ),
    )
    await session.flush()
    return case.id
