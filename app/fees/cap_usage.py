"""What each partner's lines use of its monthly cap (``fee_cap_usage``), kept exact by every write of a capped line.

A partner's monthly cap is shared by all its referrals: the calls accruing into one (partner, business month) are
serialised by the lock on that month's usage row, taken for all the months of a call at once and in key order (so
that calls taking several never deadlock), and the usage is read in the same statement. Whoever then writes capped
lines (``CAPPED_RULES``: earnings, cap cuts, attribution moves), or reverses them, adds their amounts here in the
same transaction.

The conversion feed reads the usage without locking it and checks it at the end instead (``UsageBounds``): each
line it decides notes the range of starting usage of its month within which the decision stays the same; at the
end the month rows are locked in key order and the call's usage added where each row is still in its range, in one
statement. A row outside its range (a concurrent writer changed it meanwhile) makes the call decide its lines again,
under the locks it now holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.business_time import business_month
from app.fees.models import AccrualStatus, FeeRule

EARNING_RULES = (FeeRule.funded_bounty, FeeRule.tier_top_up, FeeRule.bundle_fee, FeeRule.revenue_share)
# What counts against a cap: earnings net of earlier cuts, and of what an attribution move took away.
CAPPED_RULES = (*EARNING_RULES, FeeRule.cap, FeeRule.attribution_moved)

PartnerMonth = tuple[str, str]

# The upsert takes each row's lock (inserting it at zero when the month is new) and returns what it holds; rows
# are taken in the order of the keys.
_LOCK = sa.text(
    """
    INSERT INTO fee_cap_usage AS u (partner_id, month, used_fen)
    SELECT k.partner_id, k.month, 0
    FROM unnest(CAST(:partners AS varchar[]), CAST(:months AS varchar[])) AS k(partner_id, month)
    ORDER BY k.partner_id, k.month
    ON CONFLICT (partner_id, month) DO UPDATE SET used_fen = u.used_fen
    RETURNING u.partner_id, u.month, u.used_fen
    """
)

_ADD = sa.text(
    """
    INSERT INTO fee_cap_usage AS u (partner_id, month, used_fen)
    SELECT d.partner_id, d.month, d.delta
    FROM unnest(CAST(:partners AS varchar[]), CAST(:months AS varchar[]), CAST(:deltas AS bigint[]))
         AS d(partner_id, month, delta)
    ORDER BY d.partner_id, d.month
    ON CONFLICT (partner_id, month) DO UPDATE SET used_fen = u.used_fen + EXCLUDED.used_fen
    """
)


_READ = sa.text(
    """
    SELECT u.partner_id, u.month, u.used_fen
    FROM unnest(CAST(:partners AS varchar[]), CAST(:months AS varchar[])) AS k(partner_id, month)
    JOIN fee_cap_usage AS u ON u.partner_id = k.partner_id AND u.month = k.month
    """
)

# Each row locked in key order (inserted with the delta when the month is new: a missing row was missing when read,
# and zero is in range), the delta added only where the row holds a usage in its range; returns the rows added to.
_ADD_WITHIN = sa.text(
    """
    WITH k AS (
        SELECT * FROM unnest(CAST(:partners AS varchar[]), CAST(:months AS varchar[]), CAST(:deltas AS bigint[]),
                             CAST(:lows AS bigint[]), CAST(:highs AS bigint[]))
                      AS k(partner_id, month, delta, low, high)
    )
    INSERT INTO fee_cap_usage AS u (partner_id, month, used_fen)
    SELECT k.partner_id, k.month, k.delta FROM k ORDER BY k.partner_id, k.month
    ON CONFLICT (partner_id, month) DO UPDATE SET used_fen = u.used_fen + EXCLUDED.used_fen
    WHERE u.used_fen BETWEEN (SELECT k.low FROM k WHERE k.partner_id = u.partner_id AND k.month = u.month)
                         AND (SELECT k.high FROM k WHERE k.partner_id = u.partner_id AND k.month = u.month)
    RETURNING u.partner_id, u.month
    """
)

_LOWEST, _HIGHEST = -(2**62), 2**62  # no bound: within bigint


@dataclass
class UsageBounds:
    """The range of each (partner, month)'s starting usage within which a call's cap decisions all stay as they
    were made (from ``assumed``, the usage read). Only months whose monthly cap a decision consulted have one."""

    assumed: Mapping[PartnerMonth, int]
    ranges: dict[PartnerMonth, tuple[int, int]] = field(default_factory=dict)

    def note(
        self,
        key: PartnerMonth,
        cap: int,
        added: int,
        other: int,
        allowed: int,
        referral_room_after: int | None,
        least_room_is_referral: bool | None,
    ) -> None:
        """One line's decision: ``allowed`` of it under the monthly ``cap`` with ``added`` already added to the
        month by the call, ``other`` the least of the line and its other caps' room; and, for a cut line, which
        cap is named as leaving the least room (``referral_room_after`` the per-referral room then, if any)."""
        start = self.assumed.get(key, 0)
        low, high = self.ranges.get(key, (_LOWEST, _HIGHEST))
        room = cap - start - added
        if other > 0:
            if room >= other:  # the monthly cap did not bind: it still must not
                high = min(high, cap - added - other)
            elif room <= 0:  # nothing allowed: the month must stay full
                low = max(low, cap - added)
            else:  # the monthly cap set the amount: exactly this usage
                low, high = max(low, start), min(high, start)
        if referral_room_after is not None and least_room_is_referral is not None:
            threshold = cap - added - allowed - referral_room_after  # the month's room equals the referral's there
            if least_room_is_referral:
                high = min(high, threshold)
            else:
                low = max(low, threshold + 1)
        self.ranges[key] = (low, high)


def partner_months(moments: Iterable[tuple[str, datetime]]) -> list[PartnerMonth]:
    """The (partner, business month)s of these (partner, instant)s, in key order."""
    return sorted({(partner_id, business_month(moment)) for partner_id, moment in moments})


async def lock_cap_usage(session: AsyncSession, keys: Iterable[PartnerMonth]) -> dict[PartnerMonth, int]:
    """Lock these (partner, month)s' usage until the transaction ends; returns what each uses (fen)."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    rows = await session.execute(
        _LOCK, {"partners": [key[0] for key in ordered], "months": [key[1] for key in ordered]}
    )
    return {(row[0], row[1]): int(row[2]) for row in rows.all()}


async def read_cap_usage(session: AsyncSession, keys: Iterable[PartnerMonth]) -> dict[PartnerMonth, int]:
    """What these (partner, month)s use, without locking them (a month never used has no row: zero)."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    rows = await session.execute(
        _READ, {"partners": [key[0] for key in ordered], "months": [key[1] for key in ordered]}
    )
    return {(row[0], row[1]): int(row[2]) for row in rows.all()}


async def add_cap_usage_within(
    session: AsyncSession, deltas: Mapping[PartnerMonth, int], bounds: UsageBounds
) -> set[PartnerMonth]:
    """Lock these months' rows (in key order) and add each delta where the row's usage is in its bounds, in one
    statement; returns the months added to (all of them unless a concurrent writer moved one out of bounds)."""
    keys = sorted({*deltas, *bounds.ranges})
    if not keys:
        return set()
    ranges = [bounds.ranges.get(key, (_LOWEST, _HIGHEST)) for key in keys]
    rows = await session.execute(
        _ADD_WITHIN,
        {
            "partners": [key[0] for key in keys],
            "months": [key[1] for key in keys],
            "deltas": [deltas.get(key, 0) for key in keys],
            "lows": [low for low, _ in ranges],
            "highs": [high for _, high in ranges],
        },
    )
    return {(row[0], row[1]) for row in rows.all()}


def usage_deltas(lines: Iterable[tuple[str, datetime, int]]) -> dict[PartnerMonth, int]:
    """These (partner, occurred_at, amount)s summed by (partner, business month)."""
    deltas: dict[PartnerMonth, int] = defaultdict(int)
    for partner_id, moment, amount in lines:
        deltas[(partner_id, business_month(moment))] += amount
    return deltas


def capped(rule: FeeRule, status: AccrualStatus) -> bool:
    """Whether a line of this rule and status counts against its partner's monthly cap."""
    return rule in CAPPED_RULES and status is not AccrualStatus.reversed


async def add_cap_usage(session: AsyncSession, lines: Iterable[tuple[str, datetime, int]]) -> None:
    """Add these (partner, occurred_at, amount) to their months' usage, in one statement: lines written that count
    against the cap (positive or negative), or the opposite of lines that stopped counting (reversed)."""
    await add_usage_deltas(session, usage_deltas(lines))


async def add_usage_deltas(session: AsyncSession, deltas: Mapping[PartnerMonth, int]) -> None:
    """Add these deltas to their (partner, month)s' usage, in one statement (none if all are zero)."""
    keys = sorted(key for key, delta in deltas.items() if delta)
    if not keys:
        return
    await session.execute(
        _ADD,
        {
            "partners": [key[0] for key in keys],
            "months": [key[1] for key in keys],
            "deltas": [deltas[key] for key in keys],
        },
    )
