"""Attribution overrides at any stage (DESIGN.md, "Attribution override after conversion (clarified)"), end to end
through the public API: bank A holds and converts a client, fees accrue and are paid, an alliance manager gives the
client to bank B. A's fees are reversed by ``attribution_moved`` lines, B accrues from the same events under its
own schedule, both see it on their next statements, timelines and webhooks say why, the audit log says who."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.fees.engine import release_held
from app.referrals.service import erase_unconverted
from tests.factories.referrals import national_id
from tests.referrals.alliance import PRODUCT, Alliance, at

E = Alliance.event
# What each bank's schedule pays for the client's events below (fen).
FUNDED_A, BUNDLE_A, REVENUE_A, LATE_REVENUE_A = 20_000, 40_000, 1_235, 500  # 10,000 + 0.3% of 10,000,000
FUNDED_B, BUNDLE_B, REVENUE_B, LATE_REVENUE_B = 35_000, 45_000, 617, 250  # 0.5% of 10,000,000 = 50,000 > max


async def _two_claims(alliance: Alliance) -> tuple[dict[str, Any], dict[str, Any], str]:
    person = national_id()
    first = await alliance.refer(alliance.bank_a, person)
    later = await alliance.refer(alliance.bank_b, person)
    assert (first["status"], later["status"]) == ("eligible", "duplicate")
    await alliance.received(first["id"], at(5, 1))
    await alliance.received(later["id"], at(5, 2))
    return first, later, person


async def _converts(alliance: Alliance, person: str, client_ref: str) -> None:
    await alliance.feed(
        at(5, 5),
        E("account_opened", client_ref, at(5, 5), national_id=person),
        E("account_funded", client_ref, at(5, 5, 11), amount=2_000_000, currency="CNY"),
    )
    await alliance.feed(
        at(5, 6), E("bundle_purchased", client_ref, at(5, 6), product_code=PRODUCT, amount=10_000_000, currency="CNY")
    )
    await alliance.feed(at(5, 20), E("revenue_recorded", client_ref, at(5, 20), amount=12_345, currency="CNY"))


async def test_a_converted_client_moves_with_its_fees_to_the_other_bank(alliance: Alliance) -> None:
    a, b = alliance.bank_a, alliance.bank_b
    first, later, person = await _two_claims(alliance)
    await _converts(alliance, person, "C-MOVE")
    assert await alliance.status(a, first["id"]) == "converted"
    a_lines = await alliance.ledger(first["id"])
    assert sorted(line.amount_fen for line in a_lines) == sorted([FUNDED_A, BUNDLE_A, REVENUE_A])

    # June is closed, A's statement issued, approved and paid (four eyes: three people).
    first_finance, second_finance, third_finance = alliance.finance
    alliance.now = at(7, 2)
    june = await first_finance.statement_of("2026-06", a.partner.id)
    assert june["lines_total_fen"] == FUNDED_A + BUNDLE_A + REVENUE_A
    await first_finance.act(june["id"], "issue")
    await second_finance.act(june["id"], "approve")
    await third_finance.act(june["id"], "mark-paid", payment_ref="TRF-0001")
    # A line still in its hold period when the attribution moves.
    await alliance.feed(at(7, 5), E("revenue_recorded", "C-MOVE", at(7, 5), amount=5_000, currency="CNY"))

    # The manager resolves the conflict for B, two months after the conversion.
    alliance.now = at(7, 10)
    conflicts = (
        await alliance.client.get("/v1/admin/conflicts", params={"status": "open"}, headers=alliance.manager.headers)
    ).json()["data"]
    [conflict] = [item for item in conflicts if item["duplicate_referral_id"] == later["id"]]
    resolved = await alliance.client.post(
        f"/v1/admin/conflicts/{conflict['id']}/resolve",
        json={"resolution": "award_duplicate", "reason": "bank B holds the earlier signed consent"},
        headers=alliance.manager.headers,
    )
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["resolution"]) == ("resolved", "award_duplicate")
    assert resolved.json()["duplicate"]["status"] == "converted" and resolved.json()["holding"]["status"] == "duplicate"

    # Statuses and timelines: A lost it, B follows the client's events; the cause is on every entry.
    assert await alliance.status(a, first["id"]) == "duplicate"
    assert await alliance.status(b, later["id"]) == "converted"
    [lost] = [entry for entry in await alliance.timeline(a, first["id"]) if entry["to_status"] == "duplicate"]
    assert (lost["from_status"], lost["cause"]) == ("converted", "attribution_moved")
    assert later["id"] not in str(lost["details"]) and b.partner.id not in str(lost["details"])
    moved_in = [entry for entry in await alliance.timeline(b, later["id"]) if entry["cause"] == "attribution_moved"]
    assert [(entry["from_status"], entry["to_status"]) for entry in moved_in] == [
        ("duplicate", "eligible"),
        ("eligible", "account_opened"),
        ("account_opened", "funded"),
        ("funded", "converted"),
    ]
    # Both banks' webhooks carry the move.
    told_a = await alliance.deliveries(a.partner.id)
    assert ("converted", "duplicate", "attribution_moved") in {
        (notice["from_status"], notice["to_status"], notice["cause"]) for notice in told_a
    }
    told_b = [notice for notice in await alliance.deliveries(b.partner.id) if notice["cause"] == "attribution_moved"]
    assert sorted((notice["from_status"], notice["to_status"]) for notice in told_b) == sorted(
        (entry["from_status"], entry["to_status"]) for entry in moved_in
    )

    # The funnels: the conversion is B's, not A's too.
    for desk, converted in ((a, 0), (b, 1)):
        funnel = await alliance.client.get(
            "/v1/reports/funnel", params={"from": "2026-05-01", "to": "2026-05-31"}, headers=desk.caller.headers
        )
        assert funnel.status_code == 200, funnel.text
        counts = funnel.json()["total"]["counts"]
        assert (counts["received"], counts["converted"], counts["funded"]) == (1, converted, converted)

    # A's ledger nets to zero: paid lines reversed by payable attribution_moved lines, the held one cancelled.
    a_lines = await alliance.ledger(first["id"])
    assert sum(line.amount_fen for line in a_lines) == 0 and await alliance.standing_fen(first["id"]) == 0
    reversals = {line.reverses_id: line for line in a_lines if line.rule == "attribution_moved"}
    originals = [line for line in a_lines if line.rule != "attribution_moved"]
    assert {line.id for line in originals} == set(reversals)
    for original in originals:
        reversal = reversals[original.id]
        assert reversal.amount_fen == -original.amount_fen
        assert reversal.arithmetic["reason"] == "attribution_moved"
        expected = ("paid", "payable") if original.amount_fen != LATE_REVENUE_A else ("reversed", "reversed")
        assert (str(original.status), str(reversal.status)) == expected
    # B's ledger: the same events, B's schedule.
    b_lines = await alliance.ledger(later["id"])
    assert sorted(line.amount_fen for line in b_lines) == sorted([FUNDED_B, BUNDLE_B, REVENUE_B, LATE_REVENUE_B])
    assert {line.conversion_event_id for line in b_lines} == {line.conversion_event_id for line in originals}
    assert {line.partner_id for line in b_lines} == {b.partner.id}
    assert {line.external_ref for line in b_lines} == {later["external_ref"]}

    # The audit log names the person and the reason.
    audited = (await alliance.session.scalars(select(AuditEvent).where(AuditEvent.action == "attribution.moved"))).one()
    assert audited.actor_id == alliance.manager.client.id and audited.object_id == later["id"]
    assert audited.details["reason"] == "bank B holds the earlier signed consent"
    assert (audited.details["from_referral_id"], audited.details["conflict_id"]) == (first["id"], conflict["id"])
    assert audited.details["reversed_fen"] == -(FUNDED_A + BUNDLE_A + REVENUE_A + LATE_REVENUE_A)

    # The next statements: A's shows the reversal of what it was paid; B's (once its lines are due) B's fees.
    alliance.now = at(8, 2)
    closed = await first_finance.close("2026-07")
    july = {statement["partner_id"]: statement for statement in closed["statements"]}
    assert july[a.partner.id]["lines_total_fen"] == -(FUNDED_A + BUNDLE_A + REVENUE_A)
    assert july[a.partner.id]["vat_fen"] == 0
    await first_finance.act(july[a.partner.id]["id"], "issue")
    seen = await alliance.client.get(f"/v1/statements/{july[a.partner.id]['id']}/lines", headers=a.caller.headers)
    assert sorted((line["rule"], line["amount_fen"]) for line in seen.json()["data"]) == sorted(
        ("attribution_moved", -amount) for amount in (FUNDED_A, BUNDLE_A, REVENUE_A)
    )
    alliance.now = at(9, 2)
    closed = await first_finance.close("2026-08")
    b_statements = [
        statement for statement in [*july.values(), *closed["statements"]] if statement["partner_id"] == b.partner.id
    ]
    assert sum(statement["lines_total_fen"] for statement in b_statements) == (
        FUNDED_B + BUNDLE_B + REVENUE_B + LATE_REVENUE_B
    )
    assert a.partner.id not in {statement["partner_id"] for statement in closed["statements"]}


async def test_overriding_twice_and_back_never_counts_a_fee_twice(alliance: Alliance) -> None:
    first, later, person = await _two_claims(alliance)
    await _converts(alliance, person, "C-BACK")
    a_fees = await alliance.earned(first["id"])
    assert sum(a_fees.values()) == FUNDED_A + BUNDLE_A + REVENUE_A

    # Moves a month apart, after the daily job released what was due: lines past their hold move too.
    await release_held(alliance.session, at(7, 1))
    moved = await alliance.award(later["id"], at(7, 1))
    assert (moved["moved"], moved["previous_holder_id"]) == (True, first["id"])
    assert moved["referral"]["status"] == "converted"
    assert moved["reversed"]["net_fen"] == -(FUNDED_A + BUNDLE_A + REVENUE_A)
    assert moved["accrued"]["net_fen"] == FUNDED_B + BUNDLE_B + REVENUE_B
    b_fees = await alliance.earned(later["id"])
    lines_after_move = len(await alliance.ledger(first["id"])) + len(await alliance.ledger(later["id"]))

    again = await alliance.award(later["id"], at(7, 2))
    assert (again["moved"], again["reversed"]["lines"], again["accrued"]["lines"]) == (False, 0, 0)
    assert len(await alliance.ledger(first["id"])) + len(await alliance.ledger(later["id"])) == lines_after_move

    await release_held(alliance.session, at(8, 5))
    back = await alliance.award(first["id"], at(8, 5))
    assert (back["moved"], back["referral"]["status"]) == (True, "converted")
    assert back["reversed"]["net_fen"] == -(FUNDED_B + BUNDLE_B + REVENUE_B)
    assert await alliance.earned(first["id"]) == a_fees and await alliance.standing_fen(later["id"]) == 0
    assert await alliance.status(alliance.bank_b, later["id"]) == "duplicate"

    await release_held(alliance.session, at(9, 10))
    forth = await alliance.award(later["id"], at(9, 10))
    assert forth["accrued"]["net_fen"] == FUNDED_B + BUNDLE_B + REVENUE_B
    assert await alliance.earned(later["id"]) == b_fees and await alliance.standing_fen(first["id"]) == 0
    moved_out = [line for line in await alliance.ledger(later["id"]) if line.rule == "attribution_moved"]
    assert moved_out and {str(line.status) for line in moved_out} == {"payable"}

    # What happens to the client next concerns the holder only, and only what it holds now.
    await alliance.feed(at(9, 20), E("account_closed", "C-BACK", at(9, 20)))
    assert await alliance.standing_fen(later["id"]) == 0 and await alliance.standing_fen(first["id"]) == 0
    clawbacks = [line for line in await alliance.ledger(later["id"]) if line.rule == "clawback"]
    assert sorted(line.amount_fen for line in clawbacks) == sorted([-FUNDED_B, -BUNDLE_B, -REVENUE_B])
    assert not [line for line in await alliance.ledger(first["id"]) if line.rule == "clawback"]


@pytest.mark.parametrize("stage", ["eligible", "account_opened", "funded", "converted"])
async def test_the_attribution_moves_at_every_stage(alliance: Alliance, stage: str) -> None:
    first, later, person = await _two_claims(alliance)
    reached: list[dict[str, Any]] = []
    if stage != "eligible":
        reached.append(E("account_opened", "C-STAGE", at(5, 5), national_id=person))
    if stage in ("funded", "converted"):
        reached.append(E("account_funded", "C-STAGE", at(5, 5, 11), amount=2_000_000, currency="CNY"))
    if stage == "converted":
        reached.append(
            E("bundle_purchased", "C-STAGE", at(5, 5, 12), product_code=PRODUCT, amount=10_000_000, currency="CNY")
        )
    if reached:
        await alliance.feed(at(5, 5, 12), *reached)
    assert await alliance.status(alliance.bank_a, first["id"]) == stage

    moved = await alliance.award(later["id"], at(5, 10))
    assert (moved["moved"], moved["referral"]["status"]) == (True, stage)
    assert await alliance.status(alliance.bank_a, first["id"]) == "duplicate"
    assert await alliance.standing_fen(first["id"]) == 0
    expected_b = {"eligible": 0, "account_opened": 0, "funded": FUNDED_B, "converted": FUNDED_B + BUNDLE_B}[stage]
    assert await alliance.standing_fen(later["id"]) == expected_b
    timeline = await alliance.timeline(alliance.bank_b, later["id"])
    assert timeline[-1]["to_status"] == stage and timeline[-1]["cause"] == "attribution_moved"

    # The client's next events are B's.
    if stage == "eligible":
        await alliance.feed(
            at(5, 12),
            E("account_opened", "C-STAGE", at(5, 12), national_id=person),
            E("account_funded", "C-STAGE", at(5, 12, 11), amount=2_000_000, currency="CNY"),
        )
        assert await alliance.status(alliance.bank_b, later["id"]) == "funded"
        expected_b = FUNDED_B
    else:
        await alliance.feed(at(5, 12), E("revenue_recorded", "C-STAGE", at(5, 12), amount=10_000, currency="CNY"))
        expected_b += 500
    assert await alliance.standing_fen(later["id"]) == expected_b
    assert await alliance.standing_fen(first["id"]) == 0


async def test_what_cannot_take_an_attribution_over_is_refused_and_changes_nothing(alliance: Alliance) -> None:
    first, later, _ = await _two_claims(alliance)
    withdrawn = await alliance.client.post(
        f"/v1/referrals/{later['id']}/withdraw", json={"reason": "client_request"}, headers=alliance.bank_b.headers()
    )
    assert withdrawn.status_code == 200, withdrawn.text
    refused = await alliance.award(later["id"], at(5, 10), expect=409)
    assert refused["type"].endswith("/attribution-not-movable") and "withdrawn" in refused["detail"]
    assert await alliance.status(alliance.bank_a, first["id"]) == "eligible"
    assert (await alliance.award("ref_missing", at(5, 10), expect=404))["status"] == 404
    blank = await alliance.client.post(
        f"/v1/admin/referrals/{first['id']}/award", json={"reason": ""}, headers=alliance.manager.headers
    )
    assert blank.status_code == 422
    as_partner = await alliance.client.post(
        f"/v1/admin/referrals/{first['id']}/award", json={"reason": "mine"}, headers=alliance.bank_a.caller.headers
    )
    assert as_partner.status_code == 403
    assert not (
        await alliance.session.scalars(select(AuditEvent).where(AuditEvent.action == "attribution.moved"))
    ).all()


async def test_a_duplicate_whose_personal_data_is_erased_cannot_be_matched_any_more(alliance: Alliance) -> None:
    first, later, _ = await _two_claims(alliance)
    await erase_unconverted(alliance.session, timedelta(0), now=datetime.now(UTC) + timedelta(minutes=1))
    refused = await alliance.award(later["id"], at(5, 10), expect=409)
    assert refused["type"].endswith("/attribution-not-movable") and "erased" in refused["detail"]
    assert await alliance.status(alliance.bank_a, first["id"]) == "eligible"
    assert await alliance.status(alliance.bank_b, later["id"]) == "duplicate"
