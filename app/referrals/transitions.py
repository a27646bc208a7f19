"""Every change of a referral's status (DESIGN.md, "Referral funnel", "Attribution rules" and "Attribution override
after conversion"): one table of the transitions allowed, and one function that checks a set of changes against
it, writes them, puts them on the referrals' timelines and queues their webhook notices, in the caller's
transaction. A change the table does not allow raises ``InvalidReferralTransition``; nothing is written.

A change to the same status is an event on the timeline that changes nothing (a tier rise of the client's
account); it is allowed where a client account can be linked to the referral.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from app.core.bulk import Then, insert_rows
from app.core.models import new_ids
from app.core.problems import Conflict
from app.referrals.models import HOLDING_STATUSES, Referral, ReferralEvent, ReferralStatus
from app.webhooks.service import queue_notices_sql

S = ReferralStatus

# From each status (None: a referral being created), the statuses it may move to.
ALLOWED: Mapping[ReferralStatus | None, frozenset[ReferralStatus]] = {
    None: frozenset({S.received}),
    # Attribution decides a submission at once; rejected is for an invalid one; withdrawal is possible from
    # any status (the partner withdraws it, or the client revokes consent).
    S.received: frozenset({S.eligible, S.existing_client, S.duplicate, S.rejected, S.withdrawn}),
    # Inside the window the account opens; opened before the referral is an existing client; past the window
    # it expires; an alliance manager may move the attribution away (it becomes duplicate).
    S.eligible: frozenset({S.account_opened, S.existing_client, S.expired, S.duplicate, S.rejected, S.withdrawn}),
    # Down the funnel (a bundle of its program converts it, funded or not); a move takes it away at any stage.
    S.account_opened: frozenset({S.account_opened, S.funded, S.converted, S.duplicate, S.rejected, S.withdrawn}),
    S.funded: frozenset({S.funded, S.converted, S.duplicate, S.rejected, S.withdrawn}),
    S.converted: frozenset({S.converted, S.duplicate, S.rejected, S.withdrawn}),
    # The attribution moved to a duplicate: it holds again, then follows its account's events down the funnel.
    S.duplicate: frozenset({S.eligible, S.withdrawn}),
    S.existing_client: frozenset({S.withdrawn}),
    S.expired: frozenset({S.withdrawn}),
    S.rejected: frozenset({S.rejected, S.withdrawn}),
    S.withdrawn: frozenset({S.withdrawn}),
}


class InvalidReferralTransition(Conflict):
    slug, title = "invalid-transition", "Invalid status transition"


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One step of a referral from ``from_status`` to ``to_status``, with its cause (and details) on the timeline.

    ``at`` is when an outcome happened (the referral's ``outcome_at``; the call's ``now`` if not given);
    ``client_ref`` is the client account the referral takes when it comes to hold one (required on
    ``account_opened``)."""

    referral_id: str
    partner_id: str
    from_status: ReferralStatus | None
    to_status: ReferralStatus
    cause: str
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None
    client_ref: str | None = None


def check(from_status: ReferralStatus | None, to_status: ReferralStatus) -> None:
    """Raise ``InvalidReferralTransition`` unless the table allows ``from_status`` → ``to_status``."""
    if to_status not in ALLOWED[from_status]:
        was = from_status.value if from_status else "(new)"
        raise InvalidReferralTransition(f"A referral cannot go from {was} to {to_status.value}.")


@dataclass
class _Outcome:
    """Where a referral's changes of one call leave it."""

    referral_id: str
    partner_id: str
    from_status: ReferralStatus
    to_status: ReferralStatus
    outcome_at: datetime | None
    relinked: bool
    client_ref: str | None

    @property
    def releases(self) -> bool:
        return self.from_status in HOLDING_STATUSES and self.to_status not in HOLDING_STATUSES


def _outcomes(changes: Sequence[StatusChange], now: datetime) -> list[_Outcome]:
    by_referral: dict[str, list[StatusChange]] = {}
    for change in changes:
        by_referral.setdefault(change.referral_id, []).append(change)
    outcomes = []
    for referral_id, steps in by_referral.items():
        initial = steps[0].from_status
        if initial is None:
            raise InvalidReferralTransition("A referral is created by intake, not by a status change.")
        status: ReferralStatus = initial
        relinked, client_ref = False, None
        for step in steps:
            if step.from_status is not status:
                raise InvalidReferralTransition(f"The referral is {status.value} at this step, not {step.from_status}.")
            check(step.from_status, step.to_status)
            if step.to_status is S.account_opened and step.to_status is not step.from_status and not step.client_ref:
                raise InvalidReferralTransition("An account opens for a referral only with the client account.")
            if step.client_ref is not None:
                if step.to_status not in HOLDING_STATUSES:
                    raise InvalidReferralTransition("Only a referral that holds its person takes a client account.")
                relinked, client_ref = True, step.client_ref
            elif step.to_status is S.duplicate and step.from_status in HOLDING_STATUSES:
                relinked, client_ref = True, None  # the attribution, and the account with it, moved away
            status = step.to_status
        if all(step.from_status is step.to_status for step in steps):
            continue  # events on the timeline only
        outcome_at = None if status in HOLDING_STATUSES else (steps[-1].at or now)
        outcomes.append(_Outcome(referral_id, steps[0].partner_id, initial, status, outcome_at, relinked, client_ref))
    return outcomes


_HOLDS = "IN ('eligible', 'account_opened', 'funded', 'converted')"  # ``HOLDING_STATUSES``, in SQL
# The referrals written, and the holders of their persons with them (``identity_holders``, keyed by the identity):
# a referral giving its person up leaves the table, one taking it (a move) enters it. A take of a person someone
# else holds is refused by the key.
_WRITE = sa.text(
    f"""
    WITH written AS (
        UPDATE referrals AS r
        SET status = c.to_status, outcome_at = c.outcome_at,
            client_ref = CASE WHEN c.relinked THEN c.client_ref ELSE r.client_ref END, updated_at = :now
        FROM unnest(CAST(:ids AS varchar[]), CAST(:partners AS varchar[]), CAST(:from_statuses AS varchar[]),
                    CAST(:to_statuses AS varchar[]), CAST(:outcomes AS timestamptz[]), CAST(:relinked AS boolean[]),
                    CAST(:client_refs AS varchar[]))
             AS c(id, partner_id, from_status, to_status, outcome_at, relinked, client_ref)
        WHERE r.partner_id = c.partner_id AND r.id = c.id AND r.status = c.from_status
        RETURNING r.id, r.partner_id, r.identity_hash, c.from_status {_HOLDS} AS held, c.to_status {_HOLDS} AS holds
    ),
    released AS (
        DELETE FROM identity_holders AS h USING written AS w
        WHERE h.identity_hash = w.identity_hash AND h.referral_id = w.id AND w.held AND NOT w.holds
    ),
    taken AS (
        INSERT INTO identity_holders (identity_hash, referral_id, partner_id, held_since)
        SELECT w.identity_hash, w.id, w.partner_id, :now
        FROM written AS w WHERE w.identity_hash IS NOT NULL AND NOT w.held AND w.holds
    )
    SELECT id FROM written
    """
)


async def _write(session: AsyncSession, outcomes: list[_Outcome], now: datetime) -> None:
    if not outcomes:
        return
    written: set[str] = set(
        (
            await session.execute(
                _WRITE,
                {
                    "ids": [o.referral_id for o in outcomes],
                    "partners": [o.partner_id for o in outcomes],
                    "from_statuses": [o.from_status.value for o in outcomes],
                    "to_statuses": [o.to_status.value for o in outcomes],
                    "outcomes": [o.outcome_at for o in outcomes],
                    "relinked": [o.relinked for o in outcomes],
                    "client_refs": [o.client_ref for o in outcomes],
                    "now": now,
                },
            )
        ).scalars()
    )
    if len(written) != len(outcomes):
        raise InvalidReferralTransition("A referral's status changed meanwhile; try again.")
    # Rows this session holds as objects show what was written, without reading them again.
    for outcome in outcomes:
        referral = session.sync_session.identity_map.get(identity_key(Referral, outcome.referral_id))
        if referral is None:
            continue
        set_committed_value(referral, "status", outcome.to_status)
        set_committed_value(referral, "outcome_at", outcome.outcome_at)
        set_committed_value(referral, "updated_at", now)
        if outcome.relinked:
            set_committed_value(referral, "client_ref", outcome.client_ref)


async def transition(session: AsyncSession, changes: Sequence[StatusChange], now: datetime) -> None:
    """Apply ``changes`` (several may follow one another for a referral, in their order): each is checked against
    ``ALLOWED`` and against the referral's status in the database, then written set-based, recorded on the
    timelines and announced to the partners' webhooks. Raises ``InvalidReferralTransition`` (409) otherwise."""
    if not changes:
        return
    outcomes = _outcomes(changes, now)
    # At most one referral holds a person at any moment (the key of ``identity_holders``): the referrals giving a
    # person up are written before those taking one.
    await _write(session, [outcome for outcome in outcomes if outcome.releases], now)
    await _write(session, [outcome for outcome in outcomes if not outcome.releases], now)
    await _record_timeline(session, changes, now)


async def record_intake(
    session: AsyncSession, partner_id: str, referral_ids: Sequence[str], status: ReferralStatus, now: datetime
) -> None:
    """The timelines of referrals just created in ``status``: received, then what attribution decided. One
    statement, built in SQL from the referrals' ids (a batch chunk's thousands of referrals: no row per event is
    built, nor sent, by Python), announcing the second event as ``_record_timeline`` would."""
    check(None, S.received)
    check(S.received, status)
    if not referral_ids:
        return
    await session.execute(
        _INTAKE,
        {
            "referral_ids": list(referral_ids),
            "event_ids": new_ids("rev", 2 * len(referral_ids)),
            "partner_id": partner_id,
            "status": status.value,
            "now": now,
        },
    )


# --- the timeline and its notices ---------------------------------------------------------------------------------

_TIMELINE = ReferralEvent.__table__  # type: ignore[attr-defined]
_TIMELINE_COLUMNS = ("id", "referral_id", "partner_id", "from_status", "to_status", "cause", "details", "created_at")
_TRANSITION_COLUMNS = ("referral_id", "partner_id", "from_status", "to_status", "cause")
# A change of status is ``referral.status_changed``, and also ``referral.expired`` when it expires the referral;
# each notice carries the referral's own reference and program. Read from the timeline rows just inserted.
_NOTICES = queue_notices_sql(
    f"""
    SELECT t.partner_id, types.event_type,
           jsonb_build_object('referral_id', t.referral_id, 'from_status', t.from_status, 'to_status', t.to_status,
                              'cause', t.cause, 'occurred_at', CAST(:now AS timestamptz),
                              'external_ref', r.external_ref, 'program_id', r.program_id)
    FROM inserted AS t
    CROSS JOIN LATERAL unnest(
        CASE WHEN t.to_status = '{S.expired.value}' THEN ARRAY['referral.status_changed', 'referral.expired']
             ELSE ARRAY['referral.status_changed'] END
    ) AS types(event_type)
    JOIN referrals AS r ON r.partner_id = t.partner_id AND r.id = t.referral_id
    WHERE t.from_status <> t.to_status
    """
)


# Each referral's two events, in the order of the referrals and then of the steps (``seq`` follows it), with the
# ids made in that order; then their notices, as ``_NOTICES`` reads them from ``inserted``.
_INTAKE = sa.text(
    f"""
    WITH inserted AS (
        INSERT INTO referral_events (id, referral_id, partner_id, from_status, to_status, cause, details, created_at)
        SELECT events.ids[2 * r.position - 2 + e.step], r.id, CAST(:partner_id AS varchar), e.from_status,
               e.to_status, e.cause, CAST('{{}}' AS jsonb), :now
        FROM unnest(CAST(:referral_ids AS varchar[])) WITH ORDINALITY AS r(id, position)
        CROSS JOIN (VALUES
            (1, CAST(NULL AS varchar), CAST('{S.received.value}' AS varchar), CAST('submitted' AS varchar)),
            (2, CAST('{S.received.value}' AS varchar), CAST(:status AS varchar), CAST('attribution' AS varchar))
        ) AS e(step, from_status, to_status, cause)
        CROSS JOIN (SELECT CAST(:event_ids AS varchar[]) AS ids) AS events
        ORDER BY r.position, e.step
        RETURNING referral_id, partner_id, from_status, to_status, cause
    )
    {_NOTICES}
    """
)


async def _record_timeline(session: AsyncSession, changes: Sequence[StatusChange], now: datetime) -> None:
    """Append the changes to the referrals' timelines and queue their notices, in one statement."""
    rows = [
        (event_id, c.referral_id, c.partner_id, c.from_status, c.to_status, c.cause, c.details, now)
        for event_id, c in zip(new_ids("rev", len(changes)), changes, strict=True)
    ]
    announce = Then(_NOTICES, {"now": now})
    await insert_rows(session, _TIMELINE, _TIMELINE_COLUMNS, rows, returning=_TRANSITION_COLUMNS, then=announce)


def intake_sql(created: str) -> str:
    """The timelines and notices of referrals just created, as CTEs of the statement that inserts them (a single
    submission): ``created`` names that statement's CTE of (id, partner_id, status, external_ref, program_id). The
    statement binds ``:now``, ``:received_event`` and ``:attributed_event`` (the timeline rows' ids).

    The same timeline as ``record_intake``: received, then what attribution decided; only the second is a change
    of status, announced."""
    for status in (S.eligible, S.existing_client):
        check(None, S.received)
        check(S.received, status)
    notices = queue_notices_sql(
        f"""
        SELECT t.partner_id, 'referral.status_changed',
               jsonb_build_object('referral_id', t.referral_id, 'from_status', t.from_status,
                                  'to_status', t.to_status, 'cause', t.cause,
                                  'occurred_at', CAST(:now AS timestamptz),
                                  'external_ref', c.external_ref, 'program_id', c.program_id)
        FROM intake_timeline AS t JOIN {created} AS c ON c.id = t.referral_id
        WHERE t.from_status <> t.to_status
        """
    )
    return f"""
    intake_timeline AS (
        INSERT INTO referral_events (id, referral_id, partner_id, from_status, to_status, cause, details, created_at)
        SELECT e.id, c.id, c.partner_id, e.from_status, COALESCE(e.to_status, c.status), e.cause,
               CAST('{{}}' AS jsonb), :now
        FROM {created} AS c
        CROSS JOIN (VALUES
            (1, CAST(:received_event AS varchar), CAST(NULL AS varchar), CAST('{S.received.value}' AS varchar),
             'submitted'),
            (2, CAST(:attributed_event AS varchar), CAST('{S.received.value}' AS varchar), CAST(NULL AS varchar),
             'attribution')
        ) AS e(step, id, from_status, to_status, cause)
        ORDER BY e.step
        RETURNING referral_id, partner_id, from_status, to_status, cause
    ),
    intake_notices AS ({notices})
    """
