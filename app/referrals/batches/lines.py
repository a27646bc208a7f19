"""One line of a batch: a data record (see ``files``) validated as a single submission is, or its error result;
the result row it leaves."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from app.core.problems import field_errors
from app.referrals.batches.files import (
    MALFORMED,
    REQUIRED_CSV_COLUMNS,
    BatchFormat,
    Record,
)
from app.referrals.batches.models import (
    LineOutcome,
)
from app.referrals.batches.well_formed import Bounds, well_formed
from app.referrals.models import ReferralStatus
from app.referrals.schemas import ReferralCreate
from app.referrals.service import PlainReferral

_SUBJECT_COLUMNS = (
    "name",
    "mobile",
    "national_id",
    "credit_code",
    "contact_mobile",
    "declared_assets_band",
    "employer",
)
# CSV column → field of ``Consent``.
_CONSENT_COLUMNS = {
    "consent_captured_at": "captured_at",
    "consent_channel": "channel",
    "consent_notice_version": "notice_version",
    "consent_notice_sha256": "notice_sha256",
    "consent_recipient_name": "recipient_name",
    "consent_purpose": "purpose",
    "consent_data_categories": "data_categories",
    "consent_retention_days": "retention_days",
    "consent_separate": "separate_consent",
    "consent_evidence_ref": "evidence_ref",
}
_CONSENT_FIELDS = {field: column for column, field in _CONSENT_COLUMNS.items()}
_TRUE, _FALSE = frozenset({"true", "1", "yes", "y"}), frozenset({"false", "0", "no", "n"})
_EXTERNAL_REF = re.compile(r"^[\x21-\x7e]{1,100}$")


@dataclass(frozen=True)
class LineResult:
    line: int
    outcome: LineOutcome
    external_ref: str | None
    referral_id: str | None = None
    referral_status: ReferralStatus | None = None
    errors: list[dict[str, Any]] | None = None

    def record(self, batch_id: str) -> tuple[Any, ...]:
        errors = json.dumps(self.errors, ensure_ascii=False) if self.errors else None
        status = self.referral_status.value if self.referral_status else None
        return (batch_id, self.line, self.outcome.value, self.external_ref, self.referral_id, status, errors)


RESULT_COLUMNS = ("batch_id", "line", "outcome", "external_ref", "referral_id", "referral_status", "errors")


def _safe_ref(value: object) -> str | None:
    """The partner's reference, echoed only when it is a valid one (anything else might be personal data)."""
    return value if isinstance(value, str) and _EXTERNAL_REF.match(value) else None


def line_error(line: int, external_ref: str | None, field_name: str | None, message: str) -> LineResult:
    return LineResult(line, LineOutcome.error, external_ref, errors=[{"field": field_name, "message": message}])


def _categories(value: str) -> list[str]:
    return [item.strip() for item in value.split(";") if item.strip()]


def _retention_days(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _flag(value: str) -> bool | str:
    lowered = value.lower()
    return True if lowered in _TRUE else False if lowered in _FALSE else value


# How a consent cell becomes its field's value (the others are the text as it is).
_CONSENT_VALUES: dict[str, Callable[[str], Any]] = {
    "data_categories": _categories,
    "retention_days": _retention_days,
    "separate_consent": _flag,
}


@dataclass(frozen=True)
class _CsvLayout:
    """Where each field of the body is among a file's columns: worked out once per header, not per line."""

    top: tuple[tuple[int, str], ...]
    subject: tuple[tuple[int, str], ...]
    consent: tuple[tuple[int, str, Callable[[str], Any] | None], ...]


@lru_cache(maxsize=64)
def _csv_layout(columns: tuple[str, ...]) -> _CsvLayout:
    position = {name: index for index, name in enumerate(columns)}
    return _CsvLayout(
        top=tuple((position[name], name) for name in REQUIRED_CSV_COLUMNS if name in position),
        subject=tuple((position[name], name) for name in _SUBJECT_COLUMNS if name in position),
        consent=tuple(
            (position[column], name, _CONSENT_VALUES.get(name))
            for column, name in _CONSENT_COLUMNS.items()
            if column in position
        ),
    )


def _csv_body(columns: Sequence[str], cells: list[str]) -> dict[str, Any]:
    """The JSON body a CSV row stands for; an empty cell is an absent field."""
    layout = _csv_layout(tuple(columns))
    values = list(map(str.strip, cells))
    body: dict[str, Any] = {name: values[index] for index, name in layout.top if values[index]}
    body["subject"] = {name: values[index] for index, name in layout.subject if values[index]}
    consent = {
        name: convert(values[index]) if convert else values[index]
        for index, name, convert in layout.consent
        if values[index]
    }
    if consent:
        body["consent"] = consent
    return body


def _csv_field(loc: tuple[int | str, ...]) -> str | None:
    """The CSV column a validation error is about."""
    names = [part for part in loc if isinstance(part, str)]
    if not names:
        return None
    if names[0] == "consent" and len(names) > 1:
        return _CONSENT_FIELDS.get(names[1], "consent")
    if names[0] == "subject" and len(names) > 1:
        return names[1]
    return names[0]


def _validation_errors(error: ValidationError, batch_format: BatchFormat) -> list[dict[str, Any]]:
    # Only the location and message, as a response may show them: never the submitted value or an unknown name.
    return [
        {
            "field": _csv_field(tuple(item["loc"]))
            if batch_format is BatchFormat.csv
            else ".".join(str(part) for part in item["loc"]) or None,
            "message": item["msg"],
        }
        for item in field_errors(error.errors())
    ]


def parse_line(
    batch_format: BatchFormat, columns: Sequence[str] | None, line: int, record: Record, bounds: Bounds | None = None
) -> ReferralCreate | PlainReferral | LineResult:
    """One data record (see ``files``) as a validated ``ReferralCreate`` (or, for a CSV row in plain form, its
    values: ``well_formed``, given the ``bounds`` of the time), or its error result."""
    if isinstance(record, dict):
        return line_error(line, None, None, record.get("unreadable") or MALFORMED)
    if isinstance(record, str):  # a JSON line
        try:
            return ReferralCreate.model_validate_json(record)
        except ValidationError as exc:
            try:
                external_ref = _safe_ref(json.loads(record).get("external_ref"))
            except (ValueError, AttributeError, RecursionError):
                external_ref = None
            return LineResult(line, LineOutcome.error, external_ref, errors=_validation_errors(exc, batch_format))
    assert columns is not None and len(columns) == len(record)
    body = _csv_body(columns, record)
    if bounds is not None and (plain := well_formed(body, bounds)) is not None:
        return plain
    try:
        return ReferralCreate.model_validate(body)
    except ValidationError as exc:
        errors = _validation_errors(exc, batch_format)
        return LineResult(line, LineOutcome.error, _safe_ref(body.get("external_ref")), errors=errors)
