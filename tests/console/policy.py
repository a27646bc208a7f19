"""Who may open what in the console: written from DESIGN.md ("People") and CONSOLE.md ("Pages"), not read from the
code. Each console route (method, path) names the roles that may use it; ``ANYONE`` needs no session (sign-in,
the language choice, static files), ``SIGNED_IN`` any person with a session. Every other role gets the 403 page;
no session, a redirect to sign-in. A console route without an entry fails ``test_every_console_route_has_an_entry``.

Roles: ``alliance_manager``, ``finance``, ``admin``, ``auditor`` (auditors read, never act).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

MANAGER, FINANCE, ADMIN, AUDITOR = "alliance_manager", "finance", "admin", "auditor"
ROLES = (MANAGER, FINANCE, ADMIN, AUDITOR)
ANYONE = "anyone"
SIGNED_IN = ROLES

CONSOLE_POLICY: dict[tuple[str, str], tuple[str, ...] | str] = {
    ("MOUNT", "/console/static"): ANYONE,
    ("POST", "/console/language"): ANYONE,
    ("GET", "/console"): SIGNED_IN,
    # Finance (DESIGN.md "Reconciliation", "People"): finance reads and acts; auditors read only ("read-only for
    # auditors"); money actions follow four eyes in the services, whoever posts.
    ("GET", "/console/periods"): (FINANCE, AUDITOR),
    ("GET", "/console/periods/{period}/close"): (FINANCE, AUDITOR),
    ("POST", "/console/periods/{period}/close"): (FINANCE,),
    ("GET", "/console/statements"): (FINANCE, AUDITOR),
    ("GET", "/console/statements/{statement_id}"): (FINANCE, AUDITOR),
    ("GET", "/console/statements/{statement_id}/print"): (FINANCE, AUDITOR),
    ("GET", "/console/statements/{statement_id}/export"): (FINANCE, AUDITOR),
    ("POST", "/console/statements/{statement_id}/issue"): (FINANCE,),
    ("POST", "/console/statements/{statement_id}/approve"): (FINANCE,),
    ("POST", "/console/statements/{statement_id}/mark-paid"): (FINANCE,),
    ("GET", "/console/discrepancies"): (FINANCE, AUDITOR),
    ("POST", "/console/discrepancies/{item_id}/resolve"): (FINANCE,),
    # People (DESIGN.md "People", API.md "Console"): anyone may open the sign-in form and post it; signing out, the
    # person's own account page and sign-out everywhere need a session, of any role.
    ("GET", "/console/sign-in"): ANYONE,
    ("POST", "/console/sign-in"): ANYONE,
    ("POST", "/console/sign-out"): SIGNED_IN,
    ("GET", "/console/account"): SIGNED_IN,
    ("POST", "/console/account/sign-out-everywhere"): SIGNED_IN,
    ("GET", "/console/sso/callback"): ANYONE,  # the identity provider sends the browser back here
    # The alliance manager's pages (DESIGN.md "Who uses it", "Reports"): managers read all reports; finance (fees,
    # payments) and auditors (read-only over everything) read them too, admins do not. Every staff role reads the
    # catalog (finance settles with partners, admins issue their credentials, auditors read everything); only
    # managers change it. Conflicts, the referral search and unmasking are the managers' alone.
    ("GET", "/console/overview"): (MANAGER, FINANCE, AUDITOR),
    ("GET", "/console/partners"): SIGNED_IN,
    ("GET", "/console/partners/{partner_id}"): SIGNED_IN,
    ("GET", "/console/programs"): SIGNED_IN,
    ("GET", "/console/programs/{program_id}"): SIGNED_IN,
    ("GET", "/console/programs/{program_id}/compare"): SIGNED_IN,
    ("GET", "/console/fee-schedules/{schedule_id}"): SIGNED_IN,
    ("POST", "/console/programs/{program_id}/schedules"): (MANAGER,),
    ("POST", "/console/fee-schedules/{schedule_id}"): (MANAGER,),
    ("GET", "/console/fee-schedules/{schedule_id}/activate"): (MANAGER,),
    ("POST", "/console/fee-schedules/{schedule_id}/activate"): (MANAGER,),
    ("GET", "/console/conflicts"): (MANAGER,),
    ("POST", "/console/conflicts/{conflict_id}/resolve"): (MANAGER,),
    ("GET", "/console/referrals"): (MANAGER,),
    ("POST", "/console/referrals/search"): (MANAGER,),
    ("POST", "/console/referrals/{referral_id}/unmask"): (MANAGER,),
    # Risk cases (DESIGN.md "Risk"): managers act on them; auditors read them (read-only over everything).
    ("GET", "/console/risk-cases"): (MANAGER, AUDITOR),
    ("GET", "/console/risk-cases/{case_id}"): (MANAGER, AUDITOR),
    ("POST", "/console/risk-cases/{case_id}/assign"): (MANAGER,),
    ("POST", "/console/risk-cases/{case_id}/notes"): (MANAGER,),
    ("POST", "/console/risk-cases/{case_id}/close"): (MANAGER,),
    # Administration: admins manage credentials; auditors read the audit log and act nowhere.
    ("GET", "/console/clients"): (ADMIN,),
    ("GET", "/console/clients/new"): (ADMIN,),
    ("POST", "/console/clients"): (ADMIN,),
    ("GET", "/console/clients/{client_id}/rotate"): (ADMIN,),
    ("POST", "/console/clients/{client_id}/rotate"): (ADMIN,),
    ("GET", "/console/clients/{client_id}/revoke"): (ADMIN,),
    ("POST", "/console/clients/{client_id}/revoke"): (ADMIN,),
    ("GET", "/console/keys"): (ADMIN,),
    ("GET", "/console/keys/rotate"): (ADMIN,),
    ("POST", "/console/keys/rotate"): (ADMIN,),
    ("GET", "/console/audit"): (ADMIN, AUDITOR),
}


def console_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes: list[tuple[str, str]] = []
    for route in iter_route_contexts(app.routes):
        path = str(route.path)
        if not path.startswith("/console"):
            continue
        if route.methods is None:
            routes.append(("MOUNT", path))
        else:
            routes.extend((method, path) for method in sorted(route.methods) if method != "HEAD")
    return routes
