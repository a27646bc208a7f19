"""A client's API rate limit, held across every API process: the token bucket lives in PostgreSQL
(``api_rate_buckets``, one UNLOGGED row per client) and each process leases tokens from it in chunks.

A call spends a token of its process's lease, in memory; only when the lease is spent (or older than
``LEASE_S``) does the process take the next chunk, in one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``: the
bucket refills at the client's rate up to twice that (the burst), and grants at most the chunk. Every call that is
answered spent a token taken from the one bucket, so the processes together never exceed the rate; what a lease
leaves unspent when it lapses is lost, which is why a chunk is a small part of a second's rate (``LEASE_SHARE``)
and why leases lapse quickly. With the bucket empty a process refuses locally until it has refilled enough.

One lease at a time per client per process (the calls that find it spent wait for the same one), on a small pool
of its own in autocommit (``engine``): never a connection of the request's pool, which a request could be holding
while it waited. Without an engine (the tests' rolled-back transaction) the lease is taken in the request's session.
Time is the database's (``statement_timestamp()``): one clock for every process.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.auth.limits import TokenBuckets

LEASE_SHARE = 50  # a chunk is 1/50 of a second's rate: what lapses unspent stays within a few per cent of it
MAX_CHUNK = 1000
LEASE_S = 1.0
NEEDS_LEASE = -1.0

_RATE, _CAPACITY, _CHUNK = "CAST(:rate AS float8)", "CAST(:capacity AS float8)", "CAST(:chunk AS float8)"
_ELAPSED = "GREATEST(0, EXTRACT(EPOCH FROM statement_timestamp() - b.refilled_at))"
_AVAILABLE = f"LEAST({_CAPACITY}, b.tokens + {_ELAPSED} * {_RATE})"
_GRANT = f"GREATEST(0, LEAST({_CHUNK}, FLOOR({_AVAILABLE})))"
_FIRST_GRANT = f"LEAST({_CHUNK}, {_CAPACITY})"
LEASE = text(
    f"""
    INSERT INTO api_rate_buckets AS b (client_id, tokens, granted, refilled_at)
    VALUES (CAST(:client_id AS varchar), {_CAPACITY} - {_FIRST_GRANT}, {_FIRST_GRANT}, statement_timestamp())
    ON CONFLICT (client_id) DO UPDATE SET
        granted = {_GRANT},
        tokens = {_AVAILABLE} - {_GRANT},
        refilled_at = GREATEST(b.refilled_at, statement_timestamp())
    RETURNING granted, tokens
    """
)


@dataclass
class _Lease:
    tokens: int = 0
    until: float = 0.0
    refused_until: float = 0.0
    pending: asyncio.Future[float] | None = None


@dataclass
class SharedTokenBuckets(TokenBuckets):
    """``TokenBuckets`` whose tokens come from the shared bucket; ``take`` answers ``NEEDS_LEASE`` when the
    process must ask the database (``lease``)."""

    engine: AsyncEngine | None = None
    lease_share: int = LEASE_SHARE
    _leases: dict[str, _Lease] = field(default_factory=dict)

    def take(self, key: str, rate: int | None = None) -> float:
        rate = rate or self.default_rate
        self._rates[key] = rate
        lease = self._leases.get(key)
        now = time.monotonic()
        if lease is None:
            return NEEDS_LEASE
        if now < lease.refused_until:
            return lease.refused_until - now
        if lease.tokens >= 1 and now < lease.until:
            lease.tokens -= 1
            return 0.0
        return NEEDS_LEASE

    async def lease(self, session: AsyncSession | None, key: str) -> float:
        """Take the next chunk of ``key``'s tokens from the shared bucket and spend one: 0 when the call may
        proceed, else the seconds to wait. ``session`` is used only without an engine."""
        lease = self._leases.setdefault(key, _Lease())
        if lease.pending is None:
            lease.pending = asyncio.get_running_loop().create_future()
            pending = lease.pending
            try:
                wait = await self._renew(session, key, lease)
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved: the waiters (if any) get it too
                raise
            finally:
                lease.pending = None
            pending.set_result(wait)
            return wait
        await asyncio.shield(lease.pending)
        # The lease just renewed: spend from it like any call (another waiter may have spent the last token).
        wait = self.take(key, self._rates.get(key))
        return await self.lease(session, key) if wait == NEEDS_LEASE else wait

    async def _renew(self, session: AsyncSession | None, key: str, lease: _Lease) -> float:
        rate = self._rates.get(key) or self.default_rate
        capacity = 2.0 * rate
        chunk = max(1, min(MAX_CHUNK, rate // self.lease_share))
        values = {"client_id": key, "rate": float(rate), "capacity": capacity, "chunk": float(chunk)}
        if self.engine is not None:
            async with self.engine.connect() as connection:
                row = (await connection.execute(LEASE, values)).one()
        else:
            assert session is not None, "without an engine of its own, a lease is taken in the request's session"
            row = (await session.execute(LEASE, values)).one()
        now = time.monotonic()
        granted, left = int(row.granted), float(row.tokens)
        if granted < 1:
            wait = (1.0 - left) / rate
            lease.tokens, lease.refused_until = 0, now + wait
            return wait
        lease.tokens, lease.until, lease.refused_until = granted - 1, now + LEASE_S, 0.0
        return 0.0
