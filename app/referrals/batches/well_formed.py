"""The fast way through validation for a batch line in plain form: each value already as validation would leave it
(a mobile of 11 digits, an ID number in capitals with its check digit, a name without stray spaces, ...). Such a
line becomes the plain values that validation and ``encrypted_candidate`` would take from it, without the models
and their validators, which cost most of a line's time. Any value not plainly in that form sends the line the usual
way: validation then decides, and says what is wrong, as it always did. ``tests/referrals/test_well_formed.py``
checks that both ways agree."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from app.core import clock
from app.core.bulk import JsonText, json_text
from app.core.business_time import business_day
from app.core.identifiers import national_id_birth_year, national_id_check_character
from app.privacy.identity import checked_credit_code
from app.referrals.models import ReferralKind
from app.referrals.schemas import (
    CONSENT_CLOCK_SKEW,
    CONTROL_CHARACTER,
    SHA256_HEX,
    AssetsBand,
    Consent,
    ConsentChannel,
    EnterpriseSubject,
    IndividualSubject,
    ReferralCreate,
)
from app.referrals.service import PlainReferral

_KINDS = frozenset(ReferralKind)
_CHANNELS = frozenset(ConsentChannel)
_BANDS = frozenset(AssetsBand)
_TOP = frozenset(ReferralCreate.model_fields)
_INDIVIDUAL = frozenset(IndividualSubject.model_fields)
_ENTERPRISE = frozenset(EnterpriseSubject.model_fields)
_CONSENT_ORDER = tuple(Consent.model_fields)
_CONSENT = frozenset(_CONSENT_ORDER)
_REFERENCE = re.compile(r"[\x21-\x7e]{1,100}")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_INSTANT = TypeAdapter(AwareDatetime)  # pydantic's own parsing of ``captured_at``, without the model around it


@dataclass(frozen=True, slots=True)
class Bounds:
    """What validation compares with the clock, read once for many lines: a birth date before ``born_before`` and a
    consent captured by ``captured_by`` pass validation's checks at any later moment (time moves on); the fast way
    leaves any other date to validation, which reads the clock itself."""

    born_before: date
    captured_by: datetime

    @classmethod
    def now(cls) -> Bounds:
        moment = clock.now()
        return cls(business_day(moment) - timedelta(days=1), moment + CONSENT_CLOCK_SKEW)


def well_formed(body: dict[str, Any], bounds: Bounds) -> PlainReferral | None:
    """What ``ReferralCreate.model_validate(body)`` would give, as plain values, for a body whose every value is in
    plain form; None otherwise."""
    if not body.keys() <= _TOP:
        return None
    program_id, external_ref, kind = body.get("program_id"), body.get("external_ref"), body.get("kind")
    if not (_text(program_id, 40) and isinstance(external_ref, str) and _REFERENCE.fullmatch(external_ref)):
        return None
    fields = body.get("subject")
    if not (isinstance(kind, str) and kind in _KINDS and isinstance(fields, dict)):
        return None
    if kind == ReferralKind.enterprise:
        if "consent" in body or not fields.keys() <= _ENTERPRISE:
            return None
        name, identifier, mobile = fields.get("name"), fields.get("credit_code"), fields.get("contact_mobile")
        if not (_name(name, 200) and _checked(checked_credit_code, identifier) and (mobile is None or _mobile(mobile))):
            return None
        birth_year, band, employer, consent = None, None, None, None
    else:
        if not fields.keys() <= _INDIVIDUAL:
            return None
        name, identifier, mobile = fields.get("name"), fields.get("national_id"), fields.get("mobile")
        band, employer = fields.get("declared_assets_band"), fields.get("employer")
        if not (
            _name(name, 60)
            and _mobile(mobile)
            and _national_id(identifier, bounds.born_before)
            and (band is None or band in _BANDS)
            and (employer is None or (isinstance(employer, str) and len(employer) <= 200))
        ):
            return None
        if (consent := _consent(body.get("consent"), bounds.captured_by)) is None:
            return None
        birth_year = national_id_birth_year(identifier)  # type: ignore[arg-type]
    return PlainReferral(
        program_id=program_id,  # type: ignore[arg-type]
        external_ref=external_ref,
        kind=kind,
        name=name,  # type: ignore[arg-type]
        mobile=mobile,
        identifier=identifier,  # type: ignore[arg-type]
        birth_year=birth_year,
        declared_assets_band=band,
        employer=employer,
        consent=consent,
    )


def _text(value: object, longest: int) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= longest


def _name(value: object, longest: int) -> bool:
    """A name as ``normalise_name`` leaves it: single spaces between words, no control character."""
    if not (isinstance(value, str) and 1 <= len(value) <= longest):
        return False
    return " ".join(value.split()) == value and not CONTROL_CHARACTER.search(value)


def _mobile(value: object) -> bool:
    return isinstance(value, str) and _MOBILE.fullmatch(value) is not None


def _checked(check: Callable[[str], str], value: object) -> bool:
    """``value`` is 18 ASCII characters that ``check`` accepts and leaves as they are."""
    if not (isinstance(value, str) and len(value) == 18 and value.isascii()):
        return False
    try:
        return check(value) == value
    except ValueError:
        return False


def _national_id(value: object, born_before: date) -> bool:
    """An ID number as ``checked_national_id`` accepts and leaves it, of someone born before ``born_before``."""
    if not (isinstance(value, str) and len(value) == 18 and value.isascii() and value[:17].isdigit()):
        return False
    if national_id_check_character(value[:17]) != value[17]:
        return False
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return born.year >= 1900 and born < born_before


def _consent(fields: object, captured_by: datetime) -> JsonText | None:
    """The consent evidence as ``Consent.model_dump_json()`` writes it (its fields in their order)."""
    if not (isinstance(fields, dict) and fields.keys() == _CONSENT):
        return None
    channel, sha256 = fields["channel"], fields["notice_sha256"]
    sha256 = sha256.lower() if isinstance(sha256, str) else ""
    categories, retention = fields["data_categories"], fields["retention_days"]
    if not (
        isinstance(channel, str)
        and channel in _CHANNELS
        and SHA256_HEX.match(sha256)
        and _text(fields["notice_version"], 40)
        and _text(fields["recipient_name"], 200)
        and _text(fields["purpose"], 500)
        and _text(fields["evidence_ref"], 200)
        and type(categories) is list
        and 1 <= len(categories) <= 20
        and all(_text(category, 60) for category in categories)
        and type(retention) is int
        and 1 <= retention <= 3650
        and fields["separate_consent"] is True
        and isinstance(fields["captured_at"], str)
    ):
        return None
    try:
        captured_at = _INSTANT.validate_python(fields["captured_at"])
    except ValidationError:
        return None
    if captured_at > captured_by:
        return None
    evidence = {name: fields[name] for name in _CONSENT_ORDER}
    evidence["captured_at"], evidence["notice_sha256"] = captured_at, sha256
    return JsonText(json_text(evidence))
