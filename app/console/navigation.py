"""The console's navigation: each entry names the page and the scope it needs, the same scopes the API's routes
need (``app.auth.scopes.ROLE_SCOPES``), so a person sees exactly the pages their role may open."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    section: str
    label: str
    href: str
    scope: str


ENTRIES = (
    Entry("Alliance management", "Overview", "/console/overview", "reports:read"),
    Entry("Alliance management", "Partners", "/console/partners", "catalog:read"),
    Entry("Alliance management", "Programs and fee schedules", "/console/programs", "catalog:read"),
    Entry("Alliance management", "Conflicts", "/console/conflicts", "attribution:manage"),
    Entry("Alliance management", "Referral search", "/console/referrals", "attribution:manage"),
    Entry("Alliance management", "Risk cases", "/console/risk-cases", "risk:read"),
    Entry("Finance", "Periods", "/console/periods", "finance:read"),
    Entry("Finance", "Statements", "/console/statements", "finance:read"),
    Entry("Finance", "Discrepancies", "/console/discrepancies", "finance:read"),
    Entry("Administration", "Clients", "/console/clients", "clients:manage"),
    Entry("Administration", "Signing keys", "/console/keys", "keys:manage"),
    Entry("Administration", "Audit log", "/console/audit", "audit:read"),
)


@dataclass(frozen=True)
class Link:
    label: str
    href: str
    current: bool


def navigation_for(scopes: frozenset[str], path: str) -> list[tuple[str, list[Link]]]:
    """The sections and links this person may open, the current one marked."""
    sections: dict[str, list[Link]] = {}
    for entry in ENTRIES:
        if entry.scope in scopes:
            current = path == entry.href or path.startswith(entry.href + "/")
            sections.setdefault(entry.section, []).append(Link(entry.label, entry.href, current))
    return list(sections.items())


def home_for(scopes: frozenset[str]) -> str:
    """Where ``/console`` leads this person: the first page their role may open."""
    for entry in ENTRIES:
        if entry.scope in scopes:
            return entry.href
    return "/console/sign-in"
