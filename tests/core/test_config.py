from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.config import DEVELOPMENT_MASTER_KEY, Settings


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_development_runs_with_the_well_known_master_key() -> None:
    settings = _settings(environment="development")
    assert settings.master_key_value == DEVELOPMENT_MASTER_KEY


@pytest.mark.parametrize("master_key", [None, "changeme", DEVELOPMENT_MASTER_KEY])
def test_production_refuses_missing_or_placeholder_master_key(master_key: str | None) -> None:
    with pytest.raises(ValidationError, match="ALLIANCE_MASTER_KEY"):
        _settings(environment="production", master_key=master_key, database_url="postgresql://db/alliance")


def test_production_refuses_plain_http() -> None:
    with pytest.raises(ValidationError, match="https"):
        _settings(
            environment="production",
            master_key="a-real-key-from-the-vault-0123456789",
            database_url="postgresql://db/alliance",
            public_url="http://alliance.example",
        )


def test_production_refuses_the_embedded_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("ALLIANCE_DATABASE_URL", raising=False)
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        _settings(
            environment="production",
            master_key="a-real-key-from-the-vault-0123456789",
            public_url="https://alliance.example",
        )


def test_plain_database_url_and_prefixed_name_are_both_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://plain/db")
    assert _settings().database_url == "postgresql://plain/db"
    monkeypatch.setenv("ALLIANCE_DATABASE_URL", "postgresql://prefixed/db")
    assert _settings().database_url == "postgresql://prefixed/db"
