"""Primary keys: readable prefix, unguessable, and ordered by when they were made (index inserts stay local)."""

from __future__ import annotations

import itertools
import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.models import new_id, new_ids

ID = re.compile(r"^[a-z]{3}_[0-9a-f]{34}$")


def test_format() -> None:
    made = [new_id("ref"), *new_ids("rev", 3)]
    assert all(ID.match(one) for one in made)
    assert all(len(one) <= 40 for one in made)
    assert made[0].startswith("ref_") and made[1].startswith("rev_")
    assert new_ids("rev", 0) == []


def test_unique_and_ordered_under_heavy_generation() -> None:
    made = [new_id("ref") for _ in range(20_000)] + new_ids("ref", 100_000) + [new_id("ref") for _ in range(1_000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)  # text order is the order of making, including over many in one millisecond


def test_unique_and_ordered_across_threads() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        for _ in range(5_000):
            into.append(new_id("acr"))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [one for into in made for one in into]
    assert len(set(every)) == len(every)
    assert all(into == sorted(into) for into in made)


def test_the_business_clock_does_not_order_them() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with clock.install(clock.ManualClock(start)) as manual:
        first = new_ids("ref", 10)
        manual.move_to(start - timedelta(days=400))  # a test going back in time
        second = [new_id("ref") for _ in range(10)]
    assert first + second == sorted(first + second)
    assert len(set(first + second)) == 20


def test_the_order_is_the_wall_clock() -> None:
    before = int(clock.real_now().timestamp() * 1000)
    made = new_id("ref")
    after = int(clock.real_now().timestamp() * 1000)
    milliseconds = int(made[4:16], 16)  # the first 48 bits
    assert before <= milliseconds <= after + 1_000  # ahead only when ids outran the clock


def test_unguessable_random_bits() -> None:
    """The last 76 bits are random: every bit takes both values about half of the time, and ids made in the same
    millisecond share their order prefix only, never their randomness."""
    made = new_ids("ref", 4_000) + [new_id("ref") for _ in range(4_000)]
    randomness = [int(one[4:], 16) & ((1 << 76) - 1) for one in made]
    assert len(set(randomness)) == len(randomness)
    ones = Counter(bit for value in randomness for bit in range(76) if value >> bit & 1)
    assert all(0.45 < ones[bit] / len(randomness) < 0.55 for bit in range(76))
    neighbours = [int(a[4:], 16) ^ int(b[4:], 16) for a, b in itertools.pairwise(made)]
    # Consecutive ids differ in about half of their random bits, not by a counter's step.
    assert sum(bin(x & ((1 << 76) - 1)).count("1") for x in neighbours) / len(neighbours) > 30


async def test_text_order_in_the_database_is_the_order_of_making(session: AsyncSession) -> None:
    """Under "C", the column's collation (the database's default), and every English collation the server has
    (where base64url's order would not hold): ICU's ``en-x-icu`` and the C library's ``en_US`` ones."""
    english = list(
        await session.scalars(
            text("SELECT collname FROM pg_collation WHERE collname = 'en-x-icu' OR collname ILIKE 'en\\_US%'")
        )
    )
    made = new_ids("ref", 500) + [new_id("ref") for _ in range(500)]
    for collation in ["C", "default", *english]:
        quoted = f'"{collation}"'
        stored = list(
            await session.scalars(
                text(f"SELECT id FROM unnest(CAST(:ids AS varchar[])) AS t(id) ORDER BY id COLLATE {quoted}"),
                {"ids": list(reversed(made))},
            )
        )
        assert stored == made, collation
