"""Every connection of the pool busy for longer than a request may wait: the caller gets a 503 with a retry hint
(the service is briefly unavailable), never a 500, and the service answers again once a connection is free."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from tests.worker.conftest import open_desk


async def test_a_request_finding_no_free_connection_is_told_to_retry(worker_database: str, settings: Settings) -> None:
    one_connection = settings.model_copy(
        update={"database_url": worker_database, "db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_s": 0.3}
    )
    database = Database(create_engine(worker_database, one_connection))
    app = create_app(one_connection, database)
    assert isinstance(database.bind, AsyncEngine)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            desk = await open_desk(database, one_connection, app.state.keyring, "繁忙银行")
            async with database.bind.connect() as held:  # the pool's only connection, busy elsewhere
                await held.exec_driver_sql("SELECT 1")
                response = await client.get("/v1/referrals", headers=desk.headers)
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["type"] == "/problems/service-unavailable"
            assert int(response.headers["retry-after"]) >= 1
            assert (await client.get("/v1/referrals", headers=desk.headers)).status_code == 200
    finally:
        await database.dispose()
