from __future__ import annotations

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.privacy.crypto import DataCipher, UnknownDataKey
from app.privacy.service import load_cipher, reencrypt_batch, rotate_data_key
from app.referrals.service import ENCRYPTED_COLUMNS, IDENTIFIER_COLUMN, NAME_COLUMN
from tests.conftest import CallerFactory
from tests.referrals.conftest import PartnerDesk, individual, national_id


async def test_ciphertexts_are_bound_to_their_column(session: AsyncSession, settings: Settings) -> None:
    cipher = await load_cipher(session, settings)
    sealed = cipher.encrypt("张三", NAME_COLUMN)
    assert cipher.decrypt(sealed, NAME_COLUMN) == "张三"
    with pytest.raises(InvalidTag):
        cipher.decrypt(sealed, IDENTIFIER_COLUMN)
    with pytest.raises(UnknownDataKey):
        DataCipher({}, 0).decrypt(sealed, NAME_COLUMN)


async def test_rotation_keeps_old_data_readable_and_reencrypts_it(
    client: httpx.AsyncClient,
    app,  # type: ignore[no-untyped-def]
    bank: PartnerDesk,
    caller: CallerFactory,
    session: AsyncSession,
    settings: Settings,
) -> None:
    person = national_id()
    created = await client.post(
        "/v1/referrals", json=individual(bank.program.id, national_id=person), headers=bank.headers()
    )
    referral_id = created.json()["id"]
    old_key = DataCipher.key_id_of(
        await session.scalar(text("SELECT identifier_ct FROM referrals WHERE id = :id"), {"id": referral_id})
    )
    new_key = await rotate_data_key(session, settings)
    assert new_key != old_key
    app.state.data_keyring.invalidate()

    manager = await caller("staff", role="alliance_manager")
    unmask = f"/v1/admin/referrals/{referral_id}/unmask"
    before = await client.post(unmask, json={"purpose": "rotation check"}, headers=manager.headers)
    assert before.json()["identifier"] == person  # old key still decrypts

    cipher = await load_cipher(session, settings)
    for target in ENCRYPTED_COLUMNS:
        while await reencrypt_batch(session, cipher, target, batch_size=2):
            pass
    stale = await session.scalar(
        text("SELECT count(*) FROM referrals WHERE substring(identifier_ct FROM 2 FOR 4) <> :key"),
        {"key": new_key.to_bytes(4, "big")},
    )
    assert stale == 0
    after = await client.post(unmask, json={"purpose": "rotation check"}, headers=manager.headers)
    assert after.json() == before.json()

    newer = await client.post("/v1/referrals", json=individual(bank.program.id), headers=bank.headers())
    key_of_new = DataCipher.key_id_of(
        await session.scalar(text("SELECT name_ct FROM referrals WHERE id = :id"), {"id": newer.json()["id"]})
    )
    assert key_of_new == new_key
