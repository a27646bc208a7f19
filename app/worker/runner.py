"""The worker: claim and process pending referral batches and run the periodic jobs when due, while a pool of
webhook sends runs alongside (a long batch never delays a webhook); stop on SIGTERM between two chunks (a chunk in
flight commits or rolls back as a whole) and once the sends in flight have ended."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field

import structlog
from sqlalchemy.exc import DBAPIError

from app.core import clock
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.core.housekeeping import freeze_startup_objects
from app.core.outbound_urls import outbound_client
from app.core.partner_filter import EVERY_PARTNER, PartnerFilter
from app.privacy.service import DataKeyring
from app.referrals.batches import processing
from app.sandbox.clocks import clocked_partner_ids
from app.webhooks.delivery import DeliveryPool
from app.worker.batches import process_batch
from app.worker.jobs import JOBS, Job

log = structlog.get_logger("alliance.worker")

RETRYABLE = ("40P01", "40001")  # deadlock detected, serialization failure


@dataclass
class PassReport:
    """What one pass did."""

    batches: int = 0
    deliveries: int = 0
    failures: int = 0
    jobs: dict[str, int] = field(default_factory=dict)


class Worker:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        jobs_interval_s: float = 60.0,
        jobs: tuple[Job, ...] = JOBS,
    ) -> None:
        self.database = database
        self.settings = settings
        self.keyring = DataKeyring(settings)
        self.jobs_interval_s = jobs_interval_s
        self.jobs = jobs
        self.stop = asyncio.Event()
        self._jobs_due_at = 0.0
        self.http = outbound_client(
            allow_private=settings.private_targets_allowed,
            timeout=settings.webhook_timeout_s,
            max_connections=settings.webhook_concurrency,
        )
        self.deliveries = DeliveryPool(database.sessionmaker, settings, self.http)

    async def deliver_webhooks(self, report: PassReport) -> None:
        """Send every due webhook delivery, until none is due nor in flight (leased, so other workers never send
        the same one at the same time)."""
        report.deliveries += await self.deliveries.run(self.stop, until_idle=True)

    async def process_batches(self, report: PassReport) -> None:
        """Every open batch, oldest first, each to its end (unless another worker holds it)."""
        async with self.database.sessionmaker() as session:
            pending = await processing.open_batches(session)
        for batch_id in pending:
            if self.stop.is_set():
                return
            try:
                taken = await process_batch(
                    self.database, self.keyring, batch_id, stop=self.stop, sandbox=self.settings.sandbox_enabled
                )
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) not in RETRYABLE:
                    await self._failed(report, batch_id, exc)
                else:  # a deadlock with another writer: the chunk rolled back whole, the next pass redoes it
                    log.warning("batch_chunk_retried", batch_id=batch_id, sqlstate=exc.orig.sqlstate)  # type: ignore[union-attr]
                continue
            except Exception as exc:
                await self._failed(report, batch_id, exc)
                continue
            report.batches += int(taken)

    async def _failed(self, report: PassReport, batch_id: str, exc: Exception) -> None:
        report.failures += 1
        log.exception("batch_run_failed", batch_id=batch_id, error_class=type(exc).__name__)
        async with self.database.sessionmaker() as session, session.begin():
            await processing.record_failure(session, batch_id, clock.now())

    async def real_time_partners(self) -> PartnerFilter:
        """The partners whose jobs run on real time: in a sandbox, all but those with a test clock (their clock's
        advances run their jobs; real time would overtake a clock that stands still)."""
        if not self.settings.sandbox_enabled:
            return EVERY_PARTNER
        async with self.database.sessionmaker() as session:
            return PartnerFilter.all_but(await clocked_partner_ids(session))

    async def run_jobs(self, report: PassReport) -> None:
        try:
            partners = await self.real_time_partners()
        except Exception as exc:
            log.exception("job_failed", job="real_time_partners", error_class=type(exc).__name__)
            return
        for job in self.jobs:
            try:
                async with self.database.sessionmaker() as session, session.begin():
                    report.jobs[job.name] = await job.run(session, self.settings, clock.now(), partners)
            except Exception as exc:
                log.exception("job_failed", job=job.name, error_class=type(exc).__name__)
                continue
            if report.jobs[job.name]:
                log.info("job_done", job=job.name, rows=report.jobs[job.name])
        self._jobs_due_at = time.monotonic() + self.jobs_interval_s

    async def run_once(self) -> PassReport:
        """One pass: every open batch, then every periodic job."""
        report = PassReport()
        await self.process_batches(report)
        if not self.stop.is_set():
            await self.run_jobs(report)
        if not self.stop.is_set():
            await self.deliver_webhooks(report)
        return report

    async def run(self, poll_interval_s: float) -> None:
        """Until ``stop``: process batches as they come, run the jobs every ``jobs_interval_s``, and deliver
        webhooks all along."""
        await asyncio.gather(
            self._batches_and_jobs(poll_interval_s), self.deliveries.run(self.stop, idle_s=poll_interval_s)
        )

    async def _batches_and_jobs(self, poll_interval_s: float) -> None:
        while not self.stop.is_set():
            report = PassReport()
            try:
                if time.monotonic() >= self._jobs_due_at:
                    await self.run_jobs(report)
                await self.process_batches(report)
            except Exception as exc:  # the database is away, say: try again after the poll interval
                log.exception("worker_pass_failed", error_class=type(exc).__name__)
            if not report.batches:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), poll_interval_s)


async def _stop_when_orphaned(stop: asyncio.Event, parent_pid: int, every_s: float = 1.0) -> None:
    """Set ``stop`` once the parent is gone (killed outright, say): its children are then adopted by another."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("worker_parent_gone", parent_pid=parent_pid)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def run_worker(
    settings: Settings,
    url: str,
    *,
    once: bool,
    poll_interval_s: float,
    jobs_interval_s: float,
    parent_pid: int | None = None,
) -> PassReport | None:
    """The ``alliance worker`` command: SIGTERM and SIGINT stop it gracefully, and so does the end of
    ``parent_pid`` (the ``alliance serve`` that started it), however that ended."""
    database = Database(create_engine(url, settings))
    worker = Worker(database, settings, jobs_interval_s=jobs_interval_s)
    freeze_startup_objects()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop.set)
    log.info("worker_started", once=once)
    orphaned = asyncio.create_task(_stop_when_orphaned(worker.stop, parent_pid)) if parent_pid else None
    try:
        if once:
            return await worker.run_once()
        await worker.run(poll_interval_s)
        return None
    finally:
        if orphaned is not None:
            orphaned.cancel()
        await worker.http.aclose()
        await database.dispose()
        log.info("worker_stopped")
