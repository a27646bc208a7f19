"""Matching a claim against its statement: one set-based statement, whatever the number of lines.

Our lines grouped by (external_ref, rule) are joined (FULL OUTER JOIN) with the claim grouped by
(external_ref, fee_type); every key becomes one reconciliation item:

* ``duplicate_claim`` — the claim names the key more than once (whatever our side says);
* ``unknown`` — only the claim has it, with the reason our referral data gives;
* ``unclaimed`` — only we have it;
* ``matched`` / ``amount_mismatch`` — both have it, with equal or different totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.reconciliation.models import MatchClass

_MATCH = text(
    """
    WITH ours AS (
        SELECT coalesce(external_ref, '') AS external_ref, CAST(rule AS text) AS fee_type, sum(amount_fen) AS fen
        FROM fee_accruals WHERE statement_id = :statement_id
        GROUP BY 1, 2
    ), theirs AS (
        SELECT external_ref, fee_type, sum(amount_fen) AS fen, count(*) AS lines
        FROM claim_lines WHERE claim_id = :claim_id
        GROUP BY external_ref, fee_type
    ), classified AS (
        SELECT coalesce(o.external_ref, t.external_ref) AS external_ref,
               coalesce(o.fee_type, t.fee_type) AS fee_type,
               o.fen AS ours, t.fen AS theirs,
               CASE WHEN t.lines > 1 THEN 'duplicate_claim'
                    WHEN o.fen IS NULL THEN 'unknown'
                    WHEN t.fen IS NULL THEN 'unclaimed'
                    WHEN o.fen = t.fen THEN 'matched'
                    ELSE 'amount_mismatch' END AS match_class
        FROM ours o FULL OUTER JOIN theirs t ON t.external_ref = o.external_ref AND t.fee_type = o.fee_type
    )
    INSERT INTO reconciliation_items
        (id, statement_id, claim_id, partner_id, external_ref, fee_type, match_class, ours_fen, theirs_fen,
         difference_fen, reason, disputed, created_at)
    SELECT 'rci_' || replace(CAST(gen_random_uuid() AS text), '-', ''), :statement_id, :claim_id, :partner_id,
           c.external_ref, c.fee_type, c.match_class, c.ours, c.theirs,
           coalesce(c.theirs, 0) - coalesce(c.ours, 0),
           CASE WHEN c.match_class <> 'unknown' THEN NULL
                WHEN r.id IS NULL OR r.status = 'received' THEN 'not_attributed'
                WHEN r.status IN ('expired', 'duplicate', 'existing_client') THEN r.status
                WHEN r.status IN ('rejected', 'withdrawn') THEN 'ineligible'
                WHEN EXISTS (SELECT 1 FROM fee_accruals a
                             WHERE a.referral_id = r.id AND CAST(a.rule AS text) = c.fee_type
                               AND a.status IN ('pending', 'payable') AND a.statement_id IS NULL) THEN 'not_yet_due'
                WHEN EXISTS (SELECT 1 FROM fee_accruals a
                             WHERE a.referral_id = r.id AND CAST(a.rule AS text) = c.fee_type
                               AND a.statement_id IS NOT NULL) THEN 'on_another_statement'
                ELSE 'not_earned' END,
           false, :now
    FROM classified c
    LEFT JOIN referrals r ON r.partner_id = :partner_id AND r.external_ref = c.external_ref
    """
)

_TOTALS = text(
    """
    SELECT match_class, count(*), coalesce(sum(ours_fen), 0), coalesce(sum(theirs_fen), 0),
           coalesce(sum(difference_fen), 0),
           count(*) FILTER (WHERE match_class <> 'matched' AND resolution IS NULL)
    FROM reconciliation_items WHERE statement_id = :statement_id
    GROUP BY match_class
    """
)


@dataclass(frozen=True)
class ClassTotal:
    items: int = 0
    ours_fen: int = 0
    theirs_fen: int = 0
    difference_fen: int = 0
    open: int = 0


@dataclass(frozen=True)
class Totals:
    by_class: dict[MatchClass, ClassTotal] = field(default_factory=dict)

    @property
    def open_items(self) -> int:
        return sum(total.open for total in self.by_class.values())


async def match_claim(
    session: AsyncSession, *, statement_id: str, claim_id: str, partner_id: str, now: datetime
) -> int:
    """Classify every key of the statement and the claim into reconciliation items; returns how many."""
    result = await session.execute(
        _MATCH, {"statement_id": statement_id, "claim_id": claim_id, "partner_id": partner_id, "now": now}
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def totals(session: AsyncSession, statement_id: str) -> Totals:
    """Items, our and their totals, the difference and the open items per class (every class present)."""
    found = {
        MatchClass(row[0]): ClassTotal(*(int(value) for value in row[1:]))
        for row in await session.execute(_TOTALS, {"statement_id": statement_id})
    }
    return Totals({match_class: found.get(match_class, ClassTotal()) for match_class in MatchClass})
