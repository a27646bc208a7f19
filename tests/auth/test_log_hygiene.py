"""Secrets and personal data stay out of logs: SQL parameters are hidden, Authlib's chatter is silenced."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.config import Settings
from app.core.database import create_engine, normalise_url
from app.core.logging import configure_logging


async def test_database_errors_do_not_carry_statement_parameters(settings: Settings) -> None:
    engine = create_engine(normalise_url(settings.database_url or ""), settings)
    try:
        assert engine.sync_engine.hide_parameters
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(text("SELECT 1 / 0 WHERE :secret = :secret"), {"secret": "acs_s3cr3t"})
        assert "acs_s3cr3t" not in str(raised.value)
    finally:
        await engine.dispose()


def test_authlib_logs_warnings_only() -> None:
    configure_logging("DEBUG")
    try:
        assert logging.getLogger("authlib").getEffectiveLevel() == logging.WARNING
        assert not logging.getLogger("authlib.oauth2.rfc6749.authenticate_client").isEnabledFor(logging.INFO)
    finally:
        configure_logging("INFO")
