"""API shapes of referrals. Validation messages never repeat the submitted value (it may be personal data)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from app.core import clock
from app.core.identifiers import to_ascii_width
from app.privacy.identity import checked_credit_code, checked_national_id
from app.referrals.models import ConflictStatus, ReferralKind, ReferralStatus

MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f]")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
CONSENT_CLOCK_SKEW = timedelta(minutes=5)


def normalise_mobile(value: str) -> str:
    digits = re.sub(r"[\s\-]", "", to_ascii_width(value))
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix) :]
    if not MOBILE.match(digits):
        raise ValueError("not a mainland China mobile number (11 digits starting 13-19)")
    return digits


def normalise_name(value: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise ValueError("must not be blank")
    if CONTROL_CHARACTER.search(name):
        raise ValueError("must not contain control characters")
    return name


class AssetsBand(StrEnum):
    under_1m = "under_1m"
    from_1m_to_5m = "1m_to_5m"
    over_5m = "5m_plus"


class ConsentChannel(StrEnum):
    mobile_app = "mobile_app"
    online_banking = "online_banking"
    branch_paper = "branch_paper"
    branch_tablet = "branch_tablet"
    call_center = "call_center"
    hr_portal = "hr_portal"


class Consent(BaseModel):
    """Evidence of the client's separate consent to share their data with the firm (PIPL art. 23)."""

    model_config = ConfigDict(extra="forbid")

    captured_at: AwareDatetime
    channel: ConsentChannel
    notice_version: str = Field(min_length=1, max_length=40)
    notice_sha256: str = Field(description="SHA-256 (hex) of the notice text the client saw.")
    recipient_name: str = Field(min_length=1, max_length=200, description="The firm's name as shown to the client.")
    purpose: str = Field(min_length=1, max_length=500)
    data_categories: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(min_length=1, max_length=20)
    retention_days: StrictInt = Field(ge=1, le=3650)
    separate_consent: StrictBool = Field(description="The consent was given separately, not bundled (must be true).")
    evidence_ref: str = Field(min_length=1, max_length=200, description="Reference or hash of the signed record.")

    @field_validator("notice_sha256")
    @classmethod
    def _sha256(cls, value: str) -> str:
        value = value.lower()
        if not SHA256_HEX.match(value):
            raise ValueError("must be 64 hexadecimal characters")
        return value

    @field_validator("separate_consent")
    @classmethod
    def _separate(cls, value: bool) -> bool:
        if not value:
            raise ValueError("a referral needs the client's separate consent")
        return value

    @field_validator("captured_at")
    @classmethod
    def _not_in_future(cls, value: datetime) -> datetime:
        if value > clock.now() + CONSENT_CLOCK_SKEW:
            raise ValueError("must not be in the future")
        return value


class IndividualSubject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60)
    mobile: str = Field(min_length=11, max_length=20)
    national_id: str = Field(min_length=18, max_length=18, description="Resident identity card number (18).")
    declared_assets_band: AssetsBand | None = None
    employer: str | None = Field(default=None, max_length=200)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return normalise_name(value)

    @field_validator("mobile")
    @classmethod
    def _mobile(cls, value: str) -> str:
        return normalise_mobile(value)

    @field_validator("national_id")
    @classmethod
    def _national_id(cls, value: str) -> str:
        return checked_national_id(value, "not a valid resident ID number (check digit or birth date)")


class EnterpriseSubject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    credit_code: str = Field(min_length=18, max_length=18, description="Unified social credit code.")
    contact_mobile: str | None = Field(default=None, min_length=11, max_length=20)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return normalise_name(value)

    @field_validator("contact_mobile")
    @classmethod
    def _mobile(cls, value: str | None) -> str | None:
        return normalise_mobile(value) if value is not None else None

    @field_validator("credit_code")
    @classmethod
    def _credit_code(cls, value: str) -> str:
        return checked_credit_code(value, "not a valid unified social credit code (check character)")


class ReferralCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: str = Field(min_length=1, max_length=40)
    external_ref: str = Field(
        min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$", description="Your own reference, unique for you."
    )
    kind: ReferralKind
    subject: IndividualSubject | EnterpriseSubject
    consent: Consent | None = Field(default=None, description="Required for individuals (vip, employee).")

    @model_validator(mode="before")
    @classmethod
    def _subject_by_kind(cls, data: object) -> object:
        # Pick the subject shape from `kind`, so errors name the fields of the right shape.
        if isinstance(data, dict) and isinstance(data.get("subject"), dict):
            shape = EnterpriseSubject if data.get("kind") == ReferralKind.enterprise else IndividualSubject
            data = {**data, "subject": shape.model_validate(data["subject"])}
        return data

    @model_validator(mode="after")
    def _consent_for_individuals(self) -> Self:
        individual = self.kind is not ReferralKind.enterprise
        if individual and not isinstance(self.subject, IndividualSubject):
            raise ValueError("vip and employee referrals need an individual subject")
        if not individual and not isinstance(self.subject, EnterpriseSubject):
            raise ValueError("enterprise referrals need an enterprise subject")
        if individual and self.consent is None:
            raise ValueError("individual referrals need consent evidence (PIPL art. 23)")
        return self


class MaskedSubject(BaseModel):
    name: str | None
    mobile: str | None
    identifier: str | None = Field(description="ID number or credit code, first 4 and last 4 characters.")
    erased: bool = False


class ReferralOut(BaseModel):
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


class ReferralEventOut(BaseModel):
    id: str
    from_status: ReferralStatus | None
    to_status: ReferralStatus
    cause: str
    details: dict[str, object]
    created_at: datetime


class Withdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["consent_revoked", "client_request", "submitted_in_error", "other"]
    note: str | None = Field(default=None, max_length=500)


class UnmaskedSubject(BaseModel):
    name: str | None
    mobile: str | None
    identifier: str | None


# --- staff ------------------------------------------------------------------------------------------------------


class PartnerRef(BaseModel):
    id: str
    name: str = Field(description="The partner's display name.")


class ProgramRef(BaseModel):
    id: str
    name: str


class StaffReferralOut(ReferralOut):
    """One referral as staff see it: its partner and program by name, and its timeline. The subject stays masked;
    reading it in clear is `POST /v1/admin/referrals/{id}/unmask` (audited)."""

    partner: PartnerRef
    program: ProgramRef
    client_ref: str | None = Field(description="The client account it holds (the back office's reference).")
    timeline: list[ReferralEventOut] = Field(description="Every transition, oldest first, with its time and cause.")


class ConflictSide(BaseModel):
    """One of the two referrals of a conflict."""

    referral_id: str
    external_ref: str = Field(description="The partner's own reference for the referral.")
    status: ReferralStatus = Field(description="The referral's status now.")
    partner: PartnerRef
    program: ProgramRef
    received_at: datetime = Field(description="When the partner submitted it.")


class ConflictOut(BaseModel):
    id: str
    holding_referral_id: str
    duplicate_referral_id: str
    holding: ConflictSide = Field(description="The referral that held the person when the conflict arose.")
    duplicate: ConflictSide = Field(description="The later referral, recorded as `duplicate`.")
    status: ConflictStatus
    resolution: str | None
    reason: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime = Field(description="When the conflict arose: the duplicate's attribution.")


class ConflictResolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: Literal["keep_holder", "award_duplicate"] = Field(
        description="`award_duplicate` moves the attribution to the later referral, at any stage of the funnel."
    )
    reason: str = Field(min_length=3, max_length=500)


class AttributionAward(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500, description="Why; kept in the audit log.")


class LedgerChangeOut(BaseModel):
    lines: int
    net_fen: int
    currency: Literal["CNY"] = "CNY"


class AttributionMoveOut(BaseModel):
    """The outcome of an override: the new holder, and what moved with the attribution."""

    moved: bool = Field(description="False when the referral already held the attribution: nothing changed.")
    move_id: str | None
    referral: StaffReferralOut = Field(description="The referral that holds the attribution now.")
    previous_holder_id: str | None
    reversed: LedgerChangeOut = Field(description="The `attribution_moved` lines reversing the old holder's fees.")
    accrued: LedgerChangeOut = Field(description="The new holder's lines, accrued from the same events.")
