from __future__ import annotations

from datetime import date

import pytest

from app.core.identifiers import (
    credit_code_check_character,
    is_valid_credit_code,
    national_id_birth_date,
    national_id_check_character,
    normalise_credit_code,
    normalise_national_id,
)
from app.referrals.schemas import normalise_mobile


@pytest.mark.parametrize(
    "code",
    ["91350100M000100Y43", "91110000100000000H".replace("H", credit_code_check_character("91110000100000000"))],
)
def test_valid_credit_codes(code: str) -> None:
    assert is_valid_credit_code(code)
    assert is_valid_credit_code(code.lower())


@pytest.mark.parametrize("code", ["91350100M000100Y44", "91350100M000100Y4", "9135010OM000100Y43", ""])
def test_invalid_credit_codes(code: str) -> None:
    assert not is_valid_credit_code(code)


def test_national_id_check_digit_and_birth_date() -> None:
    assert national_id_check_character("11010519491231002") == "X"
    assert national_id_birth_date("11010519491231002X") == date(1949, 12, 31)
    assert national_id_birth_date("11010519491231002x") == date(1949, 12, 31)


@pytest.mark.parametrize(
    "number",
    [
        "110105194912310021",  # wrong check digit
        "11010519491331002" + national_id_check_character("11010519491331002"),  # month 13
        "11010530000101002" + national_id_check_character("11010530000101002"),  # born in the future
        "1101051949123100",  # too short
    ],
)
def test_invalid_national_ids(number: str) -> None:
    assert national_id_birth_date(number) is None


def full_width(text: str) -> str:
    """As a Chinese input method types it: U+FF01-FF5E for ASCII 21-7E."""
    return "".join(chr(ord(char) + 0xFEE0) if char != " " else char for char in text)


def arabic_indic(digits: str) -> str:
    return "".join(chr(0x0660 + int(digit)) if digit.isdigit() else digit for digit in digits)


def test_full_width_numbers_are_the_same_numbers() -> None:
    number = "11010519491231002X"
    assert normalise_national_id(full_width(number)) == number
    assert national_id_birth_date(full_width(number)) == date(1949, 12, 31)
    code = "91350100M000100Y43"
    assert normalise_credit_code(full_width(code)) == code
    assert is_valid_credit_code(full_width(code))
    assert normalise_mobile(full_width("138 0013 8000")) == "13800138000"


def test_digits_of_other_scripts_are_not_numbers() -> None:
    # int() and \d accept them, so they once passed as valid numbers with a blind index of their own.
    assert national_id_birth_date(arabic_indic("11010519491231002") + "X") is None
    with pytest.raises(ValueError):
        normalise_mobile(arabic_indic("13800138000"))
