"""The identity rule of a referred person or client: a resident ID number or a unified social credit code,
normalised (as the blind index needs it) and checked. The referral intake, the conversion feed and the registry
of existing clients all use it, so one number is valid (and hashes the same) wherever it arrives."""

from __future__ import annotations

from app.core.identifiers import (
    is_valid_credit_code,
    national_id_birth_date,
    normalise_credit_code,
    normalise_national_id,
)

NOT_A_NATIONAL_ID = "national_id is not a valid resident ID number"
NOT_A_CREDIT_CODE = "credit_code is not a valid unified social credit code"


def checked_national_id(value: str, problem: str = NOT_A_NATIONAL_ID) -> str:
    """The normalised resident ID number; ``ValueError(problem)`` when its check digit or birth date is wrong."""
    number = normalise_national_id(value)
    if national_id_birth_date(number) is None:
        raise ValueError(problem)
    return number


def checked_credit_code(value: str, problem: str = NOT_A_CREDIT_CODE) -> str:
    """The normalised unified social credit code; ``ValueError(problem)`` when its check character is wrong."""
    code = normalise_credit_code(value)
    if not is_valid_credit_code(code):
        raise ValueError(problem)
    return code


def one_identity(national_id: str | None, credit_code: str | None, *, missing: str) -> tuple[str | None, str | None]:
    """Exactly one of the two identifiers, normalised and checked; ``ValueError(missing)`` for none or both."""
    if (national_id is None) == (credit_code is None):
        raise ValueError(missing)
    if national_id is not None:
        return checked_national_id(national_id), None
    return None, checked_credit_code(credit_code or "")
