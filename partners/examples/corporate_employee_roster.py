"""A corporate uploads its employee roster for the "employee exclusive wealth plan", as one batch.

HR exports the roster (``data/employee_roster.csv``) with each employee's separate consent, collected on the
HR portal. Employees who did not consent are left out before anything leaves the company. The others are
uploaded as one batch (``upload_batch``), whose progress is shown while the alliance processes it; then
each line's outcome is printed against the employee number, with the fields to fix on refused lines.

    .venv/bin/alliance demo --json --reset-secrets > demo-credentials.json
    .venv/bin/python partners/examples/corporate_employee_roster.py --credentials demo-credentials.json

Batches of more than 500 lines are processed in the background by `alliance worker`: run it beside
`make run` for large rosters.
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import datetime
from pathlib import Path

import httpx
from _common import DATA, client_options, connection_arguments

from alliance_partner import Batch, BatchReport, Client, Consent, IndividualSubject, ReferralCreate

DEMO_CLIENT = "cli_demo_corporate"
EMPLOYER = "黑土地示范农业集团有限公司"
NOTICE = DATA / "consent_notice_employer_2026-11.txt"


def roster_rows(path: Path, program_id: str) -> tuple[list[ReferralCreate], list[str]]:
    """The consenting employees as referrals, and the employee numbers left out."""
    notice_sha256 = Consent.hash_notice(NOTICE.read_text(encoding="utf-8"))
    rows: list[ReferralCreate] = []
    left_out: list[str] = []
    with path.open(encoding="utf-8-sig", newline="") as file:
        for employee in csv.DictReader(file):
            if employee["wealth_plan_consent"] != "yes":
                left_out.append(employee["employee_no"])
                continue
            rows.append(
                ReferralCreate(
                    program_id=program_id,
                    external_ref=employee["employee_no"],
                    kind="employee",
                    subject=IndividualSubject(
                        name=employee["name"],
                        mobile=employee["mobile"],
                        national_id=employee["national_id"],
                        employer=EMPLOYER,
                    ),
                    consent=Consent(
                        captured_at=datetime.fromisoformat(employee["consent_signed_at"]),
                        channel="hr_portal",
                        notice_version="2026-11",
                        notice_sha256=notice_sha256,
                        recipient_name="示范证券股份有限公司",
                        purpose="员工专属财富计划开户",
                        data_categories=["name", "mobile", "national_id", "employer"],
                        retention_days=730,
                        evidence_ref=employee["consent_record"],
                    ),
                )
            )
    return rows, left_out


def employee_program(alliance: Client) -> str:
    for program in alliance.list_programs():
        if program.channel == "employee_plan" and program.status == "active":
            return program.id
    raise SystemExit("no active employee plan program: ask your alliance manager")


def show_progress(batch: Batch) -> None:
    counts = batch.counts
    print(f"  batch {batch.id}: {batch.status} {counts.processed}/{counts.total} ({batch.progress:.0%})")


def upload_roster(alliance: Client, roster: Path, *, poll_interval: float = 1.0) -> tuple[BatchReport, list[str]]:
    rows, left_out = roster_rows(roster, employee_program(alliance))
    report = alliance.upload_batch(rows, progress=show_progress, poll_interval=poll_interval, timeout=3600)
    return report, left_out


def main(argv: list[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> int:
    parser = connection_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--roster", type=Path, default=DATA / "employee_roster.csv")
    args = parser.parse_args(argv)
    with Client.from_env(**client_options(args, DEMO_CLIENT), transport=transport) as alliance:
        report, left_out = upload_roster(alliance, args.roster)
    print(f"left out (no consent): {left_out}")
    print(f"outcomes: {report.by_outcome()}")
    for line in report:
        # Rows were sent as JSON Lines: result line n is row n, and its external_ref is the employee number.
        if line.outcome == "error":
            problems = "; ".join(f"{error.field or 'line'}: {error.message}" for error in line.errors)
            print(f"  {line.external_ref}: REFUSED {problems}")
        else:
            print(f"  {line.external_ref}: {line.outcome} ({line.referral_id})")
    return 0  # refused lines are reported above for HR to fix; the batch itself went through


if __name__ == "__main__":
    sys.exit(main())
