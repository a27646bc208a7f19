"""Pieces shared by the finance pages: who did what (经办 / 复核), partner names, pages of a list, the URL as the
state (a bad value leads to the corrected URL), and running a money action so that a refusal changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from math import ceil
from typing import TypeVar
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import Response

from app.catalog.models import Partner
from app.console.i18n import locale_of, translator
from app.console.templating import redirect
from app.core.problems import Problem

PAGE_SIZE = 25
FINANCE_READ, FINANCE_WRITE = "finance:read", "finance:write"
PERSON_PREFIX = "person:"

T = TypeVar("T")


def who(actor_id: str | None) -> str | None:
    """An audit actor as people read it: a person by username, an API client by its id."""
    if actor_id is None:
        return None
    return actor_id.removeprefix(PERSON_PREFIX)


def url(path: str, params: Mapping[str, object | None]) -> str:
    """``path`` with the parameters that have a value, in a stable order."""
    kept = {name: str(value) for name, value in params.items() if value not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def corrected(asked: Mapping[str, str | None], fixed: Mapping[str, object | None]) -> bool:
    """Whether the URL asked for something the page does not accept (and so leads to the corrected URL)."""
    return any(
        value not in (None, "") and str(fixed.get(name) or "") != value and not (name == "page" and value == "1")
        for name, value in asked.items()
    )


@dataclass(frozen=True)
class Paging:
    page: int
    pages: int
    total: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE


def page_number(raw: str | None) -> int | None:
    """A page number from the URL; ``None`` when it is not a positive whole number (the URL is corrected)."""
    if raw is None:
        return 1
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 100_000 else None


def paging(page: int, total: int) -> Paging:
    return Paging(page, max(1, ceil(total / PAGE_SIZE)), total)


async def partner_names(session: AsyncSession, partner_ids: Iterable[str]) -> dict[str, str]:
    """Partners' names as registered (Chinese legal names), in one query."""
    ids = sorted(set(partner_ids))
    if not ids:
        return {}
    rows = await session.execute(select(col(Partner.id), col(Partner.legal_name)).where(col(Partner.id).in_(ids)))
    return {partner_id: name for partner_id, name in rows.all()}


def flash_back(request: Request, target: str, message: str, *, level: str = "success") -> Response:
    """Back to ``target`` with a message in the person's language."""
    return redirect(target, flash=translator(locale_of(request))(message), level=level)


# What a person reads when a service refuses an action: the problem's type in the console's words.
REFUSALS = {
    "second-person-required": "Four eyes: another finance officer must do this",
    "open-reconciliation-items": "Resolve every discrepancy of the partner's claim first",
    "statement-state-conflict": "The statement's status does not allow this any more; the page shows it now",
    "period-not-ended": "The month has not ended yet",
    "later-period-closed": "A later month is already closed: months are closed in order",
    "item-already-resolved": "This discrepancy was resolved already",
    "not-found": "It no longer exists",
}


async def act(
    request: Request,
    session: AsyncSession,
    action: Callable[[], Awaitable[T]],
    *,
    done: str | Callable[[Callable[..., str], T], str],
    back: str | Callable[[T], str],
    refused: str | None = None,
) -> Response:
    """Run an action in a savepoint: done, a flash of success (``done`` may read the result); refused, a flash that
    says why and what to do, back on ``refused`` (or ``back``), and nothing of it is kept."""
    t = translator(locale_of(request))
    try:
        async with session.begin_nested():
            result = await action()
    except Problem as refusal:
        target = refused or (back if isinstance(back, str) else "/console")
        return redirect(target, flash=t(REFUSALS.get(refusal.slug, refusal.title)), level="error")
    message = t(done) if isinstance(done, str) else done(t, result)
    return redirect(back if isinstance(back, str) else back(result), flash=message)
