"""Typed shapes of what is sent to the API and what it answers, as plain dataclasses (no dependency).

Amounts are integers in fen (1 CNY = 100 fen) with the currency beside them; rates are basis points; times
are timezone-aware ``datetime`` objects. Values the API may extend over time (statuses, kinds) are typed as
``Literal`` aliases but read as the strings the API sends, so a newer API never breaks an older SDK; fields a
newer API adds are ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any, Generic, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

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


# --- requests ---------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True, kw_only=True)
class ClaimLine:
    """One line of your claim: what you believe a statement owes you for one reference and fee type (the
    total, signed, in fen). ``fee_type`` uses the statement lines' ``rule`` names."""

    external_ref: str
    fee_type: FeeType
    amount_fen: int
    currency: str = "CNY"


# --- responses --------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Component:
    kind: str
    name: str


@dataclass(frozen=True)
class Product:
    """A bundled product a program offers (e.g. ``BANK_WM_PLUS_EQUITY``)."""

    id: str
    code: str
    name: str
    components: list[Component]
    allowed_partner_kinds: list[PartnerKind]
    active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TierAmounts:
    retail: int
    hnw: int
    institutional: int


@dataclass(frozen=True)
class FundedBounty:
    min_assets_fen: int
    by_tier: TierAmounts


@dataclass(frozen=True)
class BundleFee:
    product_code: str
    flat_fen: int | None = None
    bps: int | None = None
    min_fen: int | None = None
    max_fen: int | None = None


@dataclass(frozen=True)
class RevenueShare:
    bps: int
    months: int


@dataclass(frozen=True)
class Caps:
    per_referral_fen: int | None = None
    per_partner_month_fen: int | None = None


@dataclass(frozen=True)
class FeeRules:
    funded_bounty: FundedBounty | None = None
    bundle_fees: list[BundleFee] = field(default_factory=list)
    revenue_share: RevenueShare | None = None
    caps: Caps = field(default_factory=Caps)


@dataclass(frozen=True)
class FeeSchedule:
    """The version of a program's fee rules in force."""

    id: str
    program_id: str
    version: int
    status: str
    effective_from: date
    effective_to: date | None
    currency: str
    rules: FeeRules
    in_use: bool
    activated_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Program:
    """One of your alliance programs: where referrals go (``program_id``), its products and fees."""

    id: str
    partner_id: str
    name: str
    channel: ProgramChannel
    attribution_window_days: int
    qualification_period_days: int
    hold_period_days: int
    clawback_period_days: int
    effective_from: date
    effective_to: date | None
    status: ProgramStatus
    products: list[Product]
    fee_schedule_in_force: FeeSchedule | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class BatchCounts:
    total: int
    processed: int
    eligible: int
    existing_client: int
    duplicate: int
    returned_existing: int
    error: int


@dataclass(frozen=True)
class Batch:
    """An uploaded batch and its progress."""

    id: str
    status: BatchStatus
    format: BatchFormat
    counts: BatchCounts
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    links: dict[str, str]

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")

    @property
    def progress(self) -> float:
        """Share of the lines processed, from 0.0 to 1.0."""
        return self.counts.processed / self.counts.total if self.counts.total else 1.0


@dataclass(frozen=True)
class LineError:
    field: str | None
    message: str


@dataclass(frozen=True)
class BatchLine:
    """What became of one line of a batch: its referral, or each field at fault."""

    line: int
    external_ref: str | None
    outcome: LineOutcome
    referral_id: str | None
    referral_status: ReferralStatus | None
    errors: list[LineError]


@dataclass(frozen=True)
class BatchReport:
    """A finished batch and the result of each of its lines, in line order.

    Line numbers are the file's own: a CSV header is line 1, so the first data row is line 2. For a batch
    uploaded from rows (sent as JSON Lines), line ``n`` is ``rows[n - 1]``.
    """

    batch: Batch
    results: list[BatchLine]

    def __iter__(self) -> Iterator[BatchLine]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def errors(self) -> list[BatchLine]:
        return [line for line in self.results if line.outcome == "error"]

    def by_outcome(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for line in self.results:
            counts[line.outcome] = counts.get(line.outcome, 0) + 1
        return counts


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class WebhookEndpointCreated(WebhookEndpoint):
    #: ``whsec_…``: shown once, at creation. Keep it secret; verify each delivery with it.
    secret: str


@dataclass(frozen=True)
class SecretRotated:
    endpoint_id: str
    #: The new secret, shown once. The previous one keeps signing (alongside) until ``previous_secret_expires_at``.
    secret: str
    previous_secret_expires_at: datetime | None


@dataclass(frozen=True)
class WebhookDelivery:
    """One message to one endpoint; ``id`` is its ``webhook-id`` header, the same on every attempt."""

    id: str
    endpoint_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class DeliveryAttempt:
    attempted_at: datetime
    status_code: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: int | None


@dataclass(frozen=True)
class WebhookDeliveryDetail(WebhookDelivery):
    payload: dict[str, Any]
    attempt_log: list[DeliveryAttempt]


@dataclass(frozen=True)
class Statement:
    """One month of your fees: the lines' total, a negative balance carried in, net, VAT and gross (fen).

    With ``vat_inclusive`` the lines already include VAT (``vat_fen`` is the VAT within ``net_fen``);
    otherwise VAT is added on top. A negative net has no VAT and is carried into your next statement.
    """

    id: str
    partner_id: str
    period: str
    period_end: date
    status: StatementStatus
    currency: str
    lines_total_fen: int
    carried_forward_fen: int
    net_fen: int
    vat_rate_bp: int
    vat_inclusive: bool
    vat_fen: int
    gross_fen: int
    line_count: int
    issued_at: datetime | None
    approved_at: datetime | None
    paid_at: datetime | None
    payment_ref: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StatementLine:
    """One fee line of a statement, with your reference and the arithmetic that produced it."""

    id: str
    external_ref: str | None
    referral_id: str | None
    rule: FeeType
    amount_fen: int
    currency: str
    status: AccrualStatus
    occurred_at: datetime
    reverses_id: str | None
    arithmetic: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Claim:
    id: str
    statement_id: str
    format: str
    line_count: int
    claimed_total_fen: int
    created_at: datetime


@dataclass(frozen=True)
class ClassTotals:
    items: int
    ours_fen: int
    theirs_fen: int
    difference_fen: int
    open: int


@dataclass(frozen=True)
class ReconciliationItem:
    """One (reference, fee type) of a statement: our total, your claim's, how they compare, what finance did.

    ``reason`` (``unknown`` items) says why the line is not yours: ``not_attributed``, ``expired``,
    ``duplicate``, ``existing_client``, ``ineligible``, ``not_yet_due``, ``on_another_statement``, ``not_earned``.
    """

    id: str
    statement_id: str
    claim_id: str
    partner_id: str
    external_ref: str
    fee_type: str
    match_class: MatchClass
    ours_fen: int | None
    theirs_fen: int | None
    difference_fen: int | None
    reason: str | None
    disputed: bool
    dispute_reason: str | None
    resolution: Resolution | None
    resolution_note: str | None
    adjustment_id: str | None
    resolved_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Reconciliation:
    """The matching of a statement's current claim: totals per class, and a page of its items (newest first;
    ``list_reconciliation_items`` walks them all)."""

    statement_id: str
    statement_status: StatementStatus
    claim: Claim | None
    totals: dict[str, ClassTotals]
    open_items: int
    data: list[ReconciliationItem]
    next_cursor: str | None


@dataclass(frozen=True)
class Dispute:
    statement_id: str
    statement_status: StatementStatus
    items: list[ReconciliationItem]


@dataclass(frozen=True)
class ReportPeriod:
    start: date
    end: date
    timezone: str
    basis: str


@dataclass(frozen=True)
class ReportFilters:
    partner_ids: list[str] = field(default_factory=list)
    partner_kinds: list[str] = field(default_factory=list)
    program_ids: list[str] = field(default_factory=list)
    product_codes: list[str] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReportGroup:
    """A report row's group: the dimensions of ``group_by`` are set, the others None."""

    partner_id: str | None = None
    partner_name: str | None = None
    partner_kind: str | None = None
    program_id: str | None = None
    program_name: str | None = None
    product_code: str | None = None
    product_name: str | None = None
    tier: str | None = None
    kind: str | None = None
    month: str | None = None


@dataclass(frozen=True)
class FunnelCounts:
    """Referrals received, the stages they reached (ever) and the outcome they are in now."""

    received: int
    eligible: int
    existing_client: int
    duplicate: int
    expired: int
    withdrawn: int
    rejected: int
    account_opened: int
    funded: int
    converted: int


@dataclass(frozen=True)
class FunnelRates:
    eligible: float | None
    account_opened: float | None
    funded: float | None
    converted: float | None


@dataclass(frozen=True)
class FunnelRow:
    group: ReportGroup
    counts: FunnelCounts
    stage_rates: FunnelRates
    overall_rates: FunnelRates


@dataclass(frozen=True)
class FunnelReport:
    """Your referrals received in the period (a cohort) and how far they got, per group."""

    period: ReportPeriod
    filters: ReportFilters
    group_by: list[str]
    currency: str
    generated_at: datetime
    rows: list[FunnelRow]
    total: FunnelRow


@dataclass(frozen=True)
class StageTiming:
    referrals: int
    median_days: float | None
    p90_days: float | None


@dataclass(frozen=True)
class TimingRow:
    group: ReportGroup
    account_opened: StageTiming
    funded: StageTiming
    converted: StageTiming


@dataclass(frozen=True)
class TimeToConvertReport:
    """Days from receiving a referral to its account opening, funding and conversion (median, 90th percentile)."""

    period: ReportPeriod
    filters: ReportFilters
    group_by: list[str]
    currency: str
    generated_at: datetime
    rows: list[TimingRow]
    total: TimingRow


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook: ``id`` is the ``webhook-id`` (deduplicate on it: a retry repeats it), ``type`` e.g.
    ``referral.status_changed``, ``data`` the event's fields (for referrals: ``referral_id``, ``external_ref``,
    ``program_id``, ``from_status``, ``to_status``, ``cause``, ``occurred_at``)."""

    id: str
    type: str
    timestamp: datetime | None
    data: dict[str, Any]
    signed_at: datetime


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: ``next_cursor`` fetches the next one (None on the last page)."""

    data: list[T]
    next_cursor: str | None


# --- conversion -------------------------------------------------------------------------------------------------


@cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    # The models' annotations name this module's aliases, whatever ``__module__`` the package gives them.
    return get_type_hints(cls, globalns=globals())


def from_json(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build ``cls`` from the API's JSON: nested models, lists, dates and times converted; unknown keys ignored."""
    hints = _hints(cls)  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not item.init or item.metadata.get("local"):
            continue
        if item.name in data:
            values[item.name] = _convert(hints[item.name], data[item.name])
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            values[item.name] = None  # a field an older API does not send
    return cls(**values)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [option for option in get_args(hint) if option is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is list:
        (item,) = get_args(hint)
        return [_convert(item, element) for element in value]
    if origin is dict:
        _, item = get_args(hint)
        return {key: _convert(item, element) for key, element in value.items()}
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint is date:
        return date.fromisoformat(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_json(hint, value)
    return value


def to_json(value: Any) -> Any:
    """A request model (or plain data) as JSON-ready data; None fields are left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: to_json(getattr(value, item.name))
            for item in dataclasses.fields(value)
            if getattr(value, item.name) is not None
        }
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes sent to the API must be timezone-aware")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value
