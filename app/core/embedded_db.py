"""A private PostgreSQL for development and tests, started with ``pgserver`` when no ``DATABASE_URL`` is set."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

_servers: dict[Path, Any] = {}


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded server in ``data_dir`` and return its asyncpg URL.

    The data folder survives restarts; the server stops when the last process using it exits.
    """
    data_dir = data_dir.resolve()
    if data_dir in _servers:
        return _asyncpg_url(_servers[data_dir].get_uri())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.parent))
        import pgserver

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    _servers[data_dir] = server
    url = _asyncpg_url(server.get_uri())
    log.info("embedded_postgres_started", data_dir=str(data_dir))
    return url


def _asyncpg_url(uri: str) -> str:
    # pgserver answers "postgresql://postgres:@/postgres?host=/path/to/socket-dir"
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1).replace("postgres:@", "postgres@", 1)
