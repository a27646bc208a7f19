from __future__ import annotations

from tests.fees.conftest import make_ledger

__all__ = ["make_ledger"]
