"""CPU time of local processes and their descendants, read from ``/proc`` (Linux): what a bench's work cost each
side (service processes, the database server), whatever else shares the machine.

A process's figure is its own user and system time plus what its children that have exited (and were waited for)
took, plus the same for each child still alive: PostgreSQL's backends come and go, their postmaster waits for each.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import asyncpg

_PROC = Path("/proc")
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces), or None when gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree_cpu_s(pids: Iterable[int]) -> float | None:
    """CPU seconds of ``pids`` and their descendants so far; None where ``/proc`` cannot tell (not Linux)."""
    if not _PROC.is_dir():
        return None
    children = _children()
    total, pending = 0, list(pids)
    while pending:
        pid = pending.pop()
        fields = _stat(pid)
        if fields is None:
            continue
        # state ppid ... utime(12) stime(13) cutime(14) cstime(15), counted from the state (field 3 of the file).
        total += sum(int(value) for value in fields[11:15])
        pending += children.get(pid, [])
    return total * _TICK_S


def child_pids(parent: int, word: str) -> list[int]:
    """The children of ``parent`` whose command line holds ``word`` as one of its arguments."""
    found = []
    for pid in _children().get(parent, []):
        try:
            arguments = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if word.encode() in arguments:
            found.append(pid)
    return found


async def postmaster_pid(connection: asyncpg.Connection) -> int | None:
    """The database server's main process, when it runs on this machine (the parent of this connection's backend)."""
    backend = await connection.fetchval("SELECT pg_backend_pid()")
    fields = _stat(int(backend))
    if fields is None:  # a server elsewhere: its processes are not ours to see
        return None
    parent = int(fields[1])
    try:
        name = (_PROC / str(parent) / "comm").read_text().strip()
    except OSError:
        return None
    return parent if "postgres" in name else None
