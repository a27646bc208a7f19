"""The demo alliance that ``make run`` loads: a bank, an insurer and a corporate with their programs.

Each domain adds its demo rows here as it arrives; loading is idempotent (natural keys, ``ON CONFLICT``).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import create_async_engine


async def load_demo(database_url: str) -> str:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin():
            pass
    finally:
        await engine.dispose()
    return "demo alliance loaded (no domain data yet)"
