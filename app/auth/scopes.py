"""Scopes, principal kinds and staff roles: who may ask for what."""

from __future__ import annotations

from enum import StrEnum


class PrincipalKind(StrEnum):
    partner = "partner"
    back_office = "back_office"
    staff = "staff"


class StaffRole(StrEnum):
    alliance_manager = "alliance_manager"
    finance = "finance"
    admin = "admin"
    auditor = "auditor"


SCOPES: dict[str, str] = {
    # partners
    "referrals:write": "Submit and withdraw the partner's referrals",
    "referrals:read": "Read the partner's referrals, programs and funnel",
    "webhooks:manage": "Manage the partner's webhook endpoints and deliveries",
    "statements:read": "Read the partner's statements",
    "claims:write": "Upload claims and disputes for the partner's statements",
    # back office
    "conversions:write": "Push conversion events",
    "registry:write": "Push the registry of existing clients",
    # staff
    "catalog:read": "Read partners, programs, products and fee schedules",
    "catalog:write": "Manage partners, programs, products and fee schedules",
    "attribution:manage": "Search referrals, resolve conflicts, override attributions",
    "pii:unmask": "Read one referral's personal data unmasked (audited)",
    "reports:read": "Read every report",
    "risk:read": "Read risk cases: their signals, evidence, referrals, fee lines and timeline",
    "risk:manage": "Assign, annotate and close risk cases (closing releases or reverses fee lines, audited)",
    "finance:read": "Read accruals, statements and reconciliation",
    "finance:write": "Close periods, issue, approve and pay statements, resolve reconciliation",
    "clients:manage": "Create, rotate and revoke OAuth clients",
    "keys:manage": "Rotate signing and data keys",
    "audit:read": "Read the audit log",
}

PARTNER_SCOPES = ("referrals:write", "referrals:read", "webhooks:manage", "statements:read", "claims:write")
BACK_OFFICE_SCOPES = ("conversions:write", "registry:write")
ROLE_SCOPES: dict[StaffRole, tuple[str, ...]] = {
    StaffRole.alliance_manager: (
        "catalog:read",
        "catalog:write",
        "attribution:manage",
        "pii:unmask",
        "reports:read",
        "risk:read",
        "risk:manage",
    ),
    StaffRole.finance: ("catalog:read", "finance:read", "finance:write", "reports:read"),
    StaffRole.admin: ("catalog:read", "clients:manage", "keys:manage", "audit:read"),
    StaffRole.auditor: ("catalog:read", "reports:read", "finance:read", "audit:read", "risk:read"),
}


def allowance(kind: PrincipalKind, role: StaffRole | None = None) -> tuple[str, ...]:
    """Every scope a client of this kind (and role) may ever be granted."""
    if kind is PrincipalKind.partner:
        return PARTNER_SCOPES
    if kind is PrincipalKind.back_office:
        return BACK_OFFICE_SCOPES
    if role is None:
        raise ValueError("a staff client needs a role")
    return ROLE_SCOPES[role]
