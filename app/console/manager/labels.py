"""The English names of the statuses and kinds the manager's pages show (their Chinese is in ``words``): one name
per value, so that a status reads the same on every page."""

from __future__ import annotations

REFERRAL_STATUS = {
    "received": "Received",
    "eligible": "Eligible",
    "account_opened": "Account open",
    "funded": "Funded account",
    "converted": "Converted client",
    "existing_client": "Existing client",
    "duplicate": "Duplicate",
    "expired": "Expired",
    "withdrawn": "Withdrawn",
    "rejected": "Rejected",
}
PARTNER_STATUS = {"active": "Active partner", "suspended": "Suspended partner", "terminated": "Terminated partner"}
PARTNER_KIND = {"bank": "Bank-securities", "insurer": "Insurance-securities", "corporate": "Industry alliance"}
SCHEDULE_STATE = {"draft": "Draft version", "active": "In force", "succeeded": "Succeeded", "scheduled": "Scheduled"}
PROGRAM_STATUS = {"active": "Program active", "paused": "Program paused", "closed": "Program closed"}
STATEMENT_STATUS = {
    "draft": "Statement draft",
    "issued": "Statement issued",
    "disputed": "Statement disputed",
    "approved": "Approved statement",
    "paid": "Statement paid",
}
RESOLUTION = {"keep_holder": "Keep the holder", "award_duplicate": "Move to the later referral"}
CAUSE = {
    "submitted": "Submitted by the partner",
    "attribution": "Attribution decided",
    "window_passed": "Attribution window passed",
    "attribution_moved": "Attribution changed",
    "account_opened": "Back office: account opened",
    "account_funded": "Back office: account funded",
    "assets_snapshot": "Back office: assets snapshot",
    "bundle_purchased": "Back office: bundle purchased",
    "bundle_cancelled": "Back office: bundle cancelled",
    "account_closed": "Back office: account closed",
    "consent_revoked": "Withdrawn: consent revoked",
    "client_request": "Withdrawn: the client asked",
    "submitted_in_error": "Withdrawn: submitted in error",
    "other": "Other",
    "risk_confirmed": "Rejected after a risk review",
}


def label(names: dict[str, str], value: object) -> str:
    """The English name of ``value`` (an enum or its string), or the value itself when it has none."""
    key = str(getattr(value, "value", value) or "")
    return names.get(key, key)
