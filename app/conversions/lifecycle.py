"""The referral lifecycle driven by back-office events (DESIGN.md, "Referral funnel"), as pure state changes on
loaded rows (plain rows on the feed's path, table objects elsewhere): the service loads in bulk, this decides, the
service writes the accounts in bulk and hands the referrals' status changes to
``app.referrals.transitions.transition``, which checks and writes them.

``account_opened`` links the account to the identity's eligible referral inside its window (→ account_opened);
the first funding fixes the tier (→ funded); a tier rise inside the qualification period is recorded; buying a
bundled product of the referral's program converts it. Events of an account not yet opened wait (deferred).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.conversions.models import AccountStatus, ClientAccount, ConversionEvent, EventStatus, EventType, Tier
from app.conversions.rows import AccountRow, EventRow
from app.referrals.models import Referral, ReferralRow, ReferralStatus
from app.referrals.transitions import StatusChange

# The lifecycle reads and changes these attributes only: the feed gives it plain rows, tests may give table objects.
Account = ClientAccount | AccountRow
Event = ConversionEvent | EventRow
AnyReferral = Referral | ReferralRow

HNW_FROM_FEN = 1_000_000 * 100
INSTITUTIONAL_FROM_FEN = 5_000_000 * 100
_TIER_RANK = {Tier.retail: 0, Tier.hnw: 1, Tier.institutional: 2}


def tier_of(assets_fen: int, enterprise: bool) -> Tier:
    """Retail below 1,000,000 CNY, HNW up to 5,000,000, institutional from 5,000,000 or any enterprise."""
    if enterprise or assets_fen >= INSTITUTIONAL_FROM_FEN:
        return Tier.institutional
    if assets_fen >= HNW_FROM_FEN:
        return Tier.hnw
    return Tier.retail


@dataclass(frozen=True)
class ProgramTerms:
    qualification_period_days: int
    product_codes: frozenset[str]


@dataclass
class Lifecycle:
    """Applies events to accounts already loaded (and locked) by the caller, and decides the status changes of
    the referrals it was given (loaded and locked by ``app.referrals.service.lock_for_accounts``): those are
    ``changes``, for ``app.referrals.transitions.transition`` to write; the referral rows are not touched."""

    accounts: Mapping[str, Account]
    referrals_by_identity: Mapping[bytes, AnyReferral]
    referrals_by_id: Mapping[str, AnyReferral]
    terms: dict[str, ProgramTerms]
    changes: list[StatusChange] = field(default_factory=list)
    _statuses: dict[str, ReferralStatus] = field(default_factory=dict)

    def status_of(self, referral: AnyReferral) -> ReferralStatus:
        """The referral's status after the changes decided so far."""
        return self._statuses.get(referral.id, referral.status)

    def apply(self, event: Event, now: datetime) -> None:
        account = self.accounts[event.client_ref]
        if event.type is not EventType.account_opened and account.status is AccountStatus.unopened:
            event.status = EventStatus.deferred
            return
        handler = getattr(self, f"_{event.type.value}")
        effects: dict[str, Any] = handler(event, account) or {}
        event.status = EventStatus.applied
        event.applied_at = now
        event.referral_id = account.referral_id
        event.partner_id = account.partner_id
        event.organic = account.referral_id is None
        event.effects = effects
        account.updated_at = now

    def _move(
        self,
        referral: AnyReferral,
        to_status: ReferralStatus,
        event: Event,
        *,
        client_ref: str | None = None,
        **details: Any,
    ) -> None:
        self._note(referral, to_status, event.type.value, event, client_ref=client_ref, **details)
        self._statuses[referral.id] = to_status

    def _note(
        self,
        referral: AnyReferral,
        to_status: ReferralStatus,
        cause: str,
        event: Event,
        *,
        client_ref: str | None = None,
        **details: Any,
    ) -> None:
        self.changes.append(
            StatusChange(
                referral.id,
                referral.partner_id,
                self.status_of(referral),
                to_status,
                cause,
                {"source_event_id": event.source_event_id, **details},
                at=event.occurred_at,
                client_ref=client_ref,
            )
        )

    def _account_opened(self, event: Event, account: Account) -> dict[str, Any]:
        if account.status is not AccountStatus.unopened:
            return {"ignored": "account already opened"}
        account.status = AccountStatus.open
        account.opened_at = event.occurred_at
        account.identity_hash = event.identity_hash
        account.enterprise = event.enterprise
        referral = self.referrals_by_identity.get(event.identity_hash or b"")
        if referral is None or self.status_of(referral) is not ReferralStatus.eligible:
            return {"attributed": False}
        if event.occurred_at < referral.created_at:
            self._move(referral, ReferralStatus.existing_client, event, reason="account opened before the referral")
            return {"attributed": False, "reason": "opened before the referral"}
        if event.occurred_at > referral.window_ends_at:
            self._move(referral, ReferralStatus.expired, event, reason="account opened after the window")
            return {"attributed": False, "reason": "outside the attribution window"}
        account.referral_id = referral.id
        account.partner_id = referral.partner_id
        self._move(referral, ReferralStatus.account_opened, event, client_ref=account.client_ref)
        return {"attributed": True}

    def _account_funded(self, event: Event, account: Account) -> dict[str, Any]:
        account.assets_fen += event.amount_fen or 0
        effects: dict[str, Any] = {"assets_fen": account.assets_fen}
        if account.funded_at is None:
            account.funded_at = event.occurred_at
            account.tier = tier_of(account.assets_fen, account.enterprise)
            effects["tier"] = account.tier.value
            referral = self._referral_of(account)
            if referral is not None and self.status_of(referral) is ReferralStatus.account_opened:
                self._move(referral, ReferralStatus.funded, event, tier=account.tier.value)
        else:
            effects.update(self._maybe_raise_tier(event, account))
            effects["tier"] = account.tier.value if account.tier else None
        return effects

    def _assets_snapshot(self, event: Event, account: Account) -> dict[str, Any]:
        account.assets_fen = event.amount_fen or 0
        effects: dict[str, Any] = {"assets_fen": account.assets_fen}
        if account.funded_at is not None:
            effects.update(self._maybe_raise_tier(event, account))
            effects["tier"] = account.tier.value if account.tier else None
        return effects

    def _maybe_raise_tier(self, event: Event, account: Account) -> dict[str, Any]:
        assert account.tier is not None and account.opened_at is not None
        new_tier = tier_of(account.assets_fen, account.enterprise)
        if _TIER_RANK[new_tier] <= _TIER_RANK[account.tier]:
            return {}
        referral = self._referral_of(account)
        terms = self.terms.get(referral.program_id) if referral else None
        qualification_days = terms.qualification_period_days if terms else 0
        if event.occurred_at > account.opened_at + timedelta(days=qualification_days):
            return {"tier_rise_outside_qualification": [account.tier.value, new_tier.value]}
        old = account.tier
        account.tier = new_tier
        if referral is not None:
            status = self.status_of(referral)
            self._note(referral, status, "tier_raised", event, from_tier=old.value, to_tier=new_tier.value)
        return {"tier_raised": [old.value, new_tier.value]}

    def _bundle_purchased(self, event: Event, account: Account) -> dict[str, Any]:
        referral = self._referral_of(account)
        if referral is None:
            return {}
        terms = self.terms.get(referral.program_id)
        in_program = terms is not None and event.product_code in terms.product_codes
        if in_program and self.status_of(referral) in (ReferralStatus.account_opened, ReferralStatus.funded):
            self._move(referral, ReferralStatus.converted, event, product_code=event.product_code)
            return {"converted": True}
        return {"product_in_program": in_program}

    def _bundle_cancelled(self, event: Event, account: Account) -> dict[str, Any]:
        return {}

    def _revenue_recorded(self, event: Event, account: Account) -> dict[str, Any]:
        return {}

    def _account_closed(self, event: Event, account: Account) -> dict[str, Any]:
        account.status = AccountStatus.closed
        account.closed_at = event.occurred_at
        return {}

    def _referral_of(self, account: Account) -> AnyReferral | None:
        return self.referrals_by_id.get(account.referral_id) if account.referral_id else None


def stages_reached(
    events: list[ConversionEvent], product_codes: frozenset[str]
) -> list[tuple[ReferralStatus, ConversionEvent]]:
    """The stages a referral reaches when an attribution move gives it an account: the account's applied
    ``events`` (in the order they were applied) replayed under ``Lifecycle``'s rules, with ``product_codes`` its
    program's bundles: opened, funded by the first funding, converted by a bundle of its program."""
    stages: list[tuple[ReferralStatus, ConversionEvent]] = []
    status: ReferralStatus | None = None
    for event in events:
        if event.status is not EventStatus.applied:
            continue
        to_status: ReferralStatus | None = None
        if status is None:
            to_status = ReferralStatus.account_opened if event.type is EventType.account_opened else None
        elif event.type is EventType.account_funded and status is ReferralStatus.account_opened:
            to_status = ReferralStatus.funded
        elif (
            event.type is EventType.bundle_purchased
            and event.product_code in product_codes
            and status in (ReferralStatus.account_opened, ReferralStatus.funded)
        ):
            to_status = ReferralStatus.converted
        if to_status is not None:
            status = to_status
            stages.append((to_status, event))
    return stages
