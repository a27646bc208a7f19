"""Referral factories live in ``tests.factories.referrals`` (registered for the whole suite in tests/conftest.py)."""

from tests.factories.referrals import (  # noqa: F401
    PartnerDesk,
    consent,
    credit_code,
    enterprise,
    individual,
    make_program,
    mobile,
    national_id,
)
from tests.referrals.alliance import alliance  # noqa: F401
