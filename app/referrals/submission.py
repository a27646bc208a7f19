"""A single submission in one statement: the idempotency key claimed, the program and partner checked, what the
partner sent before, the registry and the current holder looked up, the referral inserted with its timeline and
its webhook notice, and the answer stored with the key and returned, as the very bytes its replays will send.

The statement decides the common cases, with the rules of ``app.referrals.attribution`` (the partner's reference
or person sent before → that referral, 200; a reference used for another person → 409; a registered client →
``existing_client``; nobody holding the person → ``eligible``). What it leaves to the general path
(``service.submit_referral`` under ``IdempotentCreate``), having written nothing: a holder whose window has passed
(it must expire first, through ``transitions.transition``), another partner holding the person (a duplicate and
its conflict), and a key claimed meanwhile by a concurrent request. An insert that loses a race to a concurrent
holder or reference after the key was claimed is settled by the general path too, and its answer remembered.

When the request has not used the database yet, the statement runs alone (``CompiledStatement``: no BEGIN nor
COMMIT, it commits by itself); an insert that loses its race then fails the statement on purpose (``LOST_A_RACE``),
so that neither the key's claim nor the person's is kept, and the general path runs in a transaction of its own.

The current holder is read from ``identity_holders`` (by the identity) and its referral on its partner's rows; an
``eligible`` referral is written only with its claim there (the race of rule 6: one key, whoever races).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.business_time import business_day
from app.core.compiled import CompiledStatement, StatementUndone, runs_alone, undo_if
from app.core.idempotency import (
    RETENTION,
    STORED_ANSWER_CTE,
    IdempotencyKeyReused,
    claimed_answer_cte,
)
from app.core.models import new_id, new_ids
from app.referrals.attribution import Candidate
from app.referrals.models import HOLDING_SQL
from app.referrals.service import ExternalRefTaken, ProgramNotAvailable
from app.referrals.transitions import intake_sql


def _timestamp(column: str) -> str:
    """A timestamptz as pydantic writes an aware UTC datetime: seconds, microseconds only when not zero, ``Z``."""
    return (
        f"(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN CAST(date_part('microseconds', {column}) AS bigint) % 1000000 <> 0 "
        f"THEN to_char({column} AT TIME ZONE 'UTC', '.US') ELSE '' END || 'Z')"
    )


def referral_json(row: str) -> str:
    """``ReferralOut`` (``router.referral_out``) of the referral ``row``, as jsonb."""
    return f"""jsonb_build_object(
        'id', {row}.id, 'program_id', {row}.program_id, 'external_ref', {row}.external_ref, 'kind', {row}.kind,
        'status', {row}.status,
        'subject', jsonb_build_object('name', {row}.name_masked, 'mobile', {row}.mobile_masked,
                                      'identifier', {row}.identifier_masked, 'erased', {row}.erased_at IS NOT NULL),
        'age_band', {row}.age_band, 'declared_assets_band', {row}.declared_assets_band,
        'window_ends_at', {_timestamp(row + ".window_ends_at")}, 'outcome_at', {_timestamp(row + ".outcome_at")},
        'created_at', {_timestamp(row + ".created_at")}, 'updated_at', {_timestamp(row + ".updated_at")})"""


_SHOWN = (
    "id, program_id, external_ref, kind, status, name_masked, mobile_masked, identifier_masked, erased_at, "
    "age_band, declared_assets_band, window_ends_at, outcome_at, created_at, updated_at"
)
_INSERTED = (
    "id, partner_id, program_id, external_ref, kind, status, identity_hash, mobile_hash, name_ct, mobile_ct, "
    "identifier_ct, name_masked, mobile_masked, identifier_masked, birth_year, age_band, declared_assets_band, "
    "employer, consent, window_ends_at, outcome_at, created_at, updated_at"
)

# Run alone (``runs_alone``), the statement commits by itself: an insert that lost its race must then undo the
# whole statement, the key's claim (with an answer that is not the referral's) and the person's claim with it.
LOST_A_RACE = "submission-lost-a-race"
_LOST_A_RACE_SQL = (
    "CAST(:undo_if_lost AS boolean) AND c.body IS NOT NULL AND d.outcome IN ('eligible', 'existing_client') "
    "AND NOT EXISTS (SELECT 1 FROM created)"
)

_SUBMIT = CompiledStatement(
    sa.text(
        f"""
    WITH
    program AS (
        SELECT p.id, p.attribution_window_days FROM programs AS p JOIN partners AS partner ON partner.id = p.partner_id
        WHERE p.id = :program_id AND p.partner_id = :partner_id AND p.status = 'active'
          AND p.effective_from <= CAST(:today AS date)
          AND (p.effective_to IS NULL OR p.effective_to > CAST(:today AS date)) AND partner.status = 'active'
    ),
    by_ref AS (
        SELECT {_SHOWN}, identity_hash, 1 AS preference FROM referrals
        WHERE partner_id = :partner_id AND external_ref = :external_ref
    ),
    held_by AS (
        SELECT partner_id, referral_id FROM identity_holders WHERE identity_hash = CAST(:identity_hash AS bytea)
    ),
    holder AS (
        SELECT {_SHOWN}, partner_id, 2 AS preference FROM referrals
        WHERE partner_id = (SELECT partner_id FROM held_by) AND id = (SELECT referral_id FROM held_by)
          AND {HOLDING_SQL}
    ),
    registered AS (
        SELECT 1 FROM existing_clients
        WHERE identity_hash = CAST(:identity_hash AS bytea) AND opened_on < CAST(:today AS date)
    ),
    {STORED_ANSWER_CTE},
    decided AS (
        SELECT CASE
            WHEN EXISTS (SELECT 1 FROM stored) THEN 'stored'
            WHEN NOT EXISTS (SELECT 1 FROM program) THEN 'no_program'
            WHEN EXISTS (
                SELECT 1 FROM holder WHERE status = 'eligible' AND window_ends_at <= CAST(:now AS timestamptz)
            ) THEN 'general'
            WHEN EXISTS (
                SELECT 1 FROM by_ref WHERE identity_hash IS DISTINCT FROM CAST(:identity_hash AS bytea)
            ) THEN 'ref_taken'
            WHEN EXISTS (SELECT 1 FROM by_ref) OR EXISTS (SELECT 1 FROM holder WHERE partner_id = :partner_id)
                THEN 'known'
            WHEN EXISTS (SELECT 1 FROM registered) THEN 'existing_client'
            WHEN EXISTS (SELECT 1 FROM holder) THEN 'general'
            ELSE 'eligible'
        END AS outcome
    ),
    known AS (
        SELECT k.* FROM (
            SELECT {_SHOWN}, preference FROM by_ref
            UNION ALL SELECT {_SHOWN}, preference FROM holder WHERE partner_id = :partner_id
        ) AS k
        JOIN decided ON decided.outcome = 'known'
        ORDER BY k.preference LIMIT 1
    ),
    new AS (
        SELECT CAST(:referral_id AS varchar) AS id, CAST(:partner_id AS varchar) AS partner_id, p.id AS program_id,
               CAST(:external_ref AS varchar) AS external_ref, CAST(:kind AS varchar) AS kind,
               CAST(d.outcome AS varchar) AS status, CAST(:identity_hash AS bytea) AS identity_hash,
               CAST(:mobile_hash AS bytea) AS mobile_hash, CAST(:name_ct AS bytea) AS name_ct,
               CAST(:mobile_ct AS bytea) AS mobile_ct, CAST(:identifier_ct AS bytea) AS identifier_ct,
               CAST(:name_masked AS varchar) AS name_masked, CAST(:mobile_masked AS varchar) AS mobile_masked,
               CAST(:identifier_masked AS varchar) AS identifier_masked, CAST(:birth_year AS integer) AS birth_year,
               CAST(:age_band AS varchar) AS age_band,
               CAST(:declared_assets_band AS varchar) AS declared_assets_band,
               CAST(:employer AS varchar) AS employer, CAST(:consent AS jsonb) AS consent,
               CAST(:now AS timestamptz) + make_interval(days => p.attribution_window_days) AS window_ends_at,
               CASE WHEN d.outcome = 'eligible' THEN NULL ELSE CAST(:now AS timestamptz) END AS outcome_at,
               CAST(NULL AS timestamptz) AS erased_at,
               CAST(:now AS timestamptz) AS created_at, CAST(:now AS timestamptz) AS updated_at
        FROM program AS p JOIN decided AS d ON d.outcome IN ('eligible', 'existing_client')
    ),
    answer AS (
        SELECT 201 AS status_code, {referral_json("n")} AS body FROM new AS n
        UNION ALL
        SELECT 200, {referral_json("k")} FROM known AS k
    ),
    {claimed_answer_cte("answer")},
    taken AS (
        INSERT INTO identity_holders (identity_hash, referral_id, partner_id, held_since)
        SELECT identity_hash, id, partner_id, created_at FROM new
        WHERE status = 'eligible' AND EXISTS (SELECT 1 FROM claimed)
        ON CONFLICT DO NOTHING
        RETURNING referral_id
    ),
    created AS (
        INSERT INTO referrals ({_INSERTED})
        SELECT {_INSERTED} FROM new
        WHERE EXISTS (SELECT 1 FROM claimed) AND (status <> 'eligible' OR EXISTS (SELECT 1 FROM taken))
        ON CONFLICT DO NOTHING
        RETURNING id, partner_id, status, external_ref, program_id
    ),
    {intake_sql("created")}
    SELECT d.outcome, c.status_code AS claimed_status, c.body AS claimed_body,
           s.request_hash AS stored_hash, s.status_code AS stored_status, s.body AS stored_body,
           EXISTS (SELECT 1 FROM created) AS inserted, EXISTS (SELECT 1 FROM taken) AS taken,
           {undo_if(_LOST_A_RACE_SQL, LOST_A_RACE)} AS undone
    FROM decided AS d LEFT JOIN claimed AS c ON true LEFT JOIN stored AS s ON true
    """
    ),
    undo_reasons=(LOST_A_RACE,),
)

_UNCLAIM = sa.text("DELETE FROM identity_holders WHERE identity_hash = :identity_hash AND referral_id = :referral_id")


@dataclass(frozen=True)
class StoredAnswer:
    """The answer to send: its status and its body, the text of the jsonb stored with the key."""

    status_code: int
    body: str
    replayed: bool


@dataclass(frozen=True)
class OneStatement:
    """What the statement did. ``answer`` is None when the general path must run: ``claimed`` then says whether
    the key is already claimed for this request (the general path's answer is then remembered under it)."""

    outcome: str
    answer: StoredAnswer | None
    claimed: bool = False


async def submit_in_one_statement(
    session: AsyncSession,
    *,
    owner: str,
    key: str,
    request_hash: str,
    partner_id: str,
    candidate: Candidate,
    now: datetime,
) -> OneStatement:
    received_event, attributed_event = new_ids("rev", 2)
    referral_id = new_id("ref")
    alone = runs_alone(session)
    try:
        row = await _SUBMIT.row(
            session,
            {
                "owner": owner,
                "key": key,
                "request_hash": request_hash,
                "now": now,
                "expires_at": now + RETENTION,
                "today": business_day(now),
                "partner_id": partner_id,
                "program_id": candidate.program_id,
                "referral_id": referral_id,
                "external_ref": candidate.external_ref,
                "kind": candidate.kind,
                "identity_hash": candidate.identity_hash,
                "mobile_hash": candidate.mobile_hash,
                "name_ct": candidate.name_ct,
                "mobile_ct": candidate.mobile_ct,
                "identifier_ct": candidate.identifier_ct,
                "name_masked": candidate.name_masked,
                "mobile_masked": candidate.mobile_masked,
                "identifier_masked": candidate.identifier_masked,
                "birth_year": candidate.birth_year,
                "age_band": candidate.age_band,
                "declared_assets_band": candidate.declared_assets_band,
                "employer": candidate.employer,
                "consent": str(candidate.consent) if candidate.consent is not None else None,
                "received_event": received_event,
                "attributed_event": attributed_event,
                "undo_if_lost": alone,
            },
        )
    except StatementUndone:  # run alone, lost the insert to a concurrent holder or reference: nothing was kept
        return OneStatement("lost", None)
    assert row is not None  # the statement's last SELECT has one row
    if row["outcome"] == "stored":
        if row["stored_hash"] != request_hash:
            raise IdempotencyKeyReused("This Idempotency-Key was used with a different request; use a new key.")
        return OneStatement(
            row["outcome"], StoredAnswer(row["stored_status"] or 200, row["stored_body"], replayed=True)
        )
    if row["outcome"] == "no_program":
        raise ProgramNotAvailable("No active program with this id accepts your referrals.", field="program_id")
    if row["outcome"] == "ref_taken":
        raise ExternalRefTaken("external_ref already used for another referral", field="external_ref")
    if row["outcome"] == "general" or row["claimed_body"] is None:
        return OneStatement(row["outcome"], None)
    if row["outcome"] != "known" and not row["inserted"]:  # lost the insert to a concurrent holder or reference
        if row["taken"]:  # the person was claimed for the referral that lost to a concurrent reference: given back
            await session.execute(_UNCLAIM, {"identity_hash": candidate.identity_hash, "referral_id": referral_id})
        return OneStatement(row["outcome"], None, claimed=True)
    return OneStatement(row["outcome"], StoredAnswer(row["claimed_status"], row["claimed_body"], replayed=False))
