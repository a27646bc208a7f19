"""Settings: one class, read from the environment (prefix ``ALLIANCE_``) and an optional ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "sandbox", "test", "production"]

# Well-known values that must never protect real data; development uses them so that a newcomer needs nothing.
DEVELOPMENT_MASTER_KEY = "ZGV2ZWxvcG1lbnQtbWFzdGVyLWtleS0wMDAwMDAwMDA="
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "placeholder", DEVELOPMENT_MASTER_KEY})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALLIANCE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = "development"

    # Database: a server given by URL, or (no URL) a private embedded PostgreSQL in `embedded_pgdata`.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ALLIANCE_DATABASE_URL", "DATABASE_URL")
    )
    embedded_pgdata: Path = Path(".alliance/pgdata")
    # Connections opened beyond the pool are closed again as soon as they are returned: under a steady load that
    # is a connect (and asyncpg's type introspection) per request. The pool is sized for the load instead.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout_s: float = Field(default=10.0, gt=0)
    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)

    # Key material. The master key (32 bytes, base64) wraps every other key the service stores.
    master_key: SecretStr | None = None

    # OAuth
    access_token_ttl_s: int = Field(default=600, ge=60, le=3600)
    clock_skew_s: int = Field(default=30, ge=0, le=60)
    retired_key_publish_s: int = Field(default=86_400, ge=3600)
    secret_rotation_grace_s: int = Field(default=86_400, ge=0)
    jwks_uri_cache_s: int = Field(default=300, ge=0)
    auth_failures_per_client: int = Field(default=10, ge=1)
    auth_failures_per_address: int = Field(default=50, ge=1)
    auth_failure_window_s: int = Field(default=300, ge=1)
    rate_limit_per_second: int = Field(default=50, ge=1)
    # The rate limit holds across every API process (a bucket in the database, leased in chunks); off, each
    # process counts for itself (N processes allow N times the rate).
    shared_rate_limits: bool = True

    # Outbound targets (webhook URLs, partners' jwks_uri): private and loopback addresses (and plain http) are
    # refused in production unless allowed here (see app.core.outbound_urls).
    webhook_allow_private_targets: bool | None = None
    # Webhooks: a send ends after `webhook_timeout_s` in all; a worker keeps up to `webhook_concurrency` sends in
    # flight, at most `webhook_per_endpoint_concurrency` to one endpoint (one to an endpoint that is failing).
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_lease_s: int = Field(default=60, ge=1)
    webhook_concurrency: int = Field(default=50, ge=2, le=1000)
    webhook_per_endpoint_concurrency: int = Field(default=4, ge=1, le=100)

    # Personal data of unconverted referrals (expired, duplicate, existing client, rejected) is erased this long
    # after the outcome (PIPL art. 47).
    referral_retention_days: int = Field(default=30, ge=1)

    # Risk signals (DESIGN.md, "Risk"): the worker looks at what arrived since its last look (``app.risk.signals``)
    # and judges it over the last `risk_lookback_days`; a figure at or beyond its threshold opens a case.
    risk_lookback_days: int = Field(default=90, ge=1, le=730)
    # One mobile number on this many identities (within a partner or across partners).
    risk_shared_mobile_identities: int = Field(default=3, ge=2)
    # A partner's referrals in the last `risk_burst_window_hours`: at least `risk_burst_min_referrals` and more than
    # `risk_burst_factor` times its busiest such window of the previous `risk_burst_baseline_days` (its own normal).
    risk_burst_window_hours: int = Field(default=24, ge=1, le=24 * 7)
    risk_burst_baseline_days: int = Field(default=90, ge=7)
    risk_burst_factor: float = Field(default=3.0, gt=1)
    risk_burst_min_referrals: int = Field(default=30, ge=1)
    # The same consent record reference, or the same notice hash with the same capture second, on this many clients.
    risk_reused_consent_clients: int = Field(default=5, ge=2)
    # Accounts emptied (assets at or below `risk_emptied_below_bp` of the amount funded) or closed inside the hold
    # period: at least `risk_emptied_accounts` of a partner's funded accounts, and at least `risk_emptied_rate_bp`.
    risk_emptied_below_bp: int = Field(default=1000, ge=0, le=10_000)
    risk_emptied_accounts: int = Field(default=3, ge=1)
    risk_emptied_rate_bp: int = Field(default=1000, ge=0, le=10_000)
    # Bundles cancelled within `risk_cooling_off_days` of their purchase: at least `risk_bundle_churn_count` of a
    # partner's purchases, and at least `risk_bundle_churn_rate_bp` of them.
    risk_cooling_off_days: int = Field(default=15, ge=1)
    risk_bundle_churn_count: int = Field(default=5, ge=1)
    risk_bundle_churn_rate_bp: int = Field(default=3000, ge=0, le=10_000)
    # A partner's rejection or existing-client rate in a business month: at least `risk_outlier_min_rate_bp`, and
    # `risk_outlier_factor` times its peers' pooled rate, on at least `risk_outlier_min_referrals` referrals.
    risk_outlier_factor: float = Field(default=3.0, gt=1)
    risk_outlier_min_rate_bp: int = Field(default=2500, ge=0, le=10_000)
    risk_outlier_min_referrals: int = Field(default=50, ge=1)

    # Business time (DESIGN.md, "Time"): the one timezone of statement periods, period closes, report days and
    # months and export dates. Set it before the first data: the report summary is kept by month (rebuild it after).
    business_timezone: str = "Asia/Shanghai"
    # How far ahead of our clock a back-office event may be dated (the two clocks differ a little); further is refused.
    event_clock_skew_s: int = Field(default=300, ge=0, le=86_400)

    # People in the console (DESIGN.md, "People"): a session ends after `console_idle_timeout_s` without a request
    # and `console_session_lifetime_s` after sign-in, whichever comes first. Failed sign-ins inside the window: a
    # username (or an address) that reaches its limit waits until its oldest failure leaves the window.
    console_idle_timeout_s: int = Field(default=1800, ge=60, le=86_400)
    console_session_lifetime_s: int = Field(default=43_200, ge=300, le=30 * 86_400)
    console_failures_per_username: int = Field(default=5, ge=1)
    console_failures_per_address: int = Field(default=30, ge=1)
    console_failure_window_s: int = Field(default=900, ge=1)

    # Single sign-on for people (OpenID Connect, authorization code with PKCE). Off unless the issuer is set; then
    # the role comes from the `oidc_role_claim` of the ID token, mapped by `oidc_role_map` ({"claim value": role});
    # a person whose claim maps to no role is refused.
    oidc_issuer: str | None = None
    oidc_discovery_url: str | None = None  # default: {oidc_issuer}/.well-known/openid-configuration
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scope: str = "openid profile email"
    oidc_role_claim: str = "roles"
    oidc_role_map: dict[str, str] = Field(default_factory=dict)
    oidc_username_claim: str = "preferred_username"
    oidc_timeout_s: float = Field(default=10.0, gt=0)

    # HTTP
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description="Largest request body (batches aside).")
    public_url: str = "http://localhost:8000"
    log_level: str = "INFO"
    log_json: bool = True
    readiness_timeout_s: float = Field(default=3.0, gt=0)

    @field_validator("business_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        # An IANA name only: it is also written into report SQL (``AT TIME ZONE``).
        if not all(char.isalnum() or char in "/_+-" for char in value):
            raise ValueError("ALLIANCE_BUSINESS_TIMEZONE must be an IANA timezone name, e.g. Asia/Shanghai")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError("ALLIANCE_BUSINESS_TIMEZONE must be an IANA timezone name, e.g. Asia/Shanghai") from error
        return value

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        if self.master_key is None or self.master_key.get_secret_value() in PLACEHOLDER_SECRETS:
            raise ValueError("ALLIANCE_MASTER_KEY must be set to a real key in production")
        if not self.public_url.startswith("https://"):
            raise ValueError("ALLIANCE_PUBLIC_URL must be https:// in production")
        if not self.database_url:
            raise ValueError("DATABASE_URL must be set in production (no embedded database)")
        return self

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def console_cookies_secure(self) -> bool:
        """Console cookies carry ``Secure`` everywhere but on a developer's own machine (plain http://localhost)."""
        return self.environment != "development"

    @property
    def private_targets_allowed(self) -> bool:
        if self.webhook_allow_private_targets is not None:
            return self.webhook_allow_private_targets
        return self.environment != "production"

    @property
    def sandbox_enabled(self) -> bool:
        """The simulated back office and test clocks: in a sandbox and in development (and the test suite, which
        checks them); never in production."""
        return self.environment != "production"

    @property
    def issuer(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "/oauth/token"

    @property
    def master_key_value(self) -> str:
        """The master key in force; development and test fall back to a well-known key."""
        if self.master_key is not None:
            return self.master_key.get_secret_value()
        return DEVELOPMENT_MASTER_KEY


@lru_cache
def get_settings() -> Settings:
    return Settings()
