"""A private PostgreSQL for development and tests, started with ``pgserver`` when no ``DATABASE_URL`` is set."""

from __future__ import annotations

import json
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
        _forget_dead_handles(data_dir)
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    _servers[data_dir] = server
    url = _asyncpg_url(server.get_uri())
    log.info("embedded_postgres_started", data_dir=str(data_dir))
    return url


def _forget_dead_handles(data_dir: Path) -> None:
    # pgserver stops the server when the last process holding it exits, counting holders in this file. A holder
    # that was killed never removes itself, and the server would then outlive every later run.
    handles = data_dir / ".handle_pids.json"
    if handles.exists():
        alive = [pid for pid in json.loads(handles.read_text() or "[]") if _is_running(pid)]
        handles.write_text(json.dumps(alive))


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _asyncpg_url(uri: str) -> str:
    # pgserver answers "postgresql://postgres:@/postgres?host=/path/to/socket-dir"
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1).replace("postgres:@", "postgres@", 1)
