"""The simulated back office (DESIGN.md, "Sandbox"): a partner reports events about its own sandbox referral's
client, and they go through the conversion feed exactly as the firm's back office would send them
(``app.conversions.service.ingest_events``: lifecycle, tiers, fees, clawbacks, webhooks).

The back office names a client by its account reference and, on ``account_opened``, by its identity: the
simulation gives each referral one account (``sbx-<referral id>``) and opens it with the referral's own national
ID or credit code, read from its ciphertext here and handed to the feed, which hashes it as it hashes any. Events
are dated at the clock's now: in a partner's sandbox request, the partner's test clock.

A partner drives only its own referral. It may open the account of an eligible referral only (opening one it does
not hold would credit whoever holds the person), and reports other events only about an account it opened.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.service import Actor
from app.catalog.service import program_products
from app.conversions import service as conversions
from app.conversions.models import BUNDLE_EVENTS, MONEY_EVENTS, ConversionEvent, EventType
from app.core import clock
from app.core.models import new_id
from app.core.problems import Conflict, Unprocessable
from app.core.tenancy import Tenant
from app.fees.models import FeeAccrual
from app.fees.statements import lines_of_events
from app.privacy.crypto import BlindIndex, DataCipher
from app.referrals import service as referrals
from app.referrals.models import Referral, ReferralKind, ReferralStatus
from app.sandbox.simulation_schemas import SimulationIn

SOURCE_PREFIX = "sbx-"


class SimulationNotPossible(Conflict):
    slug, title = "simulation-not-possible", "The back office cannot report this now"


@dataclass(frozen=True)
class Simulated:
    referral: Referral
    events: list[ConversionEvent]
    fee_lines: list[FeeAccrual]


def account_of(referral: Referral) -> str:
    """The client account the simulated back office keeps for the referral's client."""
    return referral.client_ref or f"{SOURCE_PREFIX}{referral.id}"


async def simulate(
    session: AsyncSession,
    tenant: Tenant,
    actor: Actor,
    referral_id: str,
    request: SimulationIn,
    cipher: DataCipher,
    index: BlindIndex,
) -> Simulated:
    """Report ``request`` about the referral's client through the conversion feed, now; what it did."""
    referral = await referrals.get_referral(session, tenant, referral_id)
    await _check(session, referral, request)
    now = clock.now()
    source_event_id = f"{SOURCE_PREFIX}{new_id('sim')}"
    client_ref = account_of(referral)
    event: dict[str, object] = {
        "source_event_id": source_event_id,
        "type": request.type.value,
        "occurred_at": now,
        "client_ref": client_ref,
    }
    if request.type is EventType.account_opened:
        event["credit_code" if referral.kind is ReferralKind.enterprise else "national_id"] = _identifier(
            referral, cipher
        )
    if request.type in MONEY_EVENTS:
        event["amount"], event["currency"] = request.amount, "CNY"
    if request.type in BUNDLE_EVENTS:
        event["product_code"] = request.product_code
    [result] = await conversions.ingest_events(session, index, [event], now)
    if result.result == "rejected":
        raise SimulationNotPossible(f"The feed refused the event: {result.reason}")
    # The account is the referral's own: its events are the partner's, attributed or not (opened too late).
    events = await conversions.reported_events(session, client_ref, [source_event_id])
    fee_lines = await lines_of_events(session, tenant, [applied.id for applied in events])
    await session.refresh(referral)
    await audit.record(
        session,
        actor,
        "sandbox.event_simulated",
        object_type="referral",
        object_id=referral.id,
        event_type=request.type.value,
        amount_fen=request.amount,
        product_code=request.product_code,
        source_event_id=source_event_id,
        referral_status=referral.status.value,
        fee_lines=len(fee_lines),
    )
    return Simulated(referral, events, fee_lines)


async def _check(session: AsyncSession, referral: Referral, request: SimulationIn) -> None:
    if request.type is EventType.account_opened:
        if referral.client_ref is not None:
            raise SimulationNotPossible("The referral's account is already open.")
        if referral.status is not ReferralStatus.eligible:
            raise SimulationNotPossible(
                f"Only an eligible referral's account can be opened; this one is {referral.status.value}."
            )
        if referral.identifier_ct is None:
            raise SimulationNotPossible("The referral's personal data was erased: no account can be opened for it.")
    elif referral.client_ref is None:
        raise SimulationNotPossible(
            "The referral holds no open account: simulate account_opened first (while it is eligible)."
        )
    if request.type in BUNDLE_EVENTS:
        offered = (await program_products(session, [referral.program_id]))[referral.program_id]
        codes = sorted(product.code for product in offered)
        if request.product_code not in codes:
            raise Unprocessable(
                f"product_code must be a bundled product of the referral's program: {', '.join(codes) or 'none'}.",
                field="product_code",
            )


def _identifier(referral: Referral, cipher: DataCipher) -> str:
    assert referral.identifier_ct is not None
    return cipher.decrypt(referral.identifier_ct, referrals.IDENTIFIER_COLUMN)
