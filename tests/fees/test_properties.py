"""Properties of the accrual engine over random event histories (no database: the lifecycle and the engine are
pure once their rows are loaded)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.catalog.models import FeeSchedule, FeeScheduleStatus, Program
from app.catalog.schemas import FeeRules
from app.conversions.lifecycle import Lifecycle, ProgramTerms
from app.conversions.models import ClientAccount, ConversionEvent, EventStatus, EventType
from app.core.business_time import business_month
from app.fees.engine import CAPPED_RULES, Accrual, _Context
from app.fees.models import AccrualStatus, FeeRule
from app.referrals.models import Referral, ReferralStatus

T0 = datetime(2026, 1, 10, tzinfo=UTC)
PRODUCT = "BANK_WM_PLUS_EQUITY"

money = st.integers(min_value=0, max_value=10**10)
event_kinds = st.sampled_from(
    ["account_funded", "assets_snapshot", "bundle_purchased", "bundle_cancelled", "revenue_recorded", "account_closed"]
)
histories = st.lists(st.tuples(event_kinds, st.integers(min_value=0, max_value=400), money), min_size=1, max_size=25)
caps = st.fixed_dictionaries(
    {"per_referral_fen": st.none() | st.integers(0, 10**6), "per_partner_month_fen": st.none() | st.integers(0, 10**6)}
)


def _rules(cap: dict[str, int | None]) -> FeeRules:
    return FeeRules.model_validate(
        {
            "funded_bounty": {
                "min_assets_fen": 1_000_000,
                "by_tier": {"retail": 20_000, "hnw": 150_000, "institutional": 500_000},
            },
            "bundle_fees": [{"product_code": PRODUCT, "flat_fen": 1_000, "bps": 37, "max_fen": 400_000}],
            "revenue_share": {"bps": 1_250, "months": 6},
            "caps": cap,
        }
    )


def _run(
    history: list[tuple[str, int, int]], cap: dict[str, int | None], clients: int, now: datetime, hold_days: int = 30
) -> list:  # type: ignore[type-arg]
    program = Program(
        id="prg",
        partner_id="ptn",
        name="p",
        channel="vip_referral",
        effective_from=date(2025, 1, 1),
        hold_period_days=hold_days,
    )
    rules = _rules(cap)
    schedule = FeeSchedule(
        id="fee",
        program_id="prg",
        version=1,
        status=FeeScheduleStatus.active,
        effective_from=date(2025, 1, 1),
        rules=rules.model_dump(),
    )
    referrals, accounts, events = {}, {}, []
    for index in range(clients):
        referral = Referral(
            id=f"ref{index}",
            partner_id="ptn",
            program_id="prg",
            external_ref=f"R{index}",
            kind="vip",
            status=ReferralStatus.eligible,
            identity_hash=f"id{index}".encode(),
            window_ends_at=T0 + timedelta(days=90),
            created_at=T0 - timedelta(days=1),
        )
        referrals[referral.id] = referral
        accounts[f"C{index}"] = ClientAccount(client_ref=f"C{index}")
        events.append(
            ConversionEvent(
                id=f"open{index}",
                source_event_id=f"open{index}",
                type=EventType.account_opened,
                occurred_at=T0,
                client_ref=f"C{index}",
                identity_hash=f"id{index}".encode(),
                status=EventStatus.deferred,
                effects={},
            )
        )
    for position, (kind, day, amount) in enumerate(history):
        client = f"C{position % clients}"
        events.append(
            ConversionEvent(
                id=f"e{position}",
                source_event_id=f"e{position}",
                type=EventType(kind),
                occurred_at=T0 + timedelta(days=day, seconds=position),
                client_ref=client,
                amount_fen=None if kind == "account_closed" else amount,
                currency=None if kind == "account_closed" else "CNY",
                product_code=PRODUCT if kind.startswith("bundle") else None,
                status=EventStatus.deferred,
                effects={},
            )
        )
    events.sort(key=lambda event: (event.occurred_at, event.type is not EventType.account_opened))
    lifecycle = Lifecycle(
        accounts=accounts,
        referrals_by_identity={referral.identity_hash: referral for referral in referrals.values()},
        referrals_by_id=dict(referrals),
        terms={"prg": ProgramTerms(90, frozenset({PRODUCT}))},
    )
    for event in events:
        lifecycle.apply(event, now)
    context = _Context({"prg": program}, {"prg": [schedule]}, {"fee": rules}, {}, {}, {})
    accrual = Accrual(context, accounts, now)
    for event in events:
        if event.status is EventStatus.applied and event.referral_id:
            accrual.on_event(event, referrals[event.referral_id])
    return accrual.lines


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, caps, st.integers(min_value=1, max_value=3))
def test_caps_are_never_exceeded_and_money_is_integral(history, cap, clients) -> None:  # type: ignore[no-untyped-def]
    lines = _run(history, cap, clients, now=T0 + timedelta(days=500))
    by_referral: dict[str, int] = defaultdict(int)
    by_month: dict[str, int] = defaultdict(int)
    for line in lines:
        assert type(line.amount_fen) is int
        if line.rule in CAPPED_RULES and line.status is not AccrualStatus.reversed:
            by_referral[line.referral.id] += line.amount_fen
            by_month[business_month(line.occurred_at)] += line.amount_fen
    if cap["per_referral_fen"] is not None:
        assert all(total <= cap["per_referral_fen"] for total in by_referral.values())
    if cap["per_partner_month_fen"] is not None:
        assert all(total <= cap["per_partner_month_fen"] for total in by_month.values())
    assert all(total >= 0 for total in by_referral.values())


@settings(max_examples=150, deadline=None)
@given(histories, caps)
def test_a_clawback_cancels_its_line_exactly_and_at_most_once(history, cap) -> None:  # type: ignore[no-untyped-def]
    # Holds run from when a line is recorded: with no hold every line is payable (a clawback deducts), with a
    # hold every line is in it (a clawback cancels).
    for hold_days in (0, 30):
        lines = _run(history, cap, 1, now=T0 + timedelta(days=500), hold_days=hold_days)
        by_id = {line.id: line for line in lines}
        clawed: set[str] = set()
        for line in lines:
            if line.rule is not FeeRule.clawback:
                continue
            assert line.reverses_id not in clawed
            clawed.add(line.reverses_id)
            original = by_id[line.reverses_id]
            cuts = sum(
                other.amount_fen for other in lines if other.rule is FeeRule.cap and other.reverses_id == original.id
            )
            assert line.amount_fen == -(original.amount_fen + cuts)
            if line.status is AccrualStatus.reversed:
                assert original.status is AccrualStatus.reversed  # cancelled during its hold, both sides


@settings(max_examples=50, deadline=None)
@given(histories, caps)
def test_accrual_is_deterministic(history, cap) -> None:  # type: ignore[no-untyped-def]
    first = [(line.source_key, line.amount_fen) for line in _run(history, cap, 2, now=T0 + timedelta(days=500))]
    again = [(line.source_key, line.amount_fen) for line in _run(history, cap, 2, now=T0 + timedelta(days=500))]
    assert first == again
    assert len({key for key, _ in first}) == len(first)  # one line per (event, rule): replays insert nothing
