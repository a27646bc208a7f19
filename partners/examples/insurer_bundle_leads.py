"""An insurer reports the leads of its "life insurance + fund SIP" bundle, concurrently, with ``AsyncClient``.

When a policyholder buys a life policy and gives separate consent to be introduced to the firm's fund
systematic investment plan, the insurer's sales system records a lead (``data/insurer_bundle_leads.csv``).
This job reports each lead as a referral under the insurer's bundle program (the policy number is the
``external_ref``), a few at a time, and prints each attribution outcome. With ``--webhook-url`` it first
makes sure an endpoint is registered there for status changes (the secret is printed once: give it to
``webhook_receiver.py``).

    .venv/bin/alliance demo --json --reset-secrets > demo-credentials.json
    .venv/bin/python partners/examples/insurer_bundle_leads.py --credentials demo-credentials.json
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from datetime import datetime
from pathlib import Path

import httpx
from _common import DATA, client_options, connection_arguments

from alliance_partner import APIError, AsyncClient, Consent, IndividualSubject, Referral, ReferralCreate

DEMO_CLIENT = "cli_demo_insurer"
NOTICE = DATA / "consent_notice_insurer_2026-11.txt"
CONCURRENCY = 8  # well under the API's rate limit; the SDK backs off on 429 anyway


def lead_referral(row: dict[str, str], program_id: str, notice_sha256: str) -> ReferralCreate:
    return ReferralCreate(
        program_id=program_id,
        external_ref=row["policy_no"],
        kind="vip",
        subject=IndividualSubject(
            name=row["holder_name"], mobile=row["holder_mobile"], national_id=row["holder_national_id"]
        ),
        consent=Consent(
            captured_at=datetime.fromisoformat(row["consent_captured_at"]),
            channel=row["consent_channel"],  # type: ignore[arg-type]
            notice_version="2026-11",
            notice_sha256=notice_sha256,
            recipient_name="示范证券股份有限公司",
            purpose="基金定投开户推荐",
            data_categories=["name", "mobile", "national_id"],
            retention_days=365,
            evidence_ref=row["consent_evidence_ref"],
        ),
    )


async def bundle_program(alliance: AsyncClient) -> str:
    async for program in alliance.list_programs():
        if program.channel == "insurance_bundle" and program.status == "active":
            return program.id
    raise SystemExit("no active insurance bundle program: ask your alliance manager")


async def ensure_webhook(alliance: AsyncClient, url: str) -> str | None:
    """Register ``url`` for referral status changes unless it already is; the new secret, if one was made."""
    async for endpoint in alliance.list_webhook_endpoints():
        if endpoint.url == url:
            return None
    created = await alliance.create_webhook_endpoint(
        url, ["referral.status_changed", "referral.expired"], description="insurer lead status"
    )
    return created.secret


async def report_leads(alliance: AsyncClient, leads: Path) -> list[tuple[str, Referral | APIError]]:
    program_id = await bundle_program(alliance)
    notice_sha256 = Consent.hash_notice(NOTICE.read_text(encoding="utf-8"))
    with leads.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    limit = asyncio.Semaphore(CONCURRENCY)

    async def report(row: dict[str, str]) -> tuple[str, Referral | APIError]:
        async with limit:
            try:
                return row["policy_no"], await alliance.create_referral(lead_referral(row, program_id, notice_sha256))
            except APIError as error:
                return row["policy_no"], error

    return list(await asyncio.gather(*(report(row) for row in rows)))


async def run(argv: list[str] | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> int:
    parser = connection_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--leads", type=Path, default=DATA / "insurer_bundle_leads.csv")
    parser.add_argument("--webhook-url", help="register this URL for referral status changes")
    args = parser.parse_args(argv)
    async with AsyncClient.from_env(**client_options(args, DEMO_CLIENT), transport=transport) as alliance:
        if args.webhook_url:
            secret = await ensure_webhook(alliance, args.webhook_url)
            if secret:
                print(f"webhook endpoint registered; its signing secret (shown once): {secret}")
        outcomes = await report_leads(alliance, args.leads)
    failures = 0
    for policy, outcome in outcomes:
        if isinstance(outcome, APIError):
            failures += 1
            print(f"{policy}: FAILED {outcome.code} {outcome.detail} (request {outcome.request_id})")
        else:
            print(f"{policy}: {outcome.id} {outcome.status}{'' if outcome.is_new else ' (already reported)'}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(argv))


if __name__ == "__main__":
    sys.exit(main())
