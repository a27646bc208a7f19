"""Chinese identifiers with check characters: the unified social credit code (GB 32100-2015) and the resident
identity card number (GB 11643-1999)."""

from __future__ import annotations

import unicodedata
from datetime import date
from operator import mul

from app.core import business_time

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_DIGIT_OFFSET = ord("0") * sum(_ID_WEIGHTS)


def to_ascii_width(value: str) -> str:
    """Full-width digits and letters (as a Chinese input method types them) as their ASCII forms: the same number
    must give the same blind index however it was typed."""
    return unicodedata.normalize("NFKC", value) if not value.isascii() else value


def normalise_credit_code(value: str) -> str:
    return to_ascii_width(value).strip().upper()


def is_valid_credit_code(value: str) -> bool:
    """18 characters from the GB 32100 alphabet whose last one is the check character of the first 17."""
    code = normalise_credit_code(value)
    if len(code) != 18 or any(char not in _USCC_ALPHABET for char in code):
        return False
    return credit_code_check_character(code[:17]) == code[17]


def credit_code_check_character(first17: str) -> str:
    total = sum(_USCC_ALPHABET.index(char) * weight for char, weight in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def normalise_national_id(value: str) -> str:
    return to_ascii_width(value).strip().upper()


def national_id_check_character(first17: str) -> str:
    """The check character of 17 ASCII digits (a digit's code is 48 plus its value)."""
    total = sum(map(mul, first17.encode("ascii"), _ID_WEIGHTS)) - _ID_DIGIT_OFFSET
    return _ID_CHECK[total % 11]


def national_id_birth_year(valid_number: str) -> int:
    """The birth year of a resident ID number already validated (``national_id_birth_date`` is not None)."""
    return int(valid_number[6:10])


def national_id_birth_date(value: str) -> date | None:
    """The birth date of a valid 18-digit resident ID number, or None when the number is not valid."""
    number = normalise_national_id(value)
    if len(number) != 18 or not number.isascii() or not number[:17].isdigit() or number[17] not in "0123456789X":
        return None
    if national_id_check_character(number[:17]) != number[17]:
        return None
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None
    if born.year < 1900 or born > business_time.today():
        return None
    return born
