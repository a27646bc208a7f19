"""What each partner's lines use of its monthly cap (``fee_cap_usage``), kept exact by every write of a capped line.

A partner's monthly cap is shared by all its referrals: the calls accruing into one (partner, business month) are
serialised by the lock on that month's usage row, taken for all the months of a call at once and in key order (so
that calls taking several never deadlock), and the usage is read in the same statement. Whoever then writes capped
lines (``CAPPED_RULES``: earnings, cap cuts, attribution moves), or reverses them, adds their amounts here in the
same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
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


def capped(rule: FeeRule, status: AccrualStatus) -> bool:
    """Whether a line of this rule and status counts against its partner's monthly cap."""
    return rule in CAPPED_RULES and status is not AccrualStatus.reversed


async def add_cap_usage(session: AsyncSession, lines: Iterable[tuple[str, datetime, int]]) -> None:
    """Add these (partner, occurred_at, amount) to their months' usage, in one statement: lines written that count
    against the cap (positive or negative), or the opposite of lines that stopped counting (reversed)."""
    deltas: dict[PartnerMonth, int] = defaultdict(int)
    for partner_id, moment, amount in lines:
        deltas[(partner_id, business_month(moment))] += amount
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
