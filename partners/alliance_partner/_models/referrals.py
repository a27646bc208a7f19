"""Referrals: what you submit (the client, their consent) and what the API shows back."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alliance_partner._models.common import AssetsBand, ConsentChannel, ReferralKind, ReferralStatus


@dataclass(frozen=True, kw_only=True)
class Consent:
    """Evidence of the client's separate consent to share their data with the firm (PIPL art. 23).

    Keep the signed record itself on your side for the whole ``retention_days`` (and as your regulator asks):
    ``evidence_ref`` names it, ``notice_sha256`` proves which notice text the client saw.
    """

    captured_at: datetime
    channel: ConsentChannel
    notice_version: str
    notice_sha256: str
    recipient_name: str
    purpose: str
    data_categories: list[str]
    retention_days: int
    evidence_ref: str
    separate_consent: bool = True

    def __post_init__(self) -> None:
        if self.captured_at.tzinfo is None:
            raise ValueError("captured_at must be timezone-aware (e.g. datetime.now(timezone.utc))")

    @staticmethod
    def hash_notice(text: str | bytes) -> str:
        """``notice_sha256`` of the notice text exactly as shown to the client (UTF-8)."""
        return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


@dataclass(frozen=True, kw_only=True)
class IndividualSubject:
    """A person (``vip`` and ``employee`` referrals). ``national_id`` is the 18-character resident ID number."""

    name: str
    mobile: str
    national_id: str
    declared_assets_band: AssetsBand | None = None
    employer: str | None = None


@dataclass(frozen=True, kw_only=True)
class EnterpriseSubject:
    """A company (``enterprise`` referrals), by its unified social credit code."""

    name: str
    credit_code: str
    contact_mobile: str | None = None


@dataclass(frozen=True, kw_only=True)
class ReferralCreate:
    """The body of ``POST /v1/referrals`` (and of each JSON Lines batch line).

    ``external_ref`` is your own reference for the client, unique among your referrals: sending the same
    person again returns your existing referral; another person under a used reference is a 409.
    """

    program_id: str
    external_ref: str
    kind: ReferralKind
    subject: IndividualSubject | EnterpriseSubject
    consent: Consent | None = None


@dataclass(frozen=True)
class MaskedSubject:
    name: str | None
    mobile: str | None
    identifier: str | None
    erased: bool = False


@dataclass(frozen=True)
class Referral:
    """A referral as the API shows it to its partner: personal data masked, erased after a withdrawal."""

    id: str
    program_id: str
    external_ref: str
    kind: ReferralKind
    status: ReferralStatus
    subject: MaskedSubject
    age_band: str | None
    declared_assets_band: str | None
    window_ends_at: datetime
    outcome_at: datetime | None
    created_at: datetime
    updated_at: datetime
    #: Set by ``create_referral`` only: True when the call created the referral (201), False when you had
    #: already referred this person and got your existing referral back (200).
    is_new: bool | None = field(default=None, metadata={"local": True})


@dataclass(frozen=True)
class ReferralEvent:
    """One step of a referral's timeline."""

    id: str
    from_status: ReferralStatus | None
    to_status: ReferralStatus
    cause: str
    details: dict[str, Any]
    created_at: datetime
