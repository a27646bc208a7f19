"""A bank's daily job: refer its consenting VIP clients, withdraw those who revoked consent, report the funnel.

The bank's CRM exports its VIP clients every night (``data/bank_crm_vip_export.csv``) with the state of each
client's *separate* consent to share their data with the securities firm (PIPL art. 23). The job:

1. refers every VIP client whose consent is granted; a client referred on an earlier day comes back as the
   existing referral (``is_new`` False), so the job is safe to run every day, and to rerun after a failure;
2. withdraws the referral of every client who revoked consent (the firm erases their personal data);
3. prints where all of the bank's referrals stand.

Run it against ``make run``'s demo alliance:

    .venv/bin/alliance demo --json --reset-secrets > demo-credentials.json
    .venv/bin/python partners/examples/bank_vip_daily_sync.py --credentials demo-credentials.json
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from _common import DATA, client_options, connection_arguments

from alliance_partner import (
    APIError,
    Client,
    Consent,
    IndividualSubject,
    ReferralCreate,
)

DEMO_CLIENT = "cli_demo_bank"
NOTICE = DATA / "consent_notice_bank_2026-10.txt"
NOTICE_VERSION = "2026-10"
RECIPIENT = "示范证券股份有限公司"
PURPOSE = "证券开户推荐及相关客户服务"
DATA_CATEGORIES = ["name", "mobile", "national_id", "assets_band"]
RETENTION_DAYS = 365


@dataclass
class SyncReport:
    referred: Counter[str] = field(default_factory=Counter)
    withdrawn: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    funnel: Counter[str] = field(default_factory=Counter)


def read_export(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def referral_for(row: dict[str, str], program_id: str, notice_sha256: str) -> ReferralCreate:
    """One CRM row as a referral. The consent evidence points at the bank's own signed record."""
    return ReferralCreate(
        program_id=program_id,
        external_ref=row["customer_no"],
        kind="vip",
        subject=IndividualSubject(
            name=row["name"],
            mobile=row["mobile"],
            national_id=row["national_id"],
            declared_assets_band=row["assets_band"] or None,  # type: ignore[arg-type]
        ),
        consent=Consent(
            captured_at=datetime.fromisoformat(row["consent_captured_at"]),
            channel=row["consent_channel"],  # type: ignore[arg-type]
            notice_version=NOTICE_VERSION,
            notice_sha256=notice_sha256,
            recipient_name=RECIPIENT,
            purpose=PURPOSE,
            data_categories=DATA_CATEGORIES,
            retention_days=RETENTION_DAYS,
            separate_consent=True,
            evidence_ref=row["consent_record_id"],
        ),
    )


def vip_program(alliance: Client) -> str:
    for program in alliance.list_programs():
        if program.channel == "vip_referral" and program.status == "active":
            return program.id
    raise SystemExit("no active VIP referral program: ask your alliance manager")


def sync(alliance: Client, export: Path, program_id: str | None = None) -> SyncReport:
    report = SyncReport()
    program_id = program_id or vip_program(alliance)
    notice_sha256 = Consent.hash_notice(NOTICE.read_text(encoding="utf-8"))
    for row in read_export(export):
        customer = row["customer_no"]
        if row["vip"] != "Y":
            report.skipped.append((customer, "not a VIP client"))
        elif row["consent_status"] == "revoked":
            for referral in alliance.list_referrals(external_ref=customer):
                if referral.status != "withdrawn":
                    alliance.withdraw_referral(referral.id, reason="consent_revoked", note="revoked in the CRM")
                    report.withdrawn.append(customer)
        elif row["consent_status"] != "granted":
            report.skipped.append((customer, "no separate consent on record"))
        else:
            try:
                referral = alliance.create_referral(referral_for(row, program_id, notice_sha256))
            except APIError as error:  # one bad record must not stop the others
                report.failed.append((customer, f"{error.code}: {error.detail} (request {error.request_id})"))
                continue
            report.referred["new" if referral.is_new else "already referred"] += 1
            report.referred[referral.status] += 1
    report.funnel = Counter(referral.status for referral in alliance.list_referrals(program_id=program_id))
    return report


def main(argv: list[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> int:
    parser = connection_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--export", type=Path, default=DATA / "bank_crm_vip_export.csv")
    parser.add_argument("--program", help="program id (default: your active VIP referral program)")
    args = parser.parse_args(argv)
    with Client.from_env(**client_options(args, DEMO_CLIENT), transport=transport) as alliance:
        report = sync(alliance, args.export, args.program)
    print(f"referred: {dict(report.referred)}")
    print(f"withdrawn (consent revoked): {report.withdrawn}")
    for customer, why in report.skipped:
        print(f"skipped {customer}: {why}")
    for customer, why in report.failed:
        print(f"FAILED {customer}: {why}")
    print(f"all referrals of the program by status: {dict(report.funnel)}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
