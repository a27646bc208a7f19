"""Money: integer fen, Decimal arithmetic, and the one rounding rule (half up, to the fen, on each line).

Python's ``round`` rounds half to even and PostgreSQL's ``round`` half away from zero; money is rounded here
only, with ``ROUND_HALF_UP`` (halves away from zero, as ``Decimal`` defines it).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

BASIS_POINTS = 10_000


def to_fen(value: Decimal) -> int:
    """Round an exact amount in fen to a whole fen, half up."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def basis_points_of(amount_fen: int, bps: int) -> int:
    """``bps`` basis points of ``amount_fen``, rounded to the fen."""
    return to_fen(Decimal(amount_fen) * bps / BASIS_POINTS)


def vat_on_net(net_fen: int, rate_bp: int) -> int:
    """VAT added on top of a VAT-exclusive amount."""
    return basis_points_of(net_fen, rate_bp)


def vat_within_gross(gross_fen: int, rate_bp: int) -> int:
    """The VAT contained in a VAT-inclusive amount: gross x rate / (1 + rate)."""
    return to_fen(Decimal(gross_fen) * rate_bp / (BASIS_POINTS + rate_bp))


def clamp(amount_fen: int, minimum: int | None, maximum: int | None) -> int:
    if minimum is not None:
        amount_fen = max(amount_fen, minimum)
    if maximum is not None:
        amount_fen = min(amount_fen, maximum)
    return amount_fen
