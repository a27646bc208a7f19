"""Every table model, for Alembic and the metadata: imported in one place so that migrations and the tests see the
whole schema (not to be confused with the existing-client registry, ``app.referrals.registry``)."""

from app.audit.models import AuditEvent
from app.auth.models import ClientSecret, OAuthClient, RevokedToken, SigningKey, UsedClientAssertion
from app.catalog.models import BundledProduct, FeeSchedule, Partner, Program, ProgramProduct
from app.conversions.models import ClientAccount, ConversionEvent
from app.core.idempotency import IdempotencyRecord
from app.core.models import metadata
from app.fees.models import FeeAccrual, FeeCapUsage, FeeReviewHold, Statement
from app.people.models import ConsoleSession, Person
from app.privacy.models import DataKey
from app.reconciliation.models import Claim, ClaimLine, ReconciliationItem
from app.referrals.batches.models import ReferralBatch, ReferralBatchChunk, ReferralBatchResult
from app.referrals.models import AttributionConflict, ExistingClient, Referral, ReferralEvent
from app.reports.models import (
    CohortSummary,
    DurationSeries,
    DurationSummary,
    OrganicAccountFact,
    OrganicSummary,
    PartnerMonthSummary,
    ReferralFact,
    ReportChange,
)
from app.risk.models import RiskCase, RiskCaseEvent, RiskCaseReferral, RiskSignal
from app.risk.watermarks import SignalWatermark
from app.sandbox.models import SandboxClock
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "AttributionConflict",
    "AuditEvent",
    "BundledProduct",
    "Claim",
    "ClaimLine",
    "ClientAccount",
    "ClientSecret",
    "CohortSummary",
    "ConsoleSession",
    "ConversionEvent",
    "DataKey",
    "DurationSeries",
    "DurationSummary",
    "ExistingClient",
    "FeeAccrual",
    "FeeCapUsage",
    "FeeReviewHold",
    "FeeSchedule",
    "IdempotencyRecord",
    "OAuthClient",
    "OrganicAccountFact",
    "OrganicSummary",
    "Partner",
    "PartnerMonthSummary",
    "Person",
    "Program",
    "ProgramProduct",
    "ReconciliationItem",
    "Referral",
    "ReferralBatch",
    "ReferralBatchChunk",
    "ReferralBatchResult",
    "ReferralEvent",
    "ReferralFact",
    "ReportChange",
    "RevokedToken",
    "RiskCase",
    "RiskCaseEvent",
    "RiskCaseReferral",
    "RiskSignal",
    "SandboxClock",
    "SignalWatermark",
    "SigningKey",
    "Statement",
    "UsedClientAssertion",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "metadata",
]
