"""Batch uploads through the SDK: rows or CSV, waiting with progress, per-line results, idempotent retries."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alliance_partner import AsyncClient, Batch, BatchReport, BatchTimeoutError, Client, rows_to_csv
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock
from app.core.business_time import today as business_today
from app.core.config import Settings
from app.core.tenancy import Tenant
from app.privacy.service import load_cipher
from app.referrals.batches import intake, processing
from app.referrals.batches.models import ReferralBatch
from app.referrals.batches.results import get_batch
from tests.factories.referrals import PartnerDesk, enterprise, individual
from tests.partners.conftest import Recorder, credentials_of, in_thread

BATCHES = "/v1/referral-batches"


def _bad_line(program_id: str) -> dict[str, Any]:
    body = individual(program_id, "BAD-LINE")
    body["consent"]["separate_consent"] = False
    return body


async def test_rows_are_uploaded_and_each_line_reported(make_desk: Any, async_sdk: Callable[..., AsyncClient]) -> None:
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    rows = [individual(desk.program.id, "ROW-1"), _bad_line(desk.program.id), enterprise(desk.program.id, "ROW-3")]
    seen: list[Batch] = []
    report = await api.upload_batch(rows, progress=seen.append)
    assert isinstance(report, BatchReport) and report.batch.status == "completed" and report.batch.format == "jsonl"
    assert [line.line for line in report] == [1, 2, 3]  # JSON Lines: line n is rows[n - 1]
    assert [line.outcome for line in report] == ["eligible", "error", "eligible"]
    assert report.by_outcome() == {"eligible": 2, "error": 1}
    [error] = report.errors
    assert error.external_ref == "BAD-LINE" and error.referral_id is None
    assert any(item.field and "separate_consent" in item.field for item in error.errors)
    assert report.results[0].referral_status == "eligible" and report.results[0].referral_id
    assert len(seen) == 1 and seen[0].finished and seen[0].progress == 1.0  # inline: done in the upload

    again = await api.upload_batch(rows[:1])
    assert [line.outcome for line in again] == ["returned_existing"]
    assert [batch.id async for batch in api.list_batches()] == [again.batch.id, report.batch.id]


async def test_csv_from_the_sync_client(make_desk: Any, sync_sdk: Callable[..., Client], tmp_path: Path) -> None:
    desk: PartnerDesk = await make_desk()
    api = sync_sdk(credentials_of(desk))
    bad = individual(desk.program.id, "CSV-2")
    bad["subject"]["mobile"] = "12345"
    content = rows_to_csv([individual(desk.program.id, "CSV-1"), bad])
    assert content.decode().splitlines()[0].startswith("program_id,external_ref,kind,name,mobile")

    report = await in_thread(lambda: api.upload_batch(content))
    assert report.batch.format == "csv"
    assert [(line.line, line.outcome) for line in report] == [(2, "eligible"), (3, "error")]  # header is line 1
    assert [item.field for item in report.errors[0].errors] == ["mobile"]  # the CSV column at fault

    csv_file = tmp_path / "roster.csv"
    csv_file.write_bytes(rows_to_csv([individual(desk.program.id, "FILE-1")]))
    jsonl_file = tmp_path / "roster.jsonl"
    jsonl_file.write_text(json.dumps(individual(desk.program.id, "FILE-2"), ensure_ascii=False) + "\n")
    from_csv = await in_thread(lambda: api.upload_batch(csv_file))
    from_jsonl = await in_thread(lambda: api.upload_batch(jsonl_file))
    assert (from_csv.batch.format, from_jsonl.batch.format) == ("csv", "jsonl")
    assert [line.outcome for line in [*from_csv, *from_jsonl]] == ["eligible", "eligible"]
    assert (await in_thread(lambda: api.get_batch(from_csv.batch.id))).counts.eligible == 1
    lines = await in_thread(lambda: api.list_batch_results(report.batch.id, outcome="error").to_list())
    assert [line.external_ref for line in lines] == ["CSV-2"]


async def test_a_background_batch_is_awaited_with_progress(
    make_desk: Any,
    app: FastAPI,
    session: AsyncSession,
    settings: Settings,
    async_sdk: Callable[..., AsyncClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the inline limit, a batch is staged and processed by the worker: here one chunk per poll."""
    monkeypatch.setattr(intake, "INLINE_LIMIT", 2)
    monkeypatch.setattr(intake, "STAGE_CHUNK", 2)
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    rows = [individual(desk.program.id, f"BIG-{index}") for index in range(5)]
    cipher = await load_cipher(session, settings)
    processed_after: list[int] = []
    seen: list[tuple[str, int]] = []

    async def work_one_chunk(batch: Batch) -> None:
        """The progress callback, doubling as the worker: records the progress, then processes 2 lines."""
        seen.append((batch.status, batch.counts.processed))
        if batch.finished:
            return
        stored = await get_batch(session, Tenant.of_partner(desk.partner.id), batch.id)
        after = processed_after[-1] if processed_after else 0
        lines = await processing.next_staged_chunk(session, stored.id, after, cipher)
        assert lines is not None
        index = app.state.data_keyring.index
        prepared = await processing.prepare_chunk(session, stored, lines, cipher, index, business_today())
        await processing.apply_chunk(session, stored, prepared, clock.now())
        processed_after.append(prepared.last_line)

    report = await api.upload_batch(rows, progress=work_one_chunk, poll_interval=0)
    assert seen == [("pending", 0), ("processing", 2), ("processing", 4), ("completed", 5)]
    assert report.batch.status == "completed" and report.batch.completed_at is not None
    assert [line.external_ref for line in report] == [f"BIG-{index}" for index in range(5)]
    assert {line.outcome for line in report} == {"eligible"}


async def test_waiting_has_a_deadline_and_can_resume(
    make_desk: Any, async_sdk: Callable[..., AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake, "INLINE_LIMIT", 1)
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    rows = [individual(desk.program.id, f"SLOW-{index}") for index in range(3)]
    with pytest.raises(BatchTimeoutError) as waited:
        await api.upload_batch(rows, poll_interval=0.01, timeout=0)
    pending = waited.value.batch
    assert pending.status == "pending" and pending.counts.total == 3 and pending.progress == 0.0
    with pytest.raises(BatchTimeoutError):
        await api.wait_for_batch(pending.id, poll_interval=0.01, timeout=0.05)


async def test_a_batch_upload_is_retried_with_the_same_key(
    make_desk: Any, session: AsyncSession, async_sdk: Callable[..., AsyncClient], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    recorder.fail("POST", BATCHES, "lost")
    report = await api.upload_batch([individual(desk.program.id, "ONCE-1")])
    first, second = recorder.sent("POST", BATCHES)
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.headers["content-type"] == "application/x-ndjson"
    count = await session.scalar(
        select(func.count()).select_from(ReferralBatch).where(col(ReferralBatch.partner_id) == desk.partner.id)
    )
    assert count == 1 and [line.outcome for line in report] == ["eligible"]
