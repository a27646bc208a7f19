"""Who may call what: the access policy, written from DESIGN.md ("Who uses it") and API.md, not read from the code.

Each route of the app (method, path as FastAPI declares it) has one entry: the principals it admits and, for each,
the scope its token must carry. Principals are named as in ``tests.security.principals.PRINCIPALS``: ``partner``,
``back_office`` and the staff roles ``alliance_manager``, ``finance``, ``admin``, ``auditor``. A route nobody
authenticates for is ``PUBLIC``. A route of the app without an entry fails ``test_authorization_matrix``, which
prints the entry to add.

The readings of the design behind the less obvious entries:
- The catalog is managed by alliance managers; every staff role reads it (finance settles with partners and needs
  their VAT settings, admins issue partners' credentials, auditors read everything).
- Machine credentials (OAuth clients) and signing keys are the admin's "keys". DESIGN.md also lists "credentials"
  among the alliance manager's things; the platform gives them to admins only (tests/auth/test_credentials_api.py).
- Reports: alliance managers read all reports; finance (fees, payments) and auditors (read-only over everything)
  read them too; admins do not. A partner reads its own funnel (API.md) and its own time to convert.
- Finance acts on statements and reconciliation; auditors read them; nobody else sees other partners' money.
- The audit log is read by admins and auditors.
- Risk cases (DESIGN.md, "Risk") are for alliance managers, who act on them; auditors read them (read-only over
  everything); finance sees only that lines are left out of a close as under review; partners never see a case.
- Sandbox test clocks (DESIGN.md, "Time" and "Sandbox"; only where the sandbox is enabled): a partner reads its
  own clock as it reads its own referrals (``referrals:read``) and moves it as it changes them (``referrals:write``:
  an advance expires and erases its referrals); every staff role reads any partner's (the catalog's readers: they
  help partners integrate), alliance managers move one (they onboard partners) and so does finance (an advance
  closes the partner's months).
- The sandbox's simulated back office moves a partner's own referrals ("the partner moves its own sandbox
  referrals through opening, funding, ..."): partners only, with ``referrals:write``, the scope that already lets
  them change their referrals (submit, withdraw). Staff may advance a partner's clock, not act as its back office;
  the real back-office client has the feed itself.

The console (``/console``) admits people by session, not tokens: its routes have their own table,
``tests/console/policy.py``, and are left out here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

PARTNER, BACK_OFFICE = "partner", "back_office"
ALLIANCE_MANAGER, FINANCE, ADMIN, AUDITOR = "alliance_manager", "finance", "admin", "auditor"
STAFF = (ALLIANCE_MANAGER, FINANCE, ADMIN, AUDITOR)
EVERY_PRINCIPAL = (PARTNER, BACK_OFFICE, *STAFF)
CONSOLE_PREFIX = "/console"


@dataclass(frozen=True)
class Access:
    """The principals a route admits, each with the scope its token needs. ``public``: no token at all."""

    needs: dict[str, str] = field(default_factory=dict)
    public: bool = False

    def __or__(self, other: Access) -> Access:
        return Access({**self.needs, **other.needs}, self.public or other.public)

    def admits(self, principal: str) -> bool:
        return principal in self.needs


PUBLIC = Access(public=True)


def partner(scope: str) -> Access:
    return Access({PARTNER: scope})


def back_office(scope: str) -> Access:
    return Access({BACK_OFFICE: scope})


def staff(scope: str, *roles: str) -> Access:
    return Access(dict.fromkeys(roles, scope))


CATALOG_READERS = staff("catalog:read", *STAFF)
CATALOG_WRITER = staff("catalog:write", ALLIANCE_MANAGER)
ATTRIBUTION = staff("attribution:manage", ALLIANCE_MANAGER)
REPORT_READERS = staff("reports:read", ALLIANCE_MANAGER, FINANCE, AUDITOR)
FINANCE_READERS = staff("finance:read", FINANCE, AUDITOR)
FINANCE_WRITER = staff("finance:write", FINANCE)
CREDENTIALS = staff("clients:manage", ADMIN)
RISK_READERS = staff("risk:read", ALLIANCE_MANAGER, AUDITOR)
RISK_MANAGER = staff("risk:manage", ALLIANCE_MANAGER)

POLICY: dict[tuple[str, str], Access] = {
    # --- public: operations, OAuth metadata and the OAuth endpoints (clients authenticate there themselves)
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("MOUNT", "/docs/assets"): PUBLIC,
    ("GET", "/problems"): PUBLIC,
    ("GET", "/problems/{slug}"): PUBLIC,
    ("GET", "/.well-known/oauth-authorization-server"): PUBLIC,
    ("GET", "/.well-known/jwks.json"): PUBLIC,
    ("POST", "/oauth/token"): PUBLIC,
    ("POST", "/oauth/introspect"): PUBLIC,
    ("POST", "/oauth/revoke"): PUBLIC,
    # --- partner: its own programs, referrals, batches, webhooks, statements, claims
    ("GET", "/v1/programs"): partner("referrals:read"),
    ("GET", "/v1/programs/{program_id}"): partner("referrals:read"),
    ("POST", "/v1/referrals"): partner("referrals:write"),
    ("GET", "/v1/referrals"): partner("referrals:read"),
    ("GET", "/v1/referrals/{referral_id}"): partner("referrals:read"),
    ("GET", "/v1/referrals/{referral_id}/events"): partner("referrals:read"),
    ("POST", "/v1/referrals/{referral_id}/withdraw"): partner("referrals:write"),
    # --- the sandbox (absent in production)
    ("POST", "/v1/sandbox/referrals/{referral_id}/simulate"): partner("referrals:write"),
    ("POST", "/v1/referral-batches"): partner("referrals:write"),
    ("GET", "/v1/referral-batches"): partner("referrals:read"),
    ("GET", "/v1/referral-batches/{batch_id}"): partner("referrals:read"),
    ("GET", "/v1/referral-batches/{batch_id}/results"): partner("referrals:read"),
    ("POST", "/v1/webhook-endpoints"): partner("webhooks:manage"),
    ("GET", "/v1/webhook-endpoints"): partner("webhooks:manage"),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): partner("webhooks:manage"),
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): partner("webhooks:manage"),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): partner("webhooks:manage"),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): partner("webhooks:manage"),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/test"): partner("webhooks:manage"),
    ("GET", "/v1/webhook-deliveries"): partner("webhooks:manage"),
    ("GET", "/v1/webhook-deliveries/{delivery_id}"): partner("webhooks:manage"),
    ("POST", "/v1/webhook-deliveries/{delivery_id}/retry"): partner("webhooks:manage"),
    ("GET", "/v1/statements"): partner("statements:read"),
    ("GET", "/v1/statements/{statement_id}"): partner("statements:read"),
    ("GET", "/v1/statements/{statement_id}/lines"): partner("statements:read"),
    ("GET", "/v1/statements/{statement_id}/reconciliation"): partner("statements:read"),
    ("POST", "/v1/statements/{statement_id}/claims"): partner("claims:write"),
    ("POST", "/v1/statements/{statement_id}/disputes"): partner("claims:write"),
    # --- reports: a partner its own, staff every partner's
    ("GET", "/v1/reports/funnel"): partner("referrals:read") | REPORT_READERS,
    ("GET", "/v1/reports/time-to-convert"): partner("referrals:read") | REPORT_READERS,
    ("GET", "/v1/reports/client-structure"): REPORT_READERS,
    ("GET", "/v1/reports/fees"): REPORT_READERS,
    ("GET", "/v1/reports/partners/{id}/scorecard"): REPORT_READERS,
    ("GET", "/v1/reports/pack"): REPORT_READERS,
    # --- back office: the conversion feed and the registry of existing clients
    ("POST", "/v1/conversion-events"): back_office("conversions:write"),
    ("POST", "/v1/client-registry"): back_office("registry:write"),
    # --- risk cases: alliance managers act, auditors read, partners never
    ("GET", "/v1/admin/risk-cases"): RISK_READERS,
    ("GET", "/v1/admin/risk-cases/{case_id}"): RISK_READERS,
    ("GET", "/v1/admin/risk-cases/{case_id}/referrals"): RISK_READERS,
    ("GET", "/v1/admin/risk-cases/{case_id}/lines"): RISK_READERS,
    ("POST", "/v1/admin/risk-cases/{case_id}/assign"): RISK_MANAGER,
    ("POST", "/v1/admin/risk-cases/{case_id}/notes"): RISK_MANAGER,
    ("POST", "/v1/admin/risk-cases/{case_id}/close"): RISK_MANAGER,
    # --- alliance managers: the catalog, attribution oversight, unmasking
    ("POST", "/v1/admin/partners"): CATALOG_WRITER,
    ("GET", "/v1/admin/partners"): CATALOG_READERS,
    ("GET", "/v1/admin/partners/{partner_id}"): CATALOG_READERS,
    ("PATCH", "/v1/admin/partners/{partner_id}"): CATALOG_WRITER,
    ("POST", "/v1/admin/partners/{partner_id}/suspend"): CATALOG_WRITER,
    ("POST", "/v1/admin/partners/{partner_id}/reactivate"): CATALOG_WRITER,
    ("POST", "/v1/admin/partners/{partner_id}/terminate"): CATALOG_WRITER,
    ("POST", "/v1/admin/products"): CATALOG_WRITER,
    ("GET", "/v1/admin/products"): CATALOG_READERS,
    ("GET", "/v1/admin/products/{product_id}"): CATALOG_READERS,
    ("PATCH", "/v1/admin/products/{product_id}"): CATALOG_WRITER,
    ("POST", "/v1/admin/programs"): CATALOG_WRITER,
    ("GET", "/v1/admin/programs"): CATALOG_READERS,
    ("GET", "/v1/admin/programs/{program_id}"): CATALOG_READERS,
    ("PATCH", "/v1/admin/programs/{program_id}"): CATALOG_WRITER,
    ("POST", "/v1/admin/fee-schedules"): CATALOG_WRITER,
    ("GET", "/v1/admin/fee-schedules"): CATALOG_READERS,
    ("GET", "/v1/admin/fee-schedules/{schedule_id}"): CATALOG_READERS,
    ("PATCH", "/v1/admin/fee-schedules/{schedule_id}"): CATALOG_WRITER,
    ("DELETE", "/v1/admin/fee-schedules/{schedule_id}"): CATALOG_WRITER,
    ("POST", "/v1/admin/fee-schedules/{schedule_id}/activate"): CATALOG_WRITER,
    ("GET", "/v1/admin/referrals"): ATTRIBUTION,
    ("POST", "/v1/admin/referrals/search"): ATTRIBUTION,
    ("POST", "/v1/admin/referrals/{referral_id}/unmask"): staff("pii:unmask", ALLIANCE_MANAGER),
    ("GET", "/v1/admin/referrals/{referral_id}"): ATTRIBUTION,
    ("POST", "/v1/admin/referrals/{referral_id}/award"): ATTRIBUTION,
    ("GET", "/v1/admin/conflicts"): ATTRIBUTION,
    ("POST", "/v1/admin/conflicts/{conflict_id}/resolve"): ATTRIBUTION,
    # --- finance: periods, statements, reconciliation, adjustments (auditors read)
    ("POST", "/v1/finance/periods/{period}/close"): FINANCE_WRITER,
    ("GET", "/v1/finance/statements"): FINANCE_READERS,
    ("GET", "/v1/finance/statements/{statement_id}"): FINANCE_READERS,
    ("GET", "/v1/finance/statements/{statement_id}/lines"): FINANCE_READERS,
    ("POST", "/v1/finance/statements/{statement_id}/issue"): FINANCE_WRITER,
    ("POST", "/v1/finance/statements/{statement_id}/approve"): FINANCE_WRITER,
    ("POST", "/v1/finance/statements/{statement_id}/mark-paid"): FINANCE_WRITER,
    ("GET", "/v1/finance/statements/{statement_id}/export"): FINANCE_READERS,
    ("POST", "/v1/finance/adjustments"): FINANCE_WRITER,
    ("GET", "/v1/finance/reconciliation-items"): FINANCE_READERS,
    ("POST", "/v1/finance/reconciliation-items/{item_id}/resolve"): FINANCE_WRITER,
    # --- admins and auditors: credentials, keys, the audit log
    ("POST", "/v1/admin/clients"): CREDENTIALS,
    ("GET", "/v1/admin/clients"): CREDENTIALS,
    ("GET", "/v1/admin/clients/{client_id}"): CREDENTIALS,
    ("POST", "/v1/admin/clients/{client_id}/rotate-secret"): CREDENTIALS,
    ("POST", "/v1/admin/clients/{client_id}/revoke"): CREDENTIALS,
    ("POST", "/v1/admin/keys/rotate"): staff("keys:manage", ADMIN),
    ("GET", "/v1/admin/audit-events"): staff("audit:read", ADMIN, AUDITOR),
    # --- sandbox test clocks
    ("GET", "/v1/sandbox/clock"): partner("referrals:read") | CATALOG_READERS,
    ("POST", "/v1/sandbox/clock/advance"): partner("referrals:write")
    | CATALOG_WRITER
    | staff("finance:write", FINANCE),
}


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the API the app answers, as FastAPI declares it (``HEAD`` aside); a mount is
    ``("MOUNT", path)``. The console's routes are in ``tests/console/policy.py``."""
    routes: list[tuple[str, str]] = []
    for route in iter_route_contexts(app.routes):
        if str(route.path).startswith(CONSOLE_PREFIX):
            continue
        methods = route.methods
        if methods is None:  # a mount (static files, a sub-application) or a websocket
            routes.append(("MOUNT" if isinstance(route.original_route, Mount) else "OTHER", str(route.path)))
            continue
        routes.extend((method, str(route.path)) for method in sorted(methods) if method != "HEAD")
    return routes


def partner_routes_with_ids(app: FastAPI) -> list[tuple[str, str]]:
    """The app's routes a partner may call on one of its objects (a path parameter names it)."""
    return [route for route in app_routes(app) if "{" in route[1] and POLICY[route].admits(PARTNER)]
