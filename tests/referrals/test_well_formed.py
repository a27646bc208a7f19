"""The fast way through validation for CSV lines in plain form (``app.referrals.batches.well_formed``) gives what
validation gives, or leaves the line to validation: never a line validation would refuse, never another value."""

from __future__ import annotations

import csv
import io
import os
from datetime import date, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError

from app.core import clock
from app.core.bulk import JsonText
from app.core.business_time import today as business_today
from app.privacy.crypto import BlindIndex, DataCipher
from app.referrals.batches import lines, processing
from app.referrals.batches.files import CSV_COLUMNS, BatchFormat
from app.referrals.batches.well_formed import Bounds, well_formed
from app.referrals.schemas import EnterpriseSubject, IndividualSubject, ReferralCreate
from app.referrals.service import PlainReferral
from tests.core.test_identifiers import full_width
from tests.referrals.conftest import consent, credit_code, enterprise, individual, national_id
from tests.referrals.test_batches import csv_row

PROGRAM = "prg_well_formed"


def _body(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the batch reads it: the JSON body it stands for."""
    return lines._csv_body(CSV_COLUMNS, [row.get(column, "") for column in CSV_COLUMNS])


def _validated(body: dict[str, Any]) -> PlainReferral | None:
    """The oracle: pydantic's validation of the body, as plain values; None when it refuses the body."""
    try:
        data = ReferralCreate.model_validate(body)
    except ValidationError:
        return None
    subject = data.subject
    mobile: str | None
    if isinstance(subject, IndividualSubject):
        identifier, mobile, birth_year = subject.national_id, subject.mobile, int(subject.national_id[6:10])
        band = subject.declared_assets_band.value if subject.declared_assets_band else None
        employer = subject.employer
    else:
        assert isinstance(subject, EnterpriseSubject)
        identifier, mobile, birth_year, band, employer = subject.credit_code, subject.contact_mobile, None, None, None
    return PlainReferral(
        program_id=data.program_id,
        external_ref=data.external_ref,
        kind=data.kind.value,
        name=subject.name,
        mobile=mobile,
        identifier=identifier,
        birth_year=birth_year,
        declared_assets_band=band,
        employer=employer,
        consent=JsonText(data.consent.model_dump_json()) if data.consent else None,
    )


def _ending_in_x() -> str:
    while not (number := national_id()).endswith("X"):
        pass
    return number


def _plain_rows() -> list[dict[str, str]]:
    rows = [csv_row(individual(PROGRAM, f"P-{n}", national_id=national_id())) for n in range(20)]
    rows.append(csv_row(individual(PROGRAM, "M-1", national_id=national_id())) | {"kind": "employee"})
    rows += [csv_row(enterprise(PROGRAM, "E-1")), csv_row(enterprise(PROGRAM, "E-2", contact_mobile="13912345678"))]
    rows.append(csv_row(individual(PROGRAM, "B-1", national_id=national_id(), declared_assets_band="1m_to_5m")))
    rows.append(csv_row(individual(PROGRAM, "W-1", national_id=national_id(), employer="哈尔滨 电机厂")))
    for captured_at in ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00.123456+08:00", "2026-11-01 02:00:00-05:30"):
        rows.append(csv_row(individual(PROGRAM, national_id=national_id())) | {"consent_captured_at": captured_at})
    rows.append(csv_row(individual(PROGRAM, "X-1", national_id=_ending_in_x())))
    return rows


# One change each to a plain row: forms validation accepts but normalises, and forms it refuses.
_FUTURE = (clock.now() + timedelta(days=2)).isoformat()
CHANGES: list[dict[str, str]] = [
    {"name": " 张  三 "},
    {"name": "张\t三"},
    {"name": "张\x01三"},
    {"name": "张" * 61},
    {"mobile": "+8613812345678"},
    {"mobile": "138-1234-5678"},
    {"mobile": full_width("13812345678")},
    {"mobile": "12812345678"},
    {"mobile": "1381234567"},
    {"national_id": national_id().lower()[:17] + "x"},
    {"national_id": full_width(national_id())},
    {"national_id": national_id()[:17] + "Y"},
    {"national_id": national_id()[:16]},
    {"national_id": national_id(born=business_today() + timedelta(days=400))},
    {"national_id": national_id(born=business_today())},  # valid, left to validation (it reads the clock)
    {"national_id": national_id(born=business_today() - timedelta(days=1))},
    {"national_id": national_id(born=date(1899, 12, 31))},
    {"national_id": "", "credit_code": credit_code()},
    {"credit_code": credit_code()},
    {"contact_mobile": "13912345678"},
    {"declared_assets_band": "under_1m"},
    {"declared_assets_band": "lots"},
    {"employer": "厂" * 200},
    {"employer": "厂" * 201},
    {"consent_captured_at": "1700000000"},
    {"consent_captured_at": "2026-11-01T10:00:00"},
    {"consent_captured_at": "yesterday"},
    {"consent_captured_at": _FUTURE},
    {"consent_captured_at": clock.now().isoformat()},
    {"consent_channel": "pigeon"},
    {"consent_notice_sha256": consent()["notice_sha256"].upper()},
    {"consent_notice_sha256": "abc"},
    {"consent_notice_version": "v" * 41},
    {"consent_recipient_name": "名" * 201},
    {"consent_purpose": "的" * 501},
    {"consent_evidence_ref": "e" * 201},
    {"consent_retention_days": "0"},
    {"consent_retention_days": "3651"},
    {"consent_retention_days": "a year"},
    {"consent_retention_days": "٣٦٥"},  # digits of another script: int() reads them
    {"consent_separate": "false"},
    {"consent_separate": "maybe"},
    {"consent_separate": "YES"},
    {"consent_data_categories": "name;;mobile"},
    {"consent_data_categories": ";".join(f"c{n}" for n in range(21))},
    {"consent_data_categories": "c" * 61},
    {"consent_purpose": ""},
    {"consent_channel": "", "consent_purpose": "", "consent_captured_at": ""},
    {column: "" for column in CSV_COLUMNS if column.startswith("consent_")},
    {"kind": "VIP"},
    {"kind": "enterprise"},
    {"kind": "nobody"},
    {"external_ref": "has space"},
    {"external_ref": "R" * 101},
    {"external_ref": "引用"},
    {"program_id": "p" * 41},
]


def test_every_plain_line_takes_the_fast_way_with_the_values_validation_gives() -> None:
    for row in _plain_rows():
        body = _body(row)
        fast = well_formed(body, Bounds.now())
        assert fast is not None, body
        assert fast == _validated(body)


@pytest.mark.parametrize("change", CHANGES, ids=[",".join(change) for change in CHANGES])
def test_a_line_not_in_plain_form_gets_what_validation_gives(change: dict[str, str]) -> None:
    taken = 0
    for base in _plain_rows():
        body = _body(base | change)
        fast = well_formed(body, Bounds.now())
        if fast is not None:  # only ever what validation gives
            taken += 1
            assert fast == _validated(body), body
    if change in ({"declared_assets_band": "under_1m"}, {"employer": "厂" * 200}):
        assert taken  # still plain: the fast way


def test_a_chunk_gives_the_same_candidates_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _plain_rows() + [base | change for base in _plain_rows()[:3] for change in CHANGES]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writerows([{column: row.get(column, "") for column in CSV_COLUMNS} for row in rows])
    records = [(number, cells) for number, cells in enumerate(csv.reader(io.StringIO(buffer.getvalue())), start=2)]
    cipher = DataCipher({7: AESGCM(os.urandom(32))}, 7)
    index = BlindIndex(os.urandom(32))

    class Batch:
        format, columns = BatchFormat.csv, list(CSV_COLUMNS)

    class Program:
        id, attribution_window_days = PROGRAM, 45

    def prepared() -> processing.PreparedChunk:
        chunk = processing.prepare_lines(Batch, records, {PROGRAM: Program}, cipher, index, date(2026, 12, 7))  # type: ignore[arg-type, dict-item]
        return chunk

    fast = prepared()
    monkeypatch.setattr(lines, "well_formed", lambda body, bounds: None)
    slow = prepared()

    assert fast.results == slow.results and fast.external_refs == slow.external_refs
    assert len(fast.candidates) == len(slow.candidates) > len(_plain_rows())

    def opened(candidate: Any) -> dict[str, Any]:
        values = dict(vars(candidate))
        for name, column in (("name_ct", "referrals.name"), ("mobile_ct", "referrals.mobile")):
            values[name] = cipher.decrypt(values[name], column) if values[name] else None
        values["identifier_ct"] = cipher.decrypt(values["identifier_ct"], "referrals.identifier")
        return values

    assert [opened(c) for c in fast.candidates] == [opened(c) for c in slow.candidates]
