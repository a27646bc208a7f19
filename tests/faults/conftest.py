"""Fault tests: a PostgreSQL server of their own that they may stop and start, and partners to load it with.

The shared server (the embedded one, or ``DATABASE_URL``) serves every other test run on this machine: a test that
restarts a database starts a private one, in a temporary folder, with the binaries that ``pgserver`` ships (so the
same with and without ``DATABASE_URL``). It listens on a Unix socket in its data folder only, which keeps its URL
the same across restarts.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.auth.keys import Keyring
from app.core.config import Settings
from app.core.database import Database
from app.core.embedded_db import _asyncpg_url
from tests.worker.conftest import Desk, open_desk


class PrivatePostgres:
    """A PostgreSQL server in ``pgdata`` that only this test uses: ``stop()`` it, ``start()`` it again."""

    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

        # pgserver stops (and, "delete", removes) the server when this process exits, should the test not.
        self._server: Any = pgserver.get_server(pgdata, cleanup_mode="delete")
        self.pgdata = pgdata
        self.url = _asyncpg_url(self._server.get_uri())

    def stop(self, mode: str = "immediate") -> None:
        """``pg_ctl stop -m immediate``: every backend dies at once, as in a crash (the next start recovers)."""
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.pgdata, user=self._server.system_user, timeout=30)

    def start(self) -> None:
        self._server.ensure_postgres_running()
        assert _asyncpg_url(self._server.get_uri()) == self.url, "the socket moved"

    def cleanup(self) -> None:
        self._server.cleanup()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # A short path under /tmp: the Unix socket lives in the data folder, and socket paths are short.
    parent = Path(tempfile.mkdtemp(prefix="alliance-fault-"))
    server = PrivatePostgres(parent / "pgdata")
    try:
        yield server
    finally:
        try:
            server.cleanup()
        finally:
            shutil.rmtree(parent, ignore_errors=True)


async def make_desk(database: Database, settings: Settings, keyring: Keyring, name: str = "故障银行") -> Desk:
    """A partner, its program and a client whose own rate limit is out of the way of the test's load."""
    return await open_desk(database, settings, keyring, name, rate_limit_per_second=10_000)
