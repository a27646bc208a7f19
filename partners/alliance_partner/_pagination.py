"""Iterators over cursor-paginated lists (``{"data": [...], "next_cursor": ...}``).

A list call returns a pager at once and fetches nothing until it is iterated; it then fetches page after page,
following ``next_cursor``, until the last one. ``pages()`` yields whole pages instead, with their cursor, to
resume an interrupted walk later (``list_referrals(cursor=...)``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from alliance_partner._models import Page

T = TypeVar("T")


def following(page: Page[T]) -> str | None:
    """The cursor of the page after ``page``; None when it was the last (no cursor, or no items)."""
    return page.next_cursor if page.next_cursor and page.data else None


class SyncPager(Generic[T]):
    """Iterate items: ``for referral in client.list_referrals(): ...``."""

    def __init__(self, fetch: Callable[[str | None], Page[T]], cursor: str | None = None) -> None:
        self._fetch = fetch
        self._cursor = cursor

    def pages(self) -> Iterator[Page[T]]:
        cursor = self._cursor
        while True:
            page = self._fetch(cursor)
            yield page
            cursor = following(page)
            if cursor is None:
                return

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.data

    def to_list(self) -> list[T]:
        return list(self)


class AsyncPager(Generic[T]):
    """Iterate items: ``async for referral in client.list_referrals(): ...``."""

    def __init__(self, fetch: Callable[[str | None], Awaitable[Page[T]]], cursor: str | None = None) -> None:
        self._fetch = fetch
        self._cursor = cursor

    async def pages(self) -> AsyncIterator[Page[T]]:
        cursor = self._cursor
        while True:
            page = await self._fetch(cursor)
            yield page
            cursor = following(page)
            if cursor is None:
                return

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.data:
                yield item

    async def to_list(self) -> list[T]:
        return [item async for item in self]
