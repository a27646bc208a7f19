from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from app import __version__
from tests.conftest import create_scratch_database, drop_scratch_database


def alliance(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.endswith("DATABASE_URL")}
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_version() -> None:
    result = alliance("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"alliance {__version__}"


def test_db_url_hides_the_password() -> None:
    result = alliance("db-url", database_url="postgresql://app:s3cret@db.internal:5432/alliance")
    assert result.returncode == 0
    assert result.stdout.strip() == "postgresql+asyncpg://app:***@db.internal:5432/alliance"


def test_unreachable_database_is_a_clear_error_not_a_traceback() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = alliance("migrate", database_url=f"postgresql://nobody:pw@127.0.0.1:{port}/none")
    assert result.returncode == 2
    assert "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr
    assert "pw@" not in result.stderr


@pytest.fixture
def scratch_url(server_url: str) -> Iterator[str]:
    name = f"alliance_cli_{uuid.uuid4().hex[:10]}"
    url = create_scratch_database(server_url, name)
    yield url
    drop_scratch_database(server_url, name)


def test_migrate_and_demo_are_idempotent(scratch_url: str) -> None:
    for _ in range(2):
        migrated = alliance("migrate", database_url=scratch_url)
        assert migrated.returncode == 0, migrated.stderr
        assert "database at head" in migrated.stdout
    first = alliance("demo", database_url=scratch_url)
    second = alliance("demo", database_url=scratch_url)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "acs_" in first.stdout and "acs_" not in second.stdout
    reset = alliance("demo", "--json", "--reset-secrets", database_url=scratch_url)
    listed = __import__("json").loads(reset.stdout)
    assert all(item["client_secret"].startswith("acs_") for item in listed["clients"])
    assert {person["role"] for person in listed["staff_users"]} == {"alliance_manager", "finance", "admin", "auditor"}
    assert all(person["password"] and person["totp_secret"] for person in listed["staff_users"])
    again = __import__("json").loads(alliance("demo", "--json", database_url=scratch_url).stdout)
    assert not any(person["password"] or person["totp_secret"] for person in again["staff_users"])


def test_staff_clients_and_keys_commands(scratch_url: str) -> None:
    import json

    staff = alliance("staff", "create", "--role", "finance", "--name", "Li Wei", "--json", database_url=scratch_url)
    assert staff.returncode == 0, staff.stderr
    credentials = json.loads(staff.stdout)
    assert credentials["client_id"].startswith("cli_") and credentials["client_secret"].startswith("acs_")

    person = alliance("staff", "create-user", "--role", "auditor", "--username", "Zhao.Min", database_url=scratch_url)
    assert person.returncode == 0, person.stderr
    assert "username:       zhao.min" in person.stdout
    assert "otpauth://totp/Alliance:zhao.min?secret=" in person.stdout and "issuer=Alliance" in person.stdout
    assert re.search(r"^password:\s+\S{20}$", person.stdout, re.MULTILINE)
    taken = alliance("staff", "create-user", "--role", "auditor", "--username", "zhao.min", database_url=scratch_url)
    assert taken.returncode == 1 and "taken" in taken.stderr and "Traceback" not in taken.stderr

    bad_role = alliance("staff", "create", "--role", "cashier", database_url=scratch_url)
    assert bad_role.returncode != 0 and "unknown role" in bad_role.stderr

    unknown_partner = alliance("clients", "create", "--name", "x", "--partner", "ptn_none", database_url=scratch_url)
    assert unknown_partner.returncode == 1
    assert "No such partner" in unknown_partner.stderr and "Traceback" not in unknown_partner.stderr

    back_office = alliance(
        "clients", "create", "--name", "CRM feed", "--back-office", "--json", database_url=scratch_url
    )
    client_id = json.loads(back_office.stdout)["client_id"]
    rotated = alliance("clients", "rotate", client_id, "--json", database_url=scratch_url)
    assert json.loads(rotated.stdout)["client_secret"] != json.loads(back_office.stdout)["client_secret"]
    assert alliance("clients", "revoke", client_id, database_url=scratch_url).returncode == 0

    first = alliance("keys", "rotate", database_url=scratch_url)
    second = alliance("keys", "rotate", database_url=scratch_url)
    assert first.returncode == 0 and second.returncode == 0
    first_kid = first.stdout.split()[3]
    assert f"retired: {first_kid}" in second.stdout

    rotated_data = alliance("keys", "rotate-data", "--batch-size", "10", database_url=scratch_url)
    assert rotated_data.returncode == 0, rotated_data.stderr
    assert "active data key:" in rotated_data.stdout
    assert "referrals.identifier_ct: 0 re-encrypted" in rotated_data.stdout


async def test_demo_credentials_obtain_tokens(scratch_url: str, settings) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    import httpx

    from app.core.database import Database, create_engine
    from app.core.migrations import upgrade_to_head
    from app.demo import load_demo
    from app.main import create_app

    await asyncio.to_thread(upgrade_to_head, scratch_url)
    scratch = settings.model_copy(update={"database_url": scratch_url})
    credentials = await load_demo(scratch_url, scratch)
    assert all(item["client_secret"] for item in credentials)
    again = await load_demo(scratch_url, scratch)
    assert [item["client_id"] for item in again] == [item["client_id"] for item in credentials]
    assert not any(item["client_secret"] for item in again), "secrets are shown only when created"
    database = Database(create_engine(scratch_url, scratch))
    app = create_app(scratch, database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        for item in credentials:
            response = await client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(item["client_id"] or "", item["client_secret"] or ""),
            )
            assert response.status_code == 200, (item["client_id"], response.text)
            introspected = await client.post(
                "/oauth/introspect",
                data={"token": response.json()["access_token"]},
                auth=(item["client_id"] or "", item["client_secret"] or ""),
            )
            assert introspected.json().get("partner_id") == item["partner_id"]
            assert introspected.json().get("role") == item["role"]
            if item["partner_id"]:
                token = {"Authorization": f"Bearer {response.json()['access_token']}"}
                programs = (await client.get("/v1/programs", headers=token)).json()["data"]
                assert programs and {program["partner_id"] for program in programs} == {item["partner_id"]}
                assert all(program["fee_schedule_in_force"] for program in programs)
    await database.dispose()


def test_import_events_file(scratch_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.factories.referrals import national_id

    person = national_id()
    events = tmp_path / "events.csv"
    events.write_text(
        "source_event_id,type,occurred_at,client_ref,national_id,credit_code,amount,currency,product_code\n"
        f"f-1,account_opened,2026-11-01T09:00:00+08:00,K-1,{person},,,,\n"
        "f-2,account_funded,2026-11-01T10:00:00+08:00,K-1,,,1500000,CNY,\n"
        "f-3,account_funded,2026-11-01T10:00:00+08:00,K-1,,,12.5,CNY,\n"
        "f-4,revenue_recorded,2026-11-02T10:00:00+08:00,K-9,,,100,CNY,\n",
        encoding="utf-8",
    )
    first = alliance("import-events", str(events), database_url=scratch_url)
    assert first.returncode == 0, first.stderr
    assert "applied: 2, deferred: 1, duplicate: 0, rejected: 1" in first.stdout
    assert "line 4: amount" in first.stderr and person not in first.stderr + first.stdout
    again = alliance("import-events", str(events), database_url=scratch_url)
    assert "applied: 0, deferred: 0, duplicate: 3, rejected: 1" in again.stdout
    broken = tmp_path / "broken.csv"
    broken.write_text("id,kind\n1,x\n", encoding="utf-8")
    refused = alliance("import-events", str(broken), database_url=scratch_url)
    assert refused.returncode == 1 and "lacks column" in refused.stderr
