"""The SDK's pieces that need no service: retry timing, model reading, batch files, keys, the CLI."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from alliance_partner import (
    Batch,
    Consent,
    IndividualSubject,
    Referral,
    ReferralCreate,
    RetryPolicy,
    load_private_key,
    public_jwks,
    rows_to_csv,
)
from alliance_partner.__main__ import main as cli
from alliance_partner._base import batch_payload, claim_payload
from alliance_partner._exceptions import RateLimitError, UnprocessableEntityError, error_for_response
from alliance_partner._models import from_json, to_json
from alliance_partner._retry import parse_retry_after
from joserfc.jwk import ECKey

from app.referrals.batches import files as batch_files
from tests.auth.helpers import partner_key

REFERRAL = {
    "id": "ref_1",
    "program_id": "prg_1",
    "external_ref": "C1",
    "kind": "vip",
    "status": "eligible",
    "subject": {"name": "王*", "mobile": "138****0000", "identifier": "2301********1234", "erased": False},
    "age_band": "25_35",
    "declared_assets_band": None,
    "window_ends_at": "2027-02-23T00:00:00Z",
    "outcome_at": None,
    "created_at": "2026-11-25T01:00:00+00:00",
    "updated_at": "2026-11-25T01:00:00+00:00",
}


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("7") == 7.0
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= (parse_retry_after(format_datetime(later, usegmt=True)) or 0) <= 31
    assert parse_retry_after(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_grows_is_capped_and_stops() -> None:
    policy = RetryPolicy(max_retries=4, backoff_base=1.0, backoff_max=3.0, retry_after_max=10)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 3.0), (4, 3.0)]:
        assert all(0 <= (policy.delay(retry, None) or 0) <= ceiling for _ in range(50))
    assert policy.delay(5, None) is None
    assert policy.delay(1, httpx.Response(429, headers={"Retry-After": "4"})) == 4.0
    assert policy.delay(1, httpx.Response(429, headers={"Retry-After": "11"})) is None
    assert RetryPolicy(backoff_base=0).delay(1, None) == 0.0


def test_models_read_the_api_and_ignore_what_they_do_not_know() -> None:
    referral = from_json(Referral, {**REFERRAL, "a_field_from_a_newer_api": 1})
    assert referral.window_ends_at == datetime(2027, 2, 23, tzinfo=UTC) and referral.subject.name == "王*"
    assert referral.is_new is None
    older = from_json(Referral, {key: value for key, value in REFERRAL.items() if key != "age_band"})
    assert older.age_band is None
    batch = from_json(
        Batch,
        {
            "id": "bat_1",
            "status": "processing",
            "format": "csv",
            "counts": dict.fromkeys(("total", "eligible", "existing_client", "duplicate", "returned_existing"), 0)
            | {"total": 4, "processed": 1, "error": 1},
            "created_at": "2026-11-25T01:00:00+00:00",
            "updated_at": "2026-11-25T01:00:00+00:00",
            "completed_at": None,
            "links": {"self": "/v1/referral-batches/bat_1"},
        },
    )
    assert batch.progress == 0.25 and not batch.finished


def test_requests_serialise_without_nones_and_with_aware_times() -> None:
    body = to_json(
        ReferralCreate(
            program_id="prg_1",
            external_ref="C1",
            kind="vip",
            subject=IndividualSubject(name="王建国", mobile="13800000000", national_id="230103197603124635"),
            consent=Consent(
                captured_at=datetime(2026, 11, 1, 10, tzinfo=UTC),
                channel="mobile_app",
                notice_version="v1",
                notice_sha256=Consent.hash_notice("notice"),
                recipient_name="示范证券",
                purpose="推荐",
                data_categories=["name"],
                retention_days=30,
                evidence_ref="E1",
            ),
        )
    )
    assert "declared_assets_band" not in body["subject"]
    assert body["consent"]["captured_at"] == "2026-11-01T10:00:00+00:00"
    assert body["consent"]["separate_consent"] is True
    with pytest.raises(ValueError, match="timezone-aware"):
        to_json({"at": datetime(2026, 1, 1)})


def test_rows_become_the_batch_csv_the_service_reads(tmp_path: Path) -> None:
    from tests.factories.referrals import enterprise, individual

    content = rows_to_csv([individual("prg_1", "A-1"), enterprise("prg_1", "E-1")])
    header = content.decode().splitlines()[0].split(",")
    assert header == list(batch_files.CSV_COLUMNS), "the SDK writes the service's columns, in its order"
    record = content.decode().splitlines()[1]
    assert "name;mobile;national_id" in record and ",true," in record
    with pytest.raises(ValueError, match="no batch CSV column"):
        rows_to_csv([{"program_id": "p", "external_ref": "x", "kind": "vip", "subject": {"nickname": "x"}}])

    assert batch_payload(b"\xef\xbb\xbfprogram_id,external_ref,kind\n", None)[1] == "csv"
    assert batch_payload('  {"program_id": "p"}\n', None)[1] == "jsonl"
    assert batch_payload([individual("prg_1", "A-1")], "csv")[1] == "csv"
    (tmp_path / "x.ndjson").write_text("{}\n")
    assert batch_payload(tmp_path / "x.ndjson", None)[1] == "jsonl"
    assert claim_payload("external_ref,fee_type,amount_fen\n")[1] == "text/csv"
    assert claim_payload([{"external_ref": "A", "fee_type": "cap", "amount_fen": -1}]) == (
        b'{"lines":[{"external_ref":"A","fee_type":"cap","amount_fen":-1}]}',
        "application/json",
    )


def test_error_responses_that_are_not_problem_documents() -> None:
    request = httpx.Request("GET", "http://alliance.example/v1/programs")
    proxy = httpx.Response(429, text="<html>slow down</html>", headers={"Retry-After": "3", "X-Request-ID": "r-9"})
    proxy.request = request
    error = error_for_response(proxy)
    assert isinstance(error, RateLimitError) and error.retry_after == 3.0 and error.request_id == "r-9"
    assert error.code == "http-error" and error.status == 429
    odd = httpx.Response(422, json=["not", "a", "problem"])
    assert isinstance(error_for_response(odd), UnprocessableEntityError)


def test_private_keys_in_every_form(tmp_path: Path) -> None:
    key = partner_key("EC")
    pem = key.as_pem(private=True)
    (tmp_path / "key.pem").write_bytes(pem)
    for form in (key, key.as_dict(private=True), pem, pem.decode(), tmp_path / "key.pem"):
        assert load_private_key(form).thumbprint() == key.thumbprint()
    rsa = partner_key("RSA")
    assert load_private_key(rsa.as_pem(private=True)).thumbprint() == rsa.thumbprint()
    jwks = public_jwks(load_private_key(pem))
    [public] = jwks["keys"]
    assert public["alg"] == "ES256" and public["use"] == "sig" and "d" not in public
    assert public["kid"] == key.thumbprint()


def test_the_keygen_and_jwks_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "partner-key.pem"
    assert cli(["keygen", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = ECKey.import_key(path.read_bytes())
    assert printed["keys"][0]["kid"] == key.thumbprint() and "d" not in printed["keys"][0]
    assert cli(["jwks", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == printed
    with pytest.raises(FileExistsError):
        cli(["keygen", str(path)])  # never overwrites a key
