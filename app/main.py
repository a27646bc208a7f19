"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from app import __version__, tables  # noqa: F401  (every table model, for relationships to resolve)
from app.audit.router import router as audit_router
from app.auth.keys import Keyring
from app.auth.limits import FailureThrottle, TokenBuckets
from app.auth.oauth_router import router as oauth_router
from app.auth.rate_leases import SharedTokenBuckets
from app.auth.router import router as credentials_router
from app.auth.server import JwksFetcher, build_authorization_server
from app.auth.standing import CHANNEL as STANDING_CHANNEL
from app.auth.standing import TokenStandings
from app.auth.verified import VerifiedTokens
from app.catalog.router import admin as catalog_router
from app.catalog.router import partner_view as programs_router
from app.console.admin import router as admin_console
from app.console.finance import router as finance_pages
from app.console.manager.router import router as manager_console
from app.console.router import install_console
from app.conversions.router import router as conversions_router
from app.conversions.schemas import EventIn
from app.core.config import Settings, get_settings
from app.core.database import Database
from app.core.docs import document_in_order, document_schemas, install_docs
from app.core.health import router as health_router
from app.core.housekeeping import freeze_startup_objects
from app.core.logging import configure_logging
from app.core.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from app.core.problem_types import router as problem_types_router
from app.core.problems import PROBLEM_RESPONSES, install_problem_handlers
from app.core.request_guards import guard_request
from app.fees.router import finance_router as statements_finance_router
from app.fees.router import partner_router as statements_router
from app.privacy.service import DataKeyring
from app.reconciliation.router import finance_router as reconciliation_finance_router
from app.reconciliation.router import partner_router as reconciliation_router
from app.referrals.batches.router import router as batches_router
from app.referrals.router import back_office_router as registry_router
from app.referrals.router import partner_router as referrals_router
from app.referrals.router import staff_router as attribution_router
from app.reports.router import router as reports_router
from app.risk.router import router as risk_router
from app.sandbox.router import router as sandbox_clock_router
from app.sandbox.simulation_router import router as simulation_router
from app.settlement.router import finance_router as settlement_router
from app.webhooks.router import router as webhooks_router

DESCRIPTION = """
Alliance is the securities firm's partner-alliance platform. Partner banks, insurers and corporates submit the
clients they refer; the platform decides attribution, follows each referral through account opening, funding and
bundled-product purchases, computes referral fees and lets finance settle them.

* Partners authenticate with OAuth 2.0 client credentials (`POST /oauth/token`) and call `/v1/...`.
* Errors are RFC 9457 `application/problem+json` with a stable `type`; lists are cursor-paginated.
* Every create call takes an `Idempotency-Key`.
* Unknown query parameters and body members are refused (422, each named in `errors`). On `PATCH`, an omitted
  member is left unchanged; `null` clears a member only where its schema allows null.
"""
# Named in descriptions though no route takes them as a whole: each conversion event is validated on its own.
DOCUMENTED_SCHEMAS = (EventIn,)


# The API's routers, in the order the document lists their paths (and Swagger UI its sections).
DOCUMENTED_ROUTERS = (
    health_router,
    problem_types_router,
    oauth_router,
    credentials_router,
    catalog_router,
    programs_router,
    referrals_router,
    batches_router,
    attribution_router,
    registry_router,
    conversions_router,
    webhooks_router,
    reports_router,
    statements_router,
    reconciliation_router,
    statements_finance_router,
    settlement_router,
    reconciliation_finance_router,
    audit_router,
    risk_router,
)
# Matched first: a call is matched against the routers in the order they were included, route by route (and twice
# per router), so the calls made most are included first. Their paths are their own: no other route can match them.
MATCHED_FIRST = (programs_router, audit_router, referrals_router)


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the ASGI application. Tests pass their own ``database`` bound to a rolled-back transaction."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    database = database or Database.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        freeze_startup_objects()
        standings: TokenStandings = app.state.token_standings
        listener = database.listener(STANDING_CHANNEL, standings.changed, standings.listen)
        if listener is not None:
            listener.start()
        yield
        if listener is not None:
            await listener.stop()
        await database.dispose()
        if lease_engine is not None:
            await lease_engine.dispose()

    app = FastAPI(
        title="Alliance",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from local assets
        redoc_url=None,
        # Any route may answer these: a body that is not parseable (400), one that fails validation (422), a fault.
        responses={status: PROBLEM_RESPONSES[status] for status in (400, 422, 500)},
        dependencies=[Depends(guard_request)],
    )
    app.state.settings = settings
    app.state.database = database
    app.state.keyring = Keyring(settings)
    app.state.data_keyring = DataKeyring(settings)
    app.state.authorization_server = build_authorization_server(settings)
    app.state.jwks_fetcher = JwksFetcher(settings)
    app.state.token_standings = TokenStandings()
    app.state.verified_tokens = VerifiedTokens(settings.clock_skew_s)
    lease_engine = database.autocommit_engine(pool_size=2) if settings.shared_rate_limits else None
    app.state.api_rate_limits = (
        SharedTokenBuckets(settings.rate_limit_per_second, engine=lease_engine)
        if settings.shared_rate_limits
        else TokenBuckets(settings.rate_limit_per_second)
    )
    app.state.client_failures = FailureThrottle(settings.auth_failures_per_client, settings.auth_failure_window_s)
    app.state.address_failures = FailureThrottle(settings.auth_failures_per_address, settings.auth_failure_window_s)
    install_problem_handlers(app)
    # Batch uploads stream and enforce their own (larger) limit.
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes, overrides={"/v1/referral-batches": 64 * 1024 * 1024}
    )
    app.add_middleware(RequestContextMiddleware)
    install_docs(app)
    document_schemas(app, DOCUMENTED_SCHEMAS)
    for router in (*MATCHED_FIRST, *(router for router in DOCUMENTED_ROUTERS if router not in MATCHED_FIRST)):
        app.include_router(router)
    document_in_order(app, DOCUMENTED_ROUTERS)
    if settings.sandbox_enabled:
        # Production has no test clocks nor simulated back office at all (DESIGN.md, "Sandbox"): their routes
        # are not even there.
        app.include_router(sandbox_clock_router)
        app.include_router(simulation_router)
    install_console(app, manager_console, finance_pages, admin_console)
    return app
