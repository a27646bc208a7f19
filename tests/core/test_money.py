from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from app.core.money import basis_points_of, clamp, to_fen, vat_on_net, vat_within_gross


def test_half_up_not_half_even() -> None:
    assert to_fen(Decimal("2.5")) == 3
    assert to_fen(Decimal("3.5")) == 4
    assert to_fen(Decimal("-2.5")) == -3
    assert to_fen(Decimal("2.4999")) == 2
    assert basis_points_of(50, 1_000) == 5
    assert basis_points_of(25, 2_000) == 5
    assert basis_points_of(5, 1_000) == 1  # 0.5 fen rounds up


def test_vat() -> None:
    assert vat_on_net(10_000, 600) == 600
    assert vat_within_gross(10_600, 600) == 600
    assert vat_within_gross(1, 600) == 0


@given(st.integers(min_value=-(10**15), max_value=10**15), st.integers(min_value=0, max_value=10_000))
def test_basis_points_are_exact_integers_within_half_a_fen(amount: int, bps: int) -> None:
    result = basis_points_of(amount, bps)
    assert isinstance(result, int)
    assert abs(Decimal(result) - Decimal(amount) * bps / 10_000) <= Decimal("0.5")


@given(st.integers(), st.none() | st.integers(max_value=0), st.none() | st.integers(min_value=1))
def test_clamp_stays_within_bounds(amount: int, low: int | None, high: int | None) -> None:
    result = clamp(amount, low, high)
    assert low is None or result >= low
    assert high is None or result <= high
