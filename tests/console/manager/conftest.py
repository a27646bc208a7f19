"""The manager's pages are checked against the reports' story alliance (``tests/reports/conftest.py``): three
partners, eleven referrals, one conflict (R5, the insurer's referral of R1's person), known figures."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from tests.reports.conftest import Book, write_book


@pytest.fixture
async def book(app: FastAPI, session: AsyncSession) -> Book:
    return await write_book(session, app.state.data_keyring)
