"""Signals of one partner raised from several real transactions at once open one case, and the same signal
raised by racing transactions is recorded once (the database decides, not luck)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.risk.models import RiskCase, RiskSignal
from app.risk.schemas import Signal, SignalKind
from app.risk.service import raise_signal
from tests.conftest import migrated_scratch_database

RACERS = 6


@pytest.fixture(scope="module")
def race_database(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_risk") as url:
        yield url


async def test_racing_signals_open_one_case_and_record_each_fingerprint_once(
    race_database: str, settings: Settings
) -> None:
    database = Database(create_engine(race_database, settings.model_copy(update={"database_url": race_database})))
    try:
        async with database.sessionmaker() as session, session.begin():
            partner = await catalog.create_partner(
                session, Actor.system("test"), PartnerCreate(kind="bank", legal_name="竞速银行")
            )

        async def racer(n: int) -> str:
            async with database.sessionmaker() as session, session.begin():
                signal = Signal(
                    kind=SignalKind.outlier_rates,
                    partner_id=partner.id,
                    evidence={"observed": {"n": n}},
                    fingerprint=f"race:{n % 3}",  # three distinct signals, each raised twice
                )
                return (await raise_signal(session, signal)).id

        cases = await asyncio.gather(*(racer(n) for n in range(RACERS)))
        assert len(set(cases)) == 1
        async with database.sessionmaker() as session:
            opened = await session.scalar(
                select(func.count()).select_from(RiskCase).where(RiskCase.partner_id == partner.id)  # type: ignore[arg-type]
            )
            signals = await session.scalar(
                select(func.count()).select_from(RiskSignal).where(RiskSignal.case_id == cases[0])  # type: ignore[arg-type]
            )
        assert (opened, signals) == (1, 3)
    finally:
        await database.dispose()
