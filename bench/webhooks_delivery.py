"""Webhook deliveries per second: the worker's ``deliver_due`` (lease, sign, send, record) against a real HTTP
receiver on loopback.

On a scratch database, one partner with one endpoint and 5,000 queued deliveries (generated in SQL); a minimal
asyncio HTTP/1.1 receiver answers 200 to each. The clock runs until every delivery is ``succeeded``; the
receiver's count of distinct ``webhook-id`` values is checked against the deliveries (each sent exactly once).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import text

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.models import PartnerKind
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.tenancy import Tenant
from app.webhooks import delivery, service
from bench.common import BenchContext, BenchResult, Stopwatch, stage
from bench.fees_data import fee_database

NAME = "webhooks_delivery"
DELIVERIES, QUICK_DELIVERIES = 5_000, 1_000
CONCURRENCY = 50

QUEUE_SQL = """
INSERT INTO webhook_deliveries (id, endpoint_id, partner_id, event_type, payload, status, attempts, next_attempt_at,
                                created_at, updated_at)
SELECT 'msg_bench_' || n, :endpoint_id, :partner_id, 'referral.status_changed',
       jsonb_build_object('type', 'referral.status_changed', 'timestamp', now(),
                          'data', jsonb_build_object('referral_id', 'ref_' || n, 'to_status', 'funded')),
       'pending', 0, now(), now(), now()
FROM generate_series(1, CAST(:count AS integer)) AS n
"""


class Receiver:
    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {
                    name.lower(): value
                    for name, _, value in (line.partition(": ") for line in head.decode().split("\r\n")[1:])
                }
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests += 1
                self.ids.add(headers.get("webhook-id", ""))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def run(ctx: BenchContext) -> BenchResult:
    count = QUICK_DELIVERIES if ctx.quick else DELIVERIES
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with fee_database(ctx.server, "bench_hooks") as hooks:
        settings = Settings(environment="test", database_url="postgresql://unused/", _env_file=None)  # type: ignore[call-arg]
        async with hooks.transaction() as session:
            partner = await catalog.create_partner(
                session, Actor.system("bench"), PartnerCreate(kind=PartnerKind.bank, legal_name="回调银行")
            )
            created = await service.create_endpoint(
                session,
                settings,
                Actor.system("bench"),
                Tenant.of_partner(partner.id),
                url=f"http://127.0.0.1:{port}/hooks",
                event_types=["referral.status_changed"],
                description=None,
                enabled=True,
            )
            with stage(f"queueing {count:,} deliveries (SQL)"):
                await session.execute(
                    text(QUEUE_SQL), {"endpoint_id": created.endpoint.id, "partner_id": partner.id, "count": count}
                )
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(timeout=10, limits=limits) as http:
            with stage(f"delivering {count:,} webhooks"), Stopwatch() as clock:
                sent = 0
                while batch := await delivery.deliver_due(
                    hooks.database.sessionmaker, settings, http, limit=CONCURRENCY, lease=timedelta(seconds=60)
                ):
                    sent += batch
        async with hooks.transaction() as session:
            succeeded = await session.scalar(text("SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'"))
    server.close()
    problems = []
    if succeeded != count or sent != count:
        problems.append(f"{succeeded} succeeded and {sent} sent for {count}")
    if len(receiver.ids) != count or receiver.requests != count:
        problems.append(f"receiver saw {receiver.requests} requests, {len(receiver.ids)} distinct ids")
    rate = count / clock.seconds
    return BenchResult(
        name=NAME,
        status="failed" if problems else "ok",
        headline=f"{rate:,.0f} webhooks/s ({count:,} signed deliveries to a loopback receiver)",
        metrics={"deliveries_per_s": rate, "seconds": clock.seconds},
        params={"deliveries": count, "concurrency": CONCURRENCY, "worker": "1 in-process deliver_due loop"},
        note="; ".join(problems),
    )
