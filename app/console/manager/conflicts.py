"""归因冲突: the conflicts queue as an inbox (open / resolved archive), a side sheet with prev / next, and the
decision: keep the holder, or move the attribution to the later referral, with a reason
(``app.referrals.oversight.resolve_conflict``: audited, fees follow the move)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.core.problems import Problem
from app.referrals import oversight
from app.referrals.models import ConflictStatus

TABS: dict[str, ConflictStatus] = {"open": ConflictStatus.open, "resolved": ConflictStatus.resolved}
PAGE_SIZE = 25
RESOLUTIONS = ("keep_holder", "award_duplicate")
REASON_MIN, REASON_MAX = 3, 500


def queue_url(tab: str, page: int = 1, selected: str | None = None) -> str:
    fields: dict[str, object] = {"tab": tab}
    if page > 1:
        fields["page"] = page
    if selected:
        fields["id"] = selected
    return "/console/conflicts?" + urlencode(fields)


@dataclass
class ConflictQueue:
    tab: str
    page: int
    pages: int
    total: int
    counts: dict[str, int]
    items: list[oversight.ConflictView]
    subjects: dict[str, oversight.MaskedSubject]
    selected: oversight.ConflictView | None = None
    before: str | None = None
    after: str | None = None
    nothing_yet: bool = field(default=False)

    def url(self, page: int | None = None, selected: str | None = None) -> str:
        return queue_url(self.tab, self.page if page is None else page, selected)


@dataclass(frozen=True)
class Correction:
    """The URL asked for names no page of the queue: where to go instead, and why."""

    url: str
    message: str | None = None


def parse_page(raw: str | None) -> int | None:
    if raw is None:
        return 1
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 1_000_000 else None


async def conflict_queue(
    session: AsyncSession, tab: str | None, page_raw: str | None, selected_id: str | None
) -> ConflictQueue | Correction:
    """The page asked for, or the corrected URL (unknown tab, page past the end, a conflict of the other tab)."""
    tab = tab or "open"
    if tab not in TABS:
        return Correction(queue_url("open"))
    page = parse_page(page_raw)
    counts = {name: await oversight.count_conflicts(session, status) for name, status in TABS.items()}
    pages = max(1, math.ceil(counts[tab] / PAGE_SIZE))
    if page is None or page > pages:
        return Correction(queue_url(tab, min(page or 1, pages), selected_id))
    selected = None
    before = after = None
    if selected_id:
        try:
            selected = await oversight.get_conflict(session, selected_id)
        except Problem:
            return Correction(queue_url(tab, page), "No such conflict")
        right_tab = selected.conflict.status.value
        if right_tab != tab:
            return Correction(queue_url(right_tab, 1, selected_id))
        before, after = await oversight.conflict_neighbours(session, TABS[tab], selected_id)
    items = await oversight.conflicts_page(session, TABS[tab], offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    shown = [*items, *([selected] if selected else [])]
    subjects = await oversight.masked_subjects(
        session, [side.referral_id for view in shown for side in (view.holding, view.duplicate)]
    )
    return ConflictQueue(
        tab=tab,
        page=page,
        pages=pages,
        total=counts[tab],
        counts=counts,
        items=items,
        subjects=subjects,
        selected=selected,
        before=before,
        after=after,
        nothing_yet=sum(counts.values()) == 0,
    )


@dataclass(frozen=True)
class Outcome:
    level: Literal["success", "error"]
    message: str
    url: str


def checked_decision(resolution: str | None, reason: str | None) -> str | None:
    """What is wrong with the form, in words for the person, or ``None``."""
    if resolution not in RESOLUTIONS:
        return "Choose whether to keep the holder or move the attribution"
    reason = (reason or "").strip()
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        return "Give a reason of 3 to 500 characters"
    return None


async def resolve(
    session: AsyncSession, actor: Actor, conflict_id: str, resolution: str | None, reason: str | None
) -> Outcome:
    """Resolve through the attribution service; a refusal changes nothing (the savepoint is rolled back) and says
    why. After a decision the inbox moves on to the next open conflict."""
    here = queue_url("open", 1, conflict_id)
    if problem := checked_decision(resolution, reason):
        return Outcome("error", problem, here)
    before, after = await oversight.conflict_neighbours(session, ConflictStatus.open, conflict_id)
    try:
        async with session.begin_nested():
            await oversight.resolve_conflict(session, actor, conflict_id, str(resolution), (reason or "").strip())
    except Problem as refused:
        return Outcome("error", str(refused.detail or refused.title), here)
    following = after or before
    message = "Attribution moved to the later referral" if resolution == "award_duplicate" else "Holder kept"
    return Outcome("success", message, queue_url("open", 1, following) if following else queue_url("open"))
