"""One identity rule wherever an identifier arrives: the referral intake, the conversion feed and the registry of
existing clients normalise the same numbers the same way and refuse the same wrong ones (so a person hashes to the
same blind index whichever door they came in by)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from app.conversions.schemas import EventIn
from app.referrals.registry import RegisteredClient
from app.referrals.schemas import EnterpriseSubject, IndividualSubject


def _full_width(value: str) -> str:
    """As a Chinese input method types it: each ASCII digit and letter as its full-width form (U+FF10...)."""
    return "".join(chr(ord(char) + 0xFEE0) for char in value)


# Published sample numbers (GB 11643 and GB 32100 examples), typed as people type them.
NATIONAL_ID = "11010519491231002X"
CREDIT_CODE = "91350100M000100Y43"
TYPED_NATIONAL_IDS = ["11010519491231002x", _full_width(NATIONAL_ID)]  # lower case; full width (an IME)
TYPED_CREDIT_CODES = ["91350100m000100y43", _full_width(CREDIT_CODE)]
WRONG_NATIONAL_IDS = ["110105194912310021", "11010519491331002X", "11010519491231002Y"]  # check digit, month, letter
WRONG_CREDIT_CODES = ["91350100M000100Y44", "91350100M000100I43"]  # check character; a letter GB 32100 omits


def _feed(**identity: str) -> EventIn:
    return EventIn.model_validate(
        {
            "source_event_id": "evt-1",
            "type": "account_opened",
            "occurred_at": datetime(2026, 3, 1, tzinfo=UTC),
            "client_ref": "C-1",
            **identity,
        }
    )


def _registry(**identity: str) -> RegisteredClient:
    return RegisteredClient.model_validate({"opened_on": date(2020, 1, 1), **identity})


def _subject(national_id: str) -> IndividualSubject:
    return IndividualSubject.model_validate(_person(national_id))


def _person(national_id: str) -> dict[str, Any]:
    return {"name": "张三丰", "mobile": "13800138000", "national_id": national_id}


@pytest.mark.parametrize("typed", TYPED_NATIONAL_IDS)
def test_a_national_id_is_normalised_alike_everywhere(typed: str) -> None:
    assert _feed(national_id=typed).national_id == NATIONAL_ID
    assert _registry(national_id=typed).national_id == NATIONAL_ID
    assert _subject(typed).national_id == NATIONAL_ID


@pytest.mark.parametrize("typed", TYPED_CREDIT_CODES)
def test_a_credit_code_is_normalised_alike_everywhere(typed: str) -> None:
    assert _feed(credit_code=typed).credit_code == CREDIT_CODE
    assert _registry(credit_code=typed).credit_code == CREDIT_CODE
    assert EnterpriseSubject.model_validate({"name": "某公司", "credit_code": typed}).credit_code == CREDIT_CODE


@pytest.mark.parametrize("wrong", WRONG_NATIONAL_IDS)
def test_a_wrong_national_id_is_refused_everywhere(wrong: str) -> None:
    for build in (lambda: _feed(national_id=wrong), lambda: _registry(national_id=wrong), lambda: _subject(wrong)):
        with pytest.raises(ValidationError, match="not a valid resident ID number"):
            build()


@pytest.mark.parametrize("wrong", WRONG_CREDIT_CODES)
def test_a_wrong_credit_code_is_refused_everywhere(wrong: str) -> None:
    for build in (lambda: _feed(credit_code=wrong), lambda: _registry(credit_code=wrong)):
        with pytest.raises(ValidationError, match="not a valid unified social credit code"):
            build()


def test_exactly_one_identifier_is_asked_for() -> None:
    with pytest.raises(ValidationError, match="account_opened needs exactly one of national_id or credit_code"):
        _feed(national_id=NATIONAL_ID, credit_code=CREDIT_CODE)
    with pytest.raises(ValidationError, match="give exactly one of national_id or credit_code"):
        _registry()
