"""The demo alliance holds a year of activity made through the services: every report and finance list has
something to show on the first start, the next start reuses it, and the data obeys the rules.

Expectations come from DESIGN.md (the funnel, fee and settlement rules) and from the brief of the demo (a year,
hundreds of referrals per partner, one month left to close, open conflicts and discrepancies), not from the
demo's own code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.core import clock
from app.core.business_time import month_of
from app.core.identifiers import is_valid_credit_code, national_id_birth_date
from app.demo.story import write_story
from app.privacy.service import load_cipher
from tests.demo.conftest import LoadedDemo

PARTNERS = ("ptn_demo_bank", "ptn_demo_insurer", "ptn_demo_corporate")
MANAGER, FINANCE = "cli_demo_alliance_manager", "cli_demo_finance"


def _previous_month(moment: datetime) -> str:
    return month_of(month_of(moment).start - timedelta(seconds=1)).name


async def test_every_report_has_something_to_show(demo: LoadedDemo) -> None:
    for report in ("funnel", "time-to-convert", "fees", "client-structure"):
        answer = await demo.get(MANAGER, f"/v1/reports/{report}", group_by="partner")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["rows"]) == 3, report  # one row per demo partner
    funnel = (await demo.get(MANAGER, "/v1/reports/funnel")).json()["total"]["counts"]
    for stage in ("received", "eligible", "account_opened", "funded", "converted", "duplicate", "existing_client"):
        assert funnel[stage] > 0, stage
    assert funnel["expired"] + funnel["withdrawn"] > 0
    timing = (await demo.get(MANAGER, "/v1/reports/time-to-convert")).json()["total"]
    assert timing["converted"]["median_days"] is not None
    fees = (await demo.get(MANAGER, "/v1/reports/fees")).json()["total"]
    assert fees["fees_accrued_fen"] > 0 and fees["fees_paid_fen"] > 0
    structure = (await demo.get(MANAGER, "/v1/reports/client-structure")).json()["total"]
    assert sum(structure["organic"].values()) > 0
    for partner in PARTNERS:
        scorecard = await demo.get(MANAGER, f"/v1/reports/partners/{partner}/scorecard")
        assert scorecard.status_code == 200, scorecard.text
        metrics = {metric["name"]: metric["partner"] for metric in scorecard.json()["metrics"]}
        assert metrics["received"] and metrics["converted"] and metrics["fees_paid_fen"], partner
    pack = await demo.get(MANAGER, "/v1/reports/pack")
    assert pack.status_code == 200, pack.text


async def test_every_finance_list_has_something_to_show(demo: LoadedDemo) -> None:
    statements = (await demo.get(FINANCE, "/v1/finance/statements", limit="200")).json()["data"]
    assert {"paid", "approved"} <= {statement["status"] for statement in statements}
    assert {"issued", "disputed"} & {statement["status"] for statement in statements}
    lines = await demo.get(FINANCE, f"/v1/finance/statements/{statements[0]['id']}/lines")
    assert lines.status_code == 200 and lines.json()["data"]
    items = (await demo.get(FINANCE, "/v1/finance/reconciliation-items", limit="200")).json()["data"]
    assert any(item["resolution"] for item in items)
    open_items = (await demo.get(FINANCE, "/v1/finance/reconciliation-items", open="true")).json()["data"]
    assert open_items, "a few claim discrepancies are left for finance"
    conflicts = (await demo.get(MANAGER, "/v1/admin/conflicts", status="open")).json()["data"]
    assert conflicts, "a few conflicts are left for the alliance manager"
    resolved = (await demo.get(MANAGER, "/v1/admin/conflicts", status="resolved")).json()["data"]
    assert resolved
    partner_view = (await demo.get("cli_demo_bank", "/v1/statements")).json()["data"]
    assert partner_view and all(statement["status"] != "draft" for statement in partner_view)


async def test_a_year_with_one_month_left_to_close(demo: LoadedDemo) -> None:
    now = clock.now()
    months = {row["period"] for row in await demo.fetch("SELECT DISTINCT period FROM statements")}
    assert _previous_month(now) not in months, "the month just ended is left to close"
    assert len(months) >= 9
    first_referral = (await demo.fetch("SELECT min(created_at) AS at FROM referrals"))[0]["at"]
    # The year begins on the first of the month twelve months back: up to a year and a month before today.
    assert now - timedelta(days=366 + 31) < first_referral < now - timedelta(days=330)
    per_partner = await demo.fetch("SELECT partner_id, count(*) AS n FROM referrals GROUP BY partner_id")
    assert {row["partner_id"]: row["n"] >= 200 for row in per_partner} == dict.fromkeys(PARTNERS, True)
    assert isinstance(clock.current(), clock.SystemClock), "the clock is real again after loading"
    latest = await demo.fetch(
        "SELECT max(created_at) AS at FROM referrals UNION ALL SELECT max(created_at) FROM fee_accruals "
        "UNION ALL SELECT max(occurred_at) FROM conversion_events"
    )
    assert all(row["at"] <= clock.now() for row in latest), "nothing is dated in the future"


async def test_the_mix_is_realistic(demo: LoadedDemo) -> None:
    bands = {
        row["age_band"]: row["n"]
        for row in await demo.fetch(
            "SELECT age_band, count(*) AS n FROM referrals WHERE kind <> 'enterprise' AND age_band IS NOT NULL "
            "GROUP BY age_band"
        )
    }
    assert 0.25 <= bands["25_35"] / sum(bands.values()) <= 0.5
    tiers = {
        row["tier"]
        for row in await demo.fetch(
            "SELECT DISTINCT a.tier FROM client_accounts a JOIN referrals r ON r.id = a.referral_id "
            "WHERE r.status = 'converted'"
        )
    }
    assert {"retail", "hnw", "institutional"} <= tiers
    statuses = {row["status"] for row in await demo.fetch("SELECT DISTINCT status FROM referrals")}
    assert {"eligible", "converted", "funded", "duplicate", "existing_client", "expired", "withdrawn"} <= statuses
    rules = {row["rule"] for row in await demo.fetch("SELECT DISTINCT rule FROM fee_accruals")}
    assert {"funded_bounty", "bundle_fee", "revenue_share", "clawback", "adjustment"} <= rules
    events = {row["type"] for row in await demo.fetch("SELECT DISTINCT type FROM conversion_events")}
    assert len(events) == 7  # every kind of back-office event
    batches = await demo.fetch("SELECT count(*) AS n FROM referral_batches WHERE status = 'completed'")
    assert batches[0]["n"] > 10


async def test_the_data_obeys_the_rules(demo: LoadedDemo) -> None:
    mismatched = await demo.fetch(
        "SELECT s.id FROM statements s LEFT JOIN fee_accruals a ON a.statement_id = s.id GROUP BY s.id "
        "HAVING s.lines_total_fen <> coalesce(sum(a.amount_fen), 0) OR s.line_count <> count(a.id) "
        "OR s.net_fen <> s.lines_total_fen + s.carried_forward_fen"
    )
    assert mismatched == [], "a statement's totals are the sums of its lines"
    unopened = await demo.fetch(
        "SELECT a.id FROM fee_accruals a WHERE a.rule <> 'adjustment' AND NOT EXISTS (SELECT 1 FROM referral_events e "
        "WHERE e.referral_id = a.referral_id AND e.to_status = 'account_opened')"
    )
    assert unopened == [], "no fee line on a referral whose account never opened"
    unconverted = await demo.fetch(
        "SELECT a.id FROM fee_accruals a WHERE a.rule = 'bundle_fee' AND NOT EXISTS (SELECT 1 FROM referral_events e "
        "WHERE e.referral_id = a.referral_id AND e.to_status = 'converted')"
    )
    assert unconverted == [], "no bundle fee on a referral that did not convert"
    unpaid = await demo.fetch(
        "SELECT a.id FROM fee_accruals a JOIN statements s ON s.id = a.statement_id "
        "WHERE s.status = 'paid' AND a.status <> 'paid'"
    )
    assert unpaid == []
    actors = await demo.fetch(
        "SELECT object_id, action, actor_id FROM audit_events "
        "WHERE action IN ('statement.issued', 'statement.approved', 'statement.paid')"
    )
    by_statement: dict[str, dict[str, str]] = {}
    for row in actors:
        by_statement.setdefault(row["object_id"], {})[row["action"]] = row["actor_id"]
    paid = [people for people in by_statement.values() if "statement.paid" in people]
    assert paid
    for people in paid:
        assert people["statement.issued"] != people["statement.approved"] != people["statement.paid"]
        assert people["statement.issued"] != people["statement.paid"]
    open_conflicts = await demo.fetch(
        "SELECT c.id FROM attribution_conflicts c JOIN referrals r ON r.id = c.duplicate_referral_id "
        "WHERE r.status <> 'duplicate'"
    )
    assert open_conflicts == [], "every conflict's later referral is a duplicate (the holder was kept)"


async def test_personal_data_is_fake_but_valid_and_encrypted(demo: LoadedDemo) -> None:
    rows = await demo.fetch(
        "SELECT kind, identifier_ct, identifier_masked, mobile_masked FROM referrals "
        "WHERE identifier_ct IS NOT NULL ORDER BY id LIMIT 300"
    )
    async with demo.database.sessionmaker() as session:
        cipher = await load_cipher(session, demo.settings)
    for row in rows:
        identifier = cipher.decrypt(row["identifier_ct"], "referrals.identifier")
        assert identifier.encode() not in row["identifier_ct"]
        assert row["identifier_masked"] != identifier
        if row["kind"] == "enterprise":
            assert is_valid_credit_code(identifier)
        else:
            assert national_id_birth_date(identifier) is not None
            assert row["mobile_masked"] and "*" in row["mobile_masked"]


async def test_the_next_start_reuses_the_history(demo: LoadedDemo) -> None:
    assert demo.rows_after_second == demo.rows_after_first
    assert all(item["client_secret"] is None for item in demo.second_credentials)
    assert [item["client_id"] for item in demo.second_credentials] == list(demo.secrets)
    print(f"\nfirst load {demo.first_load_s:.1f} s, second load {demo.second_load_s:.2f} s")


def test_the_story_is_the_same_for_the_same_year() -> None:
    start, end = datetime(2025, 11, 30, 16, tzinfo=UTC), datetime(2026, 12, 3, 9, tzinfo=UTC)
    one, two = write_story(start, end), write_story(start, end)
    assert one.events == two.events
    assert [lead.body() for s in one.submissions for lead in s.leads] == [
        lead.body() for s in two.submissions for lead in s.leads
    ]
    assert write_story(start, end, seed=18).events != one.events
