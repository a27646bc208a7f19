"""Searching the audit log as people do: by who, what, which object and which Beijing days, a page at a time with
the total."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service
from app.audit.service import Actor, AuditSearch
from app.core import clock

ALICE = Actor(id="person:alice.search", kind="staff")
FEED = Actor(id="cli_search_feed", kind="back_office")


async def test_each_filter_narrows_and_the_total_counts_every_match(
    session: AsyncSession, manual_clock: clock.ManualClock
) -> None:
    manual_clock.move_to(datetime(2026, 11, 30, 15, 59, tzinfo=UTC))  # 23:59 on 30 Nov in Beijing
    await service.record(session, ALICE, "search.created", object_type="search_thing", object_id="st_1")
    manual_clock.move_to(datetime(2026, 11, 30, 16, 0, tzinfo=UTC))  # 00:00 on 1 Dec in Beijing
    await service.record(session, ALICE, "search.updated", object_type="search_thing", object_id="st_1")
    await service.record(session, FEED, "search.updated", object_type="search_thing", object_id="st_2")
    manual_clock.move_to(datetime(2026, 12, 1, 16, 0, tzinfo=UTC))  # 2 Dec in Beijing
    await service.record(session, FEED, "search.created", object_type="other_thing", object_id="st_1")

    async def ids(search: AuditSearch) -> list[tuple[str, str | None]]:
        events, total = await service.search_events(session, search, offset=0, limit=50)
        assert total == len(events)
        return [(event.action, event.object_id) for event in events]

    assert await ids(AuditSearch(actor_ids=("person:alice.search",))) == [
        ("search.updated", "st_1"),
        ("search.created", "st_1"),
    ]
    assert await ids(AuditSearch(actor_ids=("nobody", "cli_search_feed"), action="search.created")) == [
        ("search.created", "st_1")
    ]
    assert await ids(AuditSearch(object_type="search_thing", object_id="st_1")) == [
        ("search.updated", "st_1"),
        ("search.created", "st_1"),
    ]
    first_of_december = AuditSearch(
        action="search.updated",
        since=datetime(2026, 11, 30, 16, 0, tzinfo=UTC),
        until=datetime(2026, 12, 1, 16, 0, tzinfo=UTC),
    )
    assert sorted(await ids(first_of_december)) == [("search.updated", "st_1"), ("search.updated", "st_2")]
    before_december = AuditSearch(actor_ids=(ALICE.id,), until=datetime(2026, 11, 30, 16, 0, tzinfo=UTC))
    assert await ids(before_december) == [("search.created", "st_1")]


async def test_pages_are_newest_first_without_overlap(session: AsyncSession, manual_clock: clock.ManualClock) -> None:
    for minute in range(5):
        manual_clock.move_to(datetime(2026, 10, 1, 2, minute, tzinfo=UTC))
        await service.record(session, ALICE, "search.paged", object_id=f"p{minute}")
    search = AuditSearch(action="search.paged")

    first, total = await service.search_events(session, search, offset=0, limit=2)
    second, _ = await service.search_events(session, search, offset=2, limit=2)
    last, _ = await service.search_events(session, search, offset=4, limit=2)

    assert total == 5
    assert [event.object_id for event in first + second + last] == ["p4", "p3", "p2", "p1", "p0"]


async def test_the_actions_and_object_types_recorded_are_offered_to_filter(session: AsyncSession) -> None:
    await service.record(session, ALICE, "search.listed", object_type="listed_thing")
    assert "search.listed" in await service.recorded_actions(session)
    object_types = await service.recorded_object_types(session)
    assert "listed_thing" in object_types and None not in object_types
