"""The API's vocabularies (read as the strings it sends) and the page of a list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

ReferralKind = Literal["vip", "employee", "enterprise"]
ReferralStatus = Literal[
    "received",
    "eligible",
    "account_opened",
    "funded",
    "converted",
    "existing_client",
    "duplicate",
    "expired",
    "withdrawn",
    "rejected",
]
ConsentChannel = Literal["mobile_app", "online_banking", "branch_paper", "branch_tablet", "call_center", "hr_portal"]
AssetsBand = Literal["under_1m", "1m_to_5m", "5m_plus"]
WithdrawalReason = Literal["consent_revoked", "client_request", "submitted_in_error", "other"]
BatchFormat = Literal["csv", "jsonl"]
BatchStatus = Literal["pending", "processing", "completed", "failed"]
LineOutcome = Literal["eligible", "existing_client", "duplicate", "returned_existing", "error"]
WebhookEventType = Literal[
    "referral.status_changed", "referral.expired", "statement.issued", "reconciliation.completed"
]
DeliveryStatus = Literal["pending", "succeeded", "failed"]
ProgramChannel = Literal["vip_referral", "insurance_bundle", "employee_plan", "enterprise_services"]
ProgramStatus = Literal["active", "paused", "closed"]
PartnerKind = Literal["bank", "insurer", "corporate"]
ReportDimension = Literal["program", "product", "tier", "kind", "month"]
StatementStatus = Literal["draft", "issued", "disputed", "approved", "paid"]
FeeType = Literal[
    "funded_bounty", "tier_top_up", "bundle_fee", "revenue_share", "cap", "clawback", "adjustment", "attribution_moved"
]
AccrualStatus = Literal["pending", "payable", "statemented", "paid", "reversed"]
MatchClass = Literal["matched", "amount_mismatch", "unclaimed", "unknown", "duplicate_claim"]
Resolution = Literal["accept_ours", "accept_theirs", "write_off"]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: ``next_cursor`` fetches the next one (None on the last page)."""

    data: list[T]
    next_cursor: str | None
