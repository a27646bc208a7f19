"""Batch submission: CSV and JSON Lines uploads, line by line validation and attribution, idempotency, scoping,
limits, and the staged path (encrypted lines, processed chunk by chunk)."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.business_time import today as business_today
from app.core.tenancy import Tenant
from app.privacy.service import load_cipher
from app.referrals.batches import files as batch_files
from app.referrals.batches import intake, processing
from app.referrals.batches.errors import BatchClosed
from app.referrals.batches.lines import _CONSENT_COLUMNS
from app.referrals.batches.models import CHUNK_PURPOSE, ReferralBatch
from app.referrals.batches.results import get_batch
from app.referrals.models import Referral
from tests.conftest import CallerFactory
from tests.referrals.conftest import PartnerDesk, consent, enterprise, national_id
from tests.referrals.conftest import individual as _individual

BATCHES = "/v1/referral-batches"
CSV = {"Content-Type": "text/csv"}
JSONL = {"Content-Type": "application/x-ndjson"}


def person() -> str:
    """A national ID number drawn from a wide space (the factory's default birth date allows only 1,000)."""
    return national_id(born=date(1960, 1, 1) + timedelta(days=random.randrange(15_000)))


def individual(program_id: str, external_ref: str | None = None, **subject: Any) -> dict[str, Any]:
    return _individual(program_id, external_ref, **{"national_id": person(), **subject})


def _wrong_check(number: str) -> str:
    return "0" if number[-1] != "0" else "1"


def csv_row(body: dict[str, Any]) -> dict[str, str]:
    """A ``POST /v1/referrals`` body as a CSV row of ``batch_files.CSV_COLUMNS``."""
    subject, evidence = body.get("subject", {}), body.get("consent") or {}
    row = {key: body[key] for key in ("program_id", "external_ref", "kind") if key in body}
    row |= {key: str(value) for key, value in subject.items()}
    for column, name in _CONSENT_COLUMNS.items():
        if name in evidence:
            value = evidence[name]
            if name == "data_categories":
                value = ";".join(value)
            elif name == "separate_consent":
                value = "true" if value else "false"
            row[column] = str(value)
    return row


def csv_file(rows: list[dict[str, str]], columns: tuple[str, ...] = batch_files.CSV_COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="raise", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def jsonl_file(lines: list[Any]) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines)


async def _upload(
    client: httpx.AsyncClient, desk: PartnerDesk, content: str | bytes, headers: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    body = content.encode() if isinstance(content, str) else content
    return await client.post(BATCHES, content=body, headers={**desk.headers(), **(headers or CSV)}, **kw)


async def _results(client: httpx.AsyncClient, desk: PartnerDesk, batch_id: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = await client.get(f"{BATCHES}/{batch_id}/results", params=query, headers=desk.caller.headers)
        assert page.status_code == 200, page.text
        found += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


# --- inline batches: mixed lines, every error per line --------------------------------------------------------------


async def test_csv_batch_with_good_and_bad_lines(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk, session: AsyncSession
) -> None:
    good = individual(bank.program.id, "VIP-1")
    company = enterprise(bank.program.id, "ENT-1")
    bad_id = individual(bank.program.id, "VIP-2")
    bad_id["subject"]["national_id"] = bad_id["subject"]["national_id"][:17] + _wrong_check(
        bad_id["subject"]["national_id"]
    )
    theirs = individual(other_bank.program.id, "VIP-3")
    rows = [csv_row(body) for body in (good, company, bad_id, theirs)]
    content = csv_file(rows) + "too,few,cells\r\n"
    response = await _upload(client, bank, content)
    assert response.status_code == 202, response.text
    batch = response.json()
    assert response.headers["location"] == f"{BATCHES}/{batch['id']}"
    assert batch["status"] == "completed" and batch["format"] == "csv"
    assert batch["counts"] == {
        "total": 5,
        "processed": 5,
        "eligible": 2,
        "existing_client": 0,
        "duplicate": 0,
        "returned_existing": 0,
        "error": 3,
    }
    assert batch["links"] == {"self": f"{BATCHES}/{batch['id']}", "results": f"{BATCHES}/{batch['id']}/results"}
    results = await _results(client, bank, batch["id"])
    by_line = {result["line"]: result for result in results}
    assert sorted(by_line) == [2, 3, 4, 5, 6]
    assert by_line[2]["outcome"] == "eligible" and by_line[2]["external_ref"] == "VIP-1"
    assert by_line[2]["referral_status"] == "eligible" and by_line[2]["errors"] == []
    referral = await session.get(Referral, by_line[2]["referral_id"])
    assert referral is not None and referral.batch_id == batch["id"] and referral.partner_id == bank.partner.id
    assert by_line[3]["outcome"] == "eligible" and by_line[3]["external_ref"] == "ENT-1"
    assert by_line[4]["outcome"] == "error" and by_line[4]["referral_id"] is None
    assert [error["field"] for error in by_line[4]["errors"]] == ["national_id"]
    assert by_line[5]["errors"] == [
        {"field": "program_id", "message": "No active program with this id accepts your referrals."}
    ]
    assert by_line[6]["external_ref"] is None and by_line[6]["errors"][0]["field"] is None
    listing = json.dumps(results, ensure_ascii=False)
    for body in (good, bad_id, theirs):
        for value in (body["subject"]["national_id"], body["subject"]["mobile"], body["subject"]["name"]):
            assert value not in listing


CSV_MUTATIONS: list[tuple[str, Callable[[dict[str, str]], None], str | None]] = [
    (
        "bad check digit",
        lambda r: r.update(national_id=r["national_id"][:17] + _wrong_check(r["national_id"])),
        "national_id",
    ),
    ("impossible birth date", lambda r: r.update(national_id="230102199302301234"), "national_id"),
    ("short id", lambda r: r.update(national_id="2301021993"), "national_id"),
    ("landline", lambda r: r.update(mobile="12345678901"), "mobile"),
    ("blank name", lambda r: r.update(name="   "), "name"),
    ("no consent", lambda r: [r.pop(c) for c in list(r) if c.startswith("consent_")], None),
    ("bundled consent", lambda r: r.update(consent_separate="false"), "consent_separate"),
    ("not a boolean", lambda r: r.update(consent_separate="maybe"), "consent_separate"),
    ("future consent", lambda r: r.update(consent_captured_at="2099-01-01T00:00:00Z"), "consent_captured_at"),
    ("naive consent time", lambda r: r.update(consent_captured_at="2026-11-01T10:00:00"), "consent_captured_at"),
    ("bad hash", lambda r: r.update(consent_notice_sha256="abc"), "consent_notice_sha256"),
    ("no categories", lambda r: r.update(consent_data_categories=" ; "), "consent_data_categories"),
    ("retention not a number", lambda r: r.update(consent_retention_days="a year"), "consent_retention_days"),
    ("retention too long", lambda r: r.update(consent_retention_days="9999"), "consent_retention_days"),
    ("unknown channel", lambda r: r.update(consent_channel="carrier_pigeon"), "consent_channel"),
    ("unknown kind", lambda r: r.update(kind="walk_in"), "kind"),
    ("space in reference", lambda r: r.update(external_ref="has space"), "external_ref"),
    ("no reference", lambda r: r.pop("external_ref"), "external_ref"),
    ("unknown assets band", lambda r: r.update(declared_assets_band="rich"), "declared_assets_band"),
    ("credit code on a person", lambda r: r.update(credit_code="91230100MA00000000"), "credit_code"),
]


async def test_every_validation_error_is_reported_on_its_line(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    rows, people = [], []
    for number, (_, mutate, _) in enumerate(CSV_MUTATIONS):
        body = individual(bank.program.id, f"BAD-{number}")
        people.append(body["subject"])
        row = csv_row(body)
        mutate(row)
        rows.append(row)
    company = csv_row(enterprise(bank.program.id, "ENT-BAD", credit_code="91230100MA00000000"))
    response = await _upload(client, bank, csv_file([*rows, company]))
    assert response.status_code == 202, response.text
    assert response.json()["counts"]["error"] == len(CSV_MUTATIONS) + 1
    results = {result["line"]: result for result in await _results(client, bank, response.json()["id"])}
    for line, (name, _, expected) in enumerate(CSV_MUTATIONS, start=2):
        result = results[line]
        assert result["outcome"] == "error", name
        assert expected in [error["field"] for error in result["errors"]], (name, result["errors"])
    assert [error["field"] for error in results[len(CSV_MUTATIONS) + 2]["errors"]] == ["credit_code"]
    assert results[2]["external_ref"] == "BAD-0"
    text_of_results = json.dumps(list(results.values()), ensure_ascii=False)
    for subject in people:
        assert subject["national_id"] not in text_of_results and subject["mobile"] not in text_of_results
    count = await session.scalar(
        select(func.count()).select_from(Referral).where(Referral.partner_id == bank.partner.id)
    )
    assert count == 0


async def test_jsonl_batch(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    good = individual(bank.program.id, "J-1")
    company = enterprise(bank.program.id, "J-2")
    bad = individual(bank.program.id, "J-3")
    bad["consent"] = consent(data_categories=[])
    lines = [good, "", company, "{not json", "[1, 2]", bad, {**individual(bank.program.id, "J-4"), "extra": 1}]
    response = await _upload(client, bank, jsonl_file(lines), JSONL)
    assert response.status_code == 202, response.text
    assert response.json()["format"] == "jsonl"
    assert response.json()["counts"]["total"] == 6  # the blank line is no data line
    results = {result["line"]: result for result in await _results(client, bank, response.json()["id"])}
    assert sorted(results) == [1, 3, 4, 5, 6, 7]
    assert results[1]["outcome"] == results[3]["outcome"] == "eligible"
    assert results[4]["errors"][0]["field"] is None and "JSON" in results[4]["errors"][0]["message"]
    assert results[5]["errors"][0]["field"] is None
    assert results[6]["external_ref"] == "J-3"
    assert results[6]["errors"][0]["field"] == "consent.data_categories"
    assert results[7]["errors"][0]["field"] == "extra"
    errors = await _results(client, bank, response.json()["id"], outcome="error")
    assert [result["line"] for result in errors] == [4, 5, 6, 7]


async def test_attribution_outcomes_match_single_submissions(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk, caller: CallerFactory
) -> None:
    held_elsewhere, client_already, mine_before = person(), person(), person()
    theirs = individual(other_bank.program.id, national_id=held_elsewhere)
    assert (await client.post("/v1/referrals", json=theirs, headers=other_bank.headers())).status_code == 201
    earlier = individual(bank.program.id, "EARLIER", national_id=mine_before)
    first = await client.post("/v1/referrals", json=earlier, headers=bank.headers())
    feed = await caller("back_office")
    registered = await client.post(
        "/v1/client-registry",
        json={"clients": [{"national_id": client_already, "opened_on": "2020-01-01"}]},
        headers=feed.headers,
    )
    assert registered.status_code == 200
    twice = person()
    lines = [
        individual(bank.program.id, "B-1", national_id=held_elsewhere),
        individual(bank.program.id, "B-2", national_id=client_already),
        individual(bank.program.id, "B-3", national_id=mine_before),
        individual(bank.program.id, "B-4", national_id=twice),
        individual(bank.program.id, "B-5", national_id=twice),
        individual(bank.program.id, "B-4"),
        earlier,
    ]
    response = await _upload(client, bank, jsonl_file(lines), JSONL)
    counts = response.json()["counts"]
    assert counts == {
        "total": 7,
        "processed": 7,
        "eligible": 1,
        "existing_client": 1,
        "duplicate": 1,
        "returned_existing": 3,
        "error": 1,
    }
    results = {result["line"]: result for result in await _results(client, bank, response.json()["id"])}
    assert [results[line]["outcome"] for line in range(1, 8)] == [
        "duplicate",
        "existing_client",
        "returned_existing",
        "eligible",
        "returned_existing",
        "error",
        "returned_existing",
    ]
    assert results[3]["referral_id"] == results[7]["referral_id"] == first.json()["id"]
    assert results[5]["referral_id"] == results[4]["referral_id"]
    assert results[6]["errors"] == [{"field": "external_ref", "message": "external_ref repeated in this submission"}]
    assert held_elsewhere not in response.text and other_bank.partner.id not in json.dumps(results)


# --- idempotency, scoping, scopes -----------------------------------------------------------------------------------


async def test_idempotency_key_is_required_and_binds_the_content(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    content = csv_file([csv_row(individual(bank.program.id, "IDEM-1"))])
    missing = await client.post(BATCHES, content=content.encode(), headers={**bank.caller.headers, **CSV})
    assert missing.status_code == 422
    first = await _upload(client, bank, content, {**CSV, "Idempotency-Key": "batch-1"})
    again = await _upload(client, bank, content, {**CSV, "Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    other = csv_file([csv_row(individual(bank.program.id, "IDEM-2"))])
    refused = await _upload(client, bank, other, {**CSV, "Idempotency-Key": "batch-1"})
    assert refused.status_code == 422 and refused.json()["type"].endswith("/idempotency-key-reused")
    count = await session.scalar(
        select(func.count()).select_from(ReferralBatch).where(ReferralBatch.partner_id == bank.partner.id)
    )
    assert count == 1


async def test_another_partners_batch_is_404(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk
) -> None:
    response = await _upload(client, other_bank, csv_file([csv_row(individual(other_bank.program.id))]))
    theirs = response.json()["id"]
    for path in (f"{BATCHES}/{theirs}", f"{BATCHES}/{theirs}/results"):
        refused = await client.get(path, headers=bank.caller.headers)
        assert refused.status_code == 404 and theirs not in refused.json().get("detail", "")
    mine = await client.get(BATCHES, headers=bank.caller.headers)
    assert mine.json()["data"] == []
    listed = await client.get(BATCHES, headers=other_bank.caller.headers)
    assert [batch["id"] for batch in listed.json()["data"]] == [theirs]


async def test_scopes_and_authentication(client: httpx.AsyncClient, bank: PartnerDesk, caller: CallerFactory) -> None:
    read_only = await caller("partner", partner=bank.partner, scopes=["referrals:read"])
    write_only = await caller("partner", partner=bank.partner, scopes=["referrals:write"])
    content = csv_file([csv_row(individual(bank.program.id))]).encode()
    denied = await client.post(BATCHES, content=content, headers={**read_only.headers, **CSV, "Idempotency-Key": "k"})
    assert denied.status_code == 403
    created = await client.post(BATCHES, content=content, headers={**write_only.headers, **CSV, "Idempotency-Key": "k"})
    assert created.status_code == 202
    assert (await client.get(f"{BATCHES}/{created.json()['id']}", headers=write_only.headers)).status_code == 403
    assert (await client.get(f"{BATCHES}/{created.json()['id']}", headers=read_only.headers)).status_code == 200
    assert (await client.post(BATCHES, content=content, headers={**CSV, "Idempotency-Key": "k"})).status_code == 401
    assert (await client.get(f"{BATCHES}/{created.json()['id']}/results")).status_code == 401
    back_office = await caller("back_office")
    assert (await client.get(BATCHES, headers=back_office.headers)).status_code == 403


# --- the file itself ------------------------------------------------------------------------------------------------


async def test_too_many_lines_is_413_and_leaves_nothing(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_files, "MAX_LINES", 3)
    monkeypatch.setattr(intake, "STAGE_CHUNK", 2)
    rows = [csv_row(individual(bank.program.id)) for _ in range(4)]
    response = await _upload(client, bank, csv_file(rows))
    assert response.status_code == 413 and response.json()["type"].endswith("/batch-too-large")
    assert await session.scalar(select(func.count()).select_from(ReferralBatch)) == 0
    assert await session.scalar(text("SELECT count(*) FROM referral_batch_chunks")) == 0
    assert (await _upload(client, bank, csv_file(rows[:3]))).status_code == 202


async def test_too_many_bytes_is_413(
    client: httpx.AsyncClient, bank: PartnerDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = await _upload(client, bank, "x", {**CSV, "Content-Length": str(batch_files.MAX_BYTES + 1)})
    assert declared.status_code == 413
    monkeypatch.setattr(batch_files, "MAX_BYTES", 1000)

    async def body() -> AsyncIterator[bytes]:  # streamed: no Content-Length to trust
        yield csv_file([]).encode()
        for _ in range(10):
            yield csv_file([csv_row(individual(bank.program.id))]).split("\r\n", 1)[1].encode()

    response = await client.post(BATCHES, content=body(), headers={**bank.headers(), **CSV})
    assert response.status_code == 413


async def test_encodings(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    body = individual(bank.program.id, "ENC-1", name="欧阳娜娜")
    content = csv_file([csv_row(body)])
    with_bom = await _upload(client, bank, "\ufeff" + content)
    assert with_bom.status_code == 202 and with_bom.json()["counts"]["eligible"] == 1
    gbk = csv_file([csv_row(individual(bank.program.id, "ENC-2", name="欧阳娜娜"))]).encode("gbk")
    undeclared = await _upload(client, bank, gbk)
    assert undeclared.status_code == 422 and undeclared.json()["type"].endswith("/batch-not-decodable")
    assert "line 2" in undeclared.json()["detail"]
    declared = await _upload(client, bank, gbk, {"Content-Type": "text/csv; charset=GBK"})
    assert declared.status_code == 202 and declared.json()["counts"]["eligible"] == 1
    unknown = await _upload(client, bank, content, {"Content-Type": "text/csv; charset=ebcdic"})
    assert unknown.status_code == 415
    assert (await _upload(client, bank, content, {"Content-Type": "application/pdf"})).status_code == 415
    by_parameter = await _upload(
        client,
        bank,
        jsonl_file([individual(bank.program.id)]),
        {"Content-Type": "text/plain"},
        params={"format": "jsonl"},
    )
    assert by_parameter.status_code == 202 and by_parameter.json()["format"] == "jsonl"


async def test_csv_header_problems(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    body = individual(bank.program.id)
    row = csv_row(body)
    headerless = csv_file([row]).split("\r\n", 1)[1]
    response = await _upload(client, bank, headerless)
    assert response.status_code == 422 and response.json()["type"].endswith("/invalid-batch-header")
    assert body["subject"]["national_id"] not in response.text and body["subject"]["mobile"] not in response.text
    missing = csv_file([{"program_id": bank.program.id}], columns=("program_id",))
    response = await _upload(client, bank, missing)
    assert response.status_code == 422 and "external_ref, kind" in response.json()["detail"]
    assert (await _upload(client, bank, csv_file([]))).json()["type"].endswith("/empty-batch")


async def test_columns_in_any_order_with_quotes_and_line_breaks(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    body = enterprise(bank.program.id, "ENT-Q", name='黑土地 "农业" 有限公司')
    columns = ("kind", "name", "credit_code", "external_ref", "program_id", "employer")
    row = {key: value for key, value in csv_row(body).items() if key in columns}
    content = csv_file([row], columns=columns).replace('"黑土地', '"黑土地\r\n', 1)
    content += (
        "\r\n\r\n" + csv_file([csv_row(enterprise(bank.program.id, "ENT-R"))], columns=columns).split("\r\n", 1)[1]
    )
    response = await _upload(client, bank, content)
    assert response.json()["counts"]["eligible"] == 2, response.text
    lines = [result["line"] for result in await _results(client, bank, response.json()["id"])]
    assert lines == [2, 6]


# --- staged batches, processed chunk by chunk -----------------------------------------------------------------------


async def test_a_large_batch_is_staged_encrypted_then_processed(
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    session: AsyncSession,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intake, "INLINE_LIMIT", 2)
    monkeypatch.setattr(intake, "STAGE_CHUNK", 2)
    bodies = [individual(bank.program.id, f"BIG-{index}") for index in range(5)]
    response = await _upload(client, bank, csv_file([csv_row(body) for body in bodies]))
    assert response.status_code == 202
    batch = response.json()
    assert batch["status"] == "pending" and batch["counts"]["total"] == 5 and batch["counts"]["processed"] == 0
    staged = (
        await session.execute(text("SELECT first_line, lines, payload FROM referral_batch_chunks ORDER BY first_line"))
    ).all()
    assert [(row.first_line, row.lines) for row in staged] == [(2, 2), (4, 2), (6, 1)]
    payloads = b"".join(row.payload for row in staged)
    for body in bodies:
        assert body["subject"]["national_id"].encode() not in payloads
        assert body["subject"]["name"].encode() not in payloads
    cipher = await load_cipher(session, settings)
    with pytest.raises(InvalidTag):  # bound to its batch and place: a chunk moved elsewhere does not decrypt
        cipher.decrypt(staged[1].payload, f"{CHUNK_PURPOSE}:{batch['id']}:2")

    stored = await get_batch(session, Tenant.of_partner(bank.partner.id), batch["id"])
    after = 0
    first = await processing.next_staged_chunk(session, stored.id, after, cipher)
    assert first is not None and [number for number, _ in first] == [2, 3] and "BIG-0" in first[0][1]
    while lines := await processing.next_staged_chunk(session, stored.id, after, cipher):
        prepared = await processing.prepare_chunk(session, stored, lines, cipher, _index(client), business_today())
        await processing.apply_chunk(session, stored, prepared, clock.now())
        after = prepared.last_line
        progress = (await client.get(f"{BATCHES}/{stored.id}", headers=bank.caller.headers)).json()
        assert progress["counts"]["processed"] == min(5, after - 1)
    final = (await client.get(f"{BATCHES}/{stored.id}", headers=bank.caller.headers)).json()
    assert final["status"] == "completed" and final["completed_at"] is not None
    assert final["counts"]["eligible"] == 5
    assert await session.scalar(text("SELECT count(*) FROM referral_batch_chunks")) == 0
    page = (await client.get(f"{BATCHES}/{stored.id}/results", params={"limit": 2}, headers=bank.caller.headers)).json()
    assert [result["line"] for result in page["data"]] == [2, 3]
    rest = await client.get(
        f"{BATCHES}/{stored.id}/results",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=bank.caller.headers,
    )
    assert [result["line"] for result in rest.json()["data"]] == [4, 5]
    invalid = await client.get(f"{BATCHES}/{stored.id}/results", params={"cursor": "nope"}, headers=bank.caller.headers)
    assert invalid.status_code == 400


def _index(client: httpx.AsyncClient) -> Any:
    return client._transport.app.state.data_keyring.index  # type: ignore[attr-defined]


async def test_a_chunk_of_a_batch_closed_meanwhile_writes_nothing(
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    session: AsyncSession,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intake, "INLINE_LIMIT", 1)
    monkeypatch.setattr(intake, "STAGE_CHUNK", 2)
    rows = [csv_row(individual(bank.program.id, f"CLOSED-{index}")) for index in range(2)]
    batch = (await _upload(client, bank, csv_file(rows))).json()
    stored = await get_batch(session, Tenant.of_partner(bank.partner.id), batch["id"])
    cipher = await load_cipher(session, settings)
    lines = await processing.next_staged_chunk(session, stored.id, 0, cipher)
    assert lines is not None
    prepared = await processing.prepare_chunk(session, stored, lines, cipher, _index(client), business_today())
    attribute = processing.attribute

    async def closed_meanwhile(*args: Any, **kwargs: Any) -> Any:
        # Another worker gives up on the batch (it failed too often) while this chunk is being attributed.
        outcomes = await attribute(*args, **kwargs)
        await session.execute(text("UPDATE referral_batches SET status = 'failed' WHERE id = :id"), {"id": stored.id})
        return outcomes

    monkeypatch.setattr(processing, "attribute", closed_meanwhile)
    with pytest.raises(BatchClosed):
        async with session.begin_nested():
            await processing.apply_chunk(session, stored, prepared, clock.now())
    written = await session.scalar(select(func.count()).select_from(Referral).where(Referral.batch_id == stored.id))
    staged = await session.scalar(
        text("SELECT count(*) FROM referral_batch_chunks WHERE batch_id = :id"), {"id": stored.id}
    )
    assert (written, staged) == (0, 1)
