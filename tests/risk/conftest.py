from __future__ import annotations

from tests.console.conftest import console_as
from tests.fees.conftest import make_ledger

__all__ = ["console_as", "make_ledger"]
