"""The demo's year played through the services, with the clock moved to each moment of it: partners' batches and
single referrals, withdrawals, the back office's registry and weekly event files, the periodic jobs, the alliance
manager's conflict reviews, and finance's months (``app.demo.settling``). Every rule applies as it would live.

The clock is the process-wide ``ManualClock`` that ``app.demo.alliance`` installs while loading: each step moves it
to the step's moment, then calls what the routers or the worker call at that moment.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.conversions.schemas import MAX_EVENTS
from app.conversions.service import ingest_events
from app.core import clock
from app.core.business_time import Month, business_day, month_of
from app.core.config import Settings
from app.core.pagination import PageParams
from app.core.partner_filter import EVERY_PARTNER
from app.core.tenancy import Tenant
from app.demo import settling
from app.demo.story import CLIENT_OF, Story, Submission, Withdrawal, at_local, days
from app.privacy.crypto import BlindIndex, DataCipher
from app.referrals import oversight, registry
from app.referrals import service as referrals
from app.referrals.batches.files import BatchFile, BatchFormat, Spool
from app.referrals.batches.intake import receive_batch
from app.referrals.models import ConflictStatus, ReferralStatus
from app.referrals.schemas import ReferralCreate
from app.reports import summary
from app.worker.jobs import JOBS

MANAGER = Actor("demo.manager.li", "staff")  # the alliance manager who reviews conflicts
CONFLICT_REVIEW_AFTER = timedelta(days=14)
Step = Callable[[], Awaitable[None]]


@dataclass
class Player:
    session: AsyncSession
    settings: Settings
    cipher: DataCipher
    index: BlindIndex
    story: Story
    manual: clock.ManualClock
    sent: int = 0  # events of the story already sent

    async def submit(self, submission: Submission) -> None:
        partner_id = submission.partner_id
        if submission.single:
            for lead in submission.leads:
                data = ReferralCreate.model_validate(lead.body())
                await referrals.submit_referral(
                    self.session, Tenant.of_partner(partner_id), data, self.cipher, self.index
                )
            return
        content = "\n".join(json.dumps(lead.body(), ensure_ascii=False) for lead in submission.leads).encode()
        await receive_batch(
            self.session,
            partner_id=partner_id,
            client_id=CLIENT_OF[partner_id],
            idempotency_key=f"demo-{submission.at:%Y%m%d%H%M}",
            file=BatchFile(BatchFormat.jsonl),
            spool=Spool(io.BytesIO(content), len(content), hashlib.sha256(content).hexdigest()),
            cipher=self.cipher,
            index=self.index,
        )

    async def withdraw(self, withdrawal: Withdrawal) -> None:
        tenant = Tenant.of_partner(withdrawal.partner_id)
        found = await referrals.list_referrals(
            self.session,
            tenant,
            PageParams(limit=1, cursor=None),
            referrals.ReferralFilters(external_ref=withdrawal.external_ref),
        )
        if found and found[0].status is ReferralStatus.eligible:
            actor = Actor(CLIENT_OF[withdrawal.partner_id], "partner")
            await referrals.withdraw_referral(self.session, tenant, actor, found[0].id, withdrawal.reason, None)

    async def feed(self) -> None:
        """The back office's file of everything that happened since the last one (late events are normal)."""
        now = clock.now()
        events = self.story.events
        upto = self.sent
        while upto < len(events) and events[upto]["occurred_at"] < now:
            upto += 1
        for start in range(self.sent, upto, MAX_EVENTS):
            await ingest_events(self.session, self.index, events[start : min(upto, start + MAX_EVENTS)])
        self.sent = upto

    async def jobs(self) -> None:
        for job in JOBS:
            await job.run(self.session, self.settings, clock.now(), EVERY_PARTNER)

    async def review_conflicts(self) -> None:
        """The alliance manager keeps the first partner's attribution once a conflict has waited two weeks."""
        reviewed_before = clock.now() - CONFLICT_REVIEW_AFTER
        waiting = await oversight.list_conflicts(self.session, settling.PAGE, ConflictStatus.open)
        for conflict in waiting:
            if conflict.created_at < reviewed_before:
                await oversight.resolve_conflict(
                    self.session, MANAGER, conflict.id, "keep_holder", "先提交的合作方保持归属（规则 3）"
                )


def _months(story: Story) -> list[Month]:
    """The business months of the story before the current one."""
    months = []
    month, current = month_of(story.start), month_of(story.end)
    while month.name != current.name:
        months.append(month)
        month = month_of(month.end)
    return months


def agenda(player: Player) -> list[tuple[datetime, int, Step]]:
    """Every step of the year with its moment; steps at one moment run in the order given."""
    story = player.story
    steps: list[tuple[datetime, int, Step]] = []

    def at(moment: datetime, step: Step) -> None:
        if story.start <= moment < story.end:
            steps.append((moment, len(steps), step))

    for submission in story.submissions:
        at(submission.at, partial(player.submit, submission))
    for withdrawal in story.withdrawals:
        at(withdrawal.at, partial(player.withdraw, withdrawal))
    for day in days(story.start, story.end):
        if day.day in (1, 16):
            at(at_local(day, 7), player.feed)
        if day.weekday() == 0:
            at(at_local(day, 2), player.jobs)
        if day.weekday() == 2 and day.isocalendar().week % 2:
            at(at_local(day, 16), player.review_conflicts)
    _finance(player, at)
    steps.append((story.end - timedelta(minutes=2), len(steps), player.feed))
    steps.sort(key=lambda step: (step[0], step[1]))
    return steps


def _finance(player: Player, at: Callable[[datetime, Step], None]) -> None:
    """Each month is closed on the 2nd of the next; the one before the current month is left to close, the one
    before it is closed and issued but not all settled (a claim with open discrepancies, a statement approved and
    waiting for payment)."""
    rng = random.Random(1717)
    months = _months(player.story)
    everyone = frozenset(CLIENT_OF)
    for number, month in enumerate(months[:-1]):
        last = number == len(months) - 2
        plan = settling.Settlement(claims=everyone, approved=everyone, paid=True)
        if last:
            plan = settling.Settlement(
                claims=frozenset({"ptn_demo_bank", "ptn_demo_insurer"}),
                approved=frozenset({"ptn_demo_insurer"}),
                paid=False,
                forced_mistakes=frozenset({"ptn_demo_bank"}),
            )
        first = business_day(month.end)  # of the next month
        session = player.session
        at(at_local(first + timedelta(days=1), 9, 30), partial(settling.close_and_issue, session, month))
        at(at_local(first + timedelta(days=3), 15), partial(settling.claim, session, month, plan, rng))
        at(at_local(first + timedelta(days=6), 11), partial(settling.settle, session, month, plan, rng))
        if plan.paid:
            at(at_local(first + timedelta(days=11), 16), partial(settling.pay, session, month))


async def play(player: Player) -> None:
    """The whole year, in order; then the report summary rebuilt from what it left (one set-based pass)."""
    player.manual.move_to(player.story.start)
    await registry.upsert_existing_clients(
        player.session,
        player.index,
        [registry.RegisteredClient.model_validate(client) for client in player.story.registry],
    )
    for moment, _, step in agenda(player):
        player.manual.move_to(moment)
        await step()
        # Every step has flushed its changes: forgetting the loaded rows keeps each later flush check small.
        player.session.expunge_all()
    await summary.rebuild(player.session)
