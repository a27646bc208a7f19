"""A manager reads a signal's evidence in Chinese: every key the detectors write — found by running the signal
tests' own scenarios (``test_signals_*``) and reading back the cases they opened — has its name and its Chinese,
and the case page shows those names (rates as percentages, digests shortened), never the raw keys."""

from __future__ import annotations

import html
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from app.console.i18n import chinese_of, translator
from app.console.manager import risk_evidence
from app.risk.detectors import Detected
from app.risk.schemas import SignalKind
from app.risk.sink import MAX_REFERRALS, as_signal
from tests.conftest import Caller
from tests.risk import test_signals_money as money
from tests.risk import test_signals_people as people
from tests.risk import test_signals_volume as volume
from tests.risk.conftest import Raised, signals_on_cases

Scenario = Callable[..., Awaitable[None]]
WORD = re.compile(r"[a-z]+(?:_[a-z]+)+|[a-z]+")  # a detector's word for a value (``within_partner``)
CHINESE = translator("zh")


def _keys(signal: Raised) -> set[tuple[str, str]]:
    """(section, key) of every key of the signal's evidence ("" for a key beside the sections)."""
    keys = set()
    for key, value in signal.evidence.items():
        if key in ("thresholds", "observed") and isinstance(value, dict):
            keys |= {(key, name) for name in value}
        elif key != "items":
            keys.add(("", key))
            keys |= {("", name) for name in value} if isinstance(value, dict) else set()
    return keys


def _value_words(signal: Raised) -> set[str]:
    found = set()
    for section in ("thresholds", "observed"):
        for value in (signal.evidence.get(section) or {}).values():
            for part in value if isinstance(value, list) else [value]:
                if isinstance(part, str) and WORD.fullmatch(part):
                    found.add(part)
    return found


def _evidence_text(page: str, signal_id: str) -> str:
    """What a person reads of one signal's evidence on the case page."""
    start = page.index(f'data-signal="{signal_id}"')
    article = page[start : page.index("</article>", start)]
    return html.unescape(re.sub(r"<[^>]+>", " ", article.split(">", 1)[1]))


async def _check_the_evidence(kind: SignalKind, client: httpx.AsyncClient, manager: Caller, console_as: Any) -> None:
    signals = await signals_on_cases(client, manager)
    assert kind in {signal.kind for signal in signals}, [signal.kind for signal in signals]
    signed_in = await console_as("alliance_manager")
    pages: dict[str, str] = {}
    for signal in signals:
        keys, values = _keys(signal), _value_words(signal)
        unnamed = sorted(
            (section, key)
            for section, key in keys
            if risk_evidence.label(section, key) == key or chinese_of(risk_evidence.label(section, key)) is None
        )
        assert not unnamed, unnamed
        unsaid = sorted(value for value in values if chinese_of(risk_evidence.VALUE.get(value, value)) is None)
        assert not unsaid, unsaid

        if signal.case_id not in pages:
            page = await signed_in.client.get(f"/console/risk-cases/{signal.case_id}")
            assert page.status_code == 200
            pages[signal.case_id] = page.text
        text = _evidence_text(pages[signal.case_id], signal.signal_id)
        for section, key in keys:
            assert CHINESE(risk_evidence.label(section, key)) in text, (section, key)
        raw = ({key for _, key in keys} | values) & set(WORD.findall(text))
        assert not raw, raw
        for section in ("thresholds", "observed"):
            for key, value in (signal.evidence.get(section) or {}).items():
                if key.endswith("_bp"):
                    assert f"{value / 100:.1f}%" in text, (key, value)
        for item in signal.evidence.get("items") or []:
            digest = item.split(":", 1)[1]
            assert f"{digest[:12]}…" in text and digest not in text


def _checked(kind: SignalKind, scenario: Scenario) -> Scenario:
    """``scenario`` (a signal test, with its fixtures), then the evidence of every case it opened, read back."""
    wanted = inspect.signature(scenario).parameters
    extra = [name for name in ("client", "manager", "console_as") if name not in wanted]

    async def run(**fixtures: Any) -> None:
        await scenario(**{name: fixtures[name] for name in wanted})
        await _check_the_evidence(kind, fixtures["client"], fixtures["manager"], fixtures["console_as"])

    parameters = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in [*wanted, *extra]]
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # the fixtures pytest gives
    run.kind = kind  # type: ignore[attr-defined]
    return run


test_evidence_of_one_mobile_within_a_partner = _checked(
    SignalKind.shared_mobile, people.test_one_mobile_on_three_identities_of_one_partner
)
test_evidence_of_one_mobile_across_partners = _checked(SignalKind.shared_mobile, people.test_one_mobile_across_partners)
test_evidence_of_a_burst = _checked(
    SignalKind.referral_burst, volume.test_a_burst_far_above_the_partners_own_busiest_day
)
test_evidence_of_reused_consent = _checked(
    SignalKind.reused_consent, people.test_consent_evidence_reused_across_clients
)
test_evidence_of_accounts_emptied = _checked(
    SignalKind.funded_then_emptied, money.test_accounts_funded_then_emptied_or_closed_inside_the_hold
)
test_evidence_of_bundle_churn = _checked(
    SignalKind.bundle_churn, money.test_bundles_cancelled_in_the_cooling_off_period_again_and_again
)
test_evidence_of_an_existing_client_rate = _checked(
    SignalKind.outlier_rates, volume.test_an_existing_client_rate_far_above_the_peers
)
test_evidence_of_a_rejection_rate = _checked(SignalKind.outlier_rates, volume.test_a_rejection_rate_far_above_the_peers)


def test_the_scenarios_cover_every_signal_kind() -> None:
    covered = {kind for name, test in globals().items() if name.startswith("test_evidence_of_") for kind in [test.kind]}
    assert covered == set(SignalKind)


def test_a_signal_naming_too_many_referrals_says_so_in_chinese() -> None:
    found = Detected(
        "referral_burst", "ptn_x", tuple(f"ref_{n}" for n in range(MAX_REFERRALS + 1)), {"observed": {}}, "f"
    )
    evidence = as_signal(found).evidence
    beside = {key for key in evidence if key not in risk_evidence.SECTIONS}
    assert beside == {"referrals_named"}
    [row] = risk_evidence.evidence_view(evidence, CHINESE).others
    assert row.label == "列明的推荐数" and row.value == "发现数: 10,001; 列明数: 10,000"


def test_an_unknown_key_is_shown_as_it_is_after_the_known_ones() -> None:
    view = risk_evidence.evidence_view({"observed": {"mystery_figure": 1234, "rate_bp": 1250}}, CHINESE)
    assert [(row.label, row.value) for row in view.observed] == [("比率", "12.5%"), ("mystery_figure", "1,234")]
