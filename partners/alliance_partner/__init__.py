"""alliance_partner: the Python SDK for partners of the Alliance referral platform.

```python
from alliance_partner import Client, ReferralCreate, IndividualSubject, Consent

with Client(base_url="https://alliance.example", client_id="cli_...", client_secret="acs_...") as alliance:
    for program in alliance.list_programs():
        print(program.id, program.name)
```

See partners/README.md for the integration guide.
"""

from contextlib import suppress as __suppress

from alliance_partner._async_client import AsyncClient
from alliance_partner._auth import AuthMethod, load_private_key, public_jwks
from alliance_partner._base import OPERATIONS
from alliance_partner._client import Client
from alliance_partner._exceptions import (
    AllianceError,
    APIError,
    AuthenticationError,
    BadRequestError,
    BatchError,
    BatchTimeoutError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TransportError,
    UnauthorizedError,
    UnprocessableEntityError,
    UnsupportedMediaTypeError,
    WebhookVerificationError,
)
from alliance_partner._models import (
    Batch,
    BatchCounts,
    BatchLine,
    BatchReport,
    BundleFee,
    Caps,
    Claim,
    ClaimLine,
    ClassTotals,
    ClockAdvance,
    ClockJob,
    ClosedMonth,
    Component,
    Consent,
    DeliveryAttempt,
    Dispute,
    EnterpriseSubject,
    FeeRules,
    FeeSchedule,
    FundedBounty,
    FunnelCounts,
    FunnelRates,
    FunnelReport,
    FunnelRow,
    IndividualSubject,
    LineError,
    MaskedSubject,
    Page,
    Product,
    Program,
    Reconciliation,
    ReconciliationItem,
    Referral,
    ReferralCreate,
    ReferralEvent,
    ReportGroup,
    ReportPeriod,
    RevenueShare,
    SandboxClock,
    SecretRotated,
    SimulatedEvent,
    Simulation,
    StageTiming,
    Statement,
    StatementLine,
    TierAmounts,
    TimeToConvertReport,
    TimingRow,
    WebhookDelivery,
    WebhookDeliveryDetail,
    WebhookEndpoint,
    WebhookEndpointCreated,
    WebhookEvent,
)
from alliance_partner._pagination import AsyncPager, SyncPager
from alliance_partner._retry import RetryPolicy
from alliance_partner._sandbox import AsyncSandbox, Sandbox
from alliance_partner._uploads import rows_to_csv
from alliance_partner._version import __version__
from alliance_partner._webhooks import sign_webhook, verify_webhook

__all__ = [
    "OPERATIONS",
    "APIError",
    "AllianceError",
    "AsyncClient",
    "AsyncPager",
    "AsyncSandbox",
    "AuthMethod",
    "AuthenticationError",
    "BadRequestError",
    "Batch",
    "BatchCounts",
    "BatchError",
    "BatchLine",
    "BatchReport",
    "BatchTimeoutError",
    "BundleFee",
    "Caps",
    "Claim",
    "ClaimLine",
    "ClassTotals",
    "Client",
    "ClockAdvance",
    "ClockJob",
    "ClosedMonth",
    "Component",
    "ConflictError",
    "Consent",
    "DeliveryAttempt",
    "Dispute",
    "EnterpriseSubject",
    "FeeRules",
    "FeeSchedule",
    "FundedBounty",
    "FunnelCounts",
    "FunnelRates",
    "FunnelReport",
    "FunnelRow",
    "IndividualSubject",
    "LineError",
    "MaskedSubject",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Product",
    "Program",
    "RateLimitError",
    "Reconciliation",
    "ReconciliationItem",
    "Referral",
    "ReferralCreate",
    "ReferralEvent",
    "ReportGroup",
    "ReportPeriod",
    "RetryPolicy",
    "RevenueShare",
    "Sandbox",
    "SandboxClock",
    "SecretRotated",
    "ServerError",
    "SimulatedEvent",
    "Simulation",
    "StageTiming",
    "Statement",
    "StatementLine",
    "SyncPager",
    "TierAmounts",
    "TimeToConvertReport",
    "TimingRow",
    "TransportError",
    "UnauthorizedError",
    "UnprocessableEntityError",
    "UnsupportedMediaTypeError",
    "WebhookDelivery",
    "WebhookDeliveryDetail",
    "WebhookEndpoint",
    "WebhookEndpointCreated",
    "WebhookEvent",
    "WebhookVerificationError",
    "__version__",
    "load_private_key",
    "public_jwks",
    "rows_to_csv",
    "sign_webhook",
    "verify_webhook",
]

# Like httpx: the public names read as ``alliance_partner.X`` in reprs and tracebacks, not as private modules.
__locals = locals()
for __name in __all__:
    if not __name.startswith("__") and hasattr(__locals[__name], "__module__"):
        with __suppress(AttributeError, TypeError):
            __locals[__name].__module__ = "alliance_partner"
