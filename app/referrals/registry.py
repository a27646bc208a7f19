"""The registry of the firm's existing clients, pushed by the back office and matched by blind index only."""

from __future__ import annotations

from datetime import date
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.identifiers import normalise_credit_code, normalise_national_id
from app.core.problems import Unprocessable
from app.privacy.crypto import BlindIndex
from app.privacy.identity import one_identity
from app.referrals.models import ReferralKind
from app.referrals.schemas import normalise_mobile
from app.referrals.service import identity_index, mobile_index

MAX_CLIENTS = 100_000


class RegisteredClient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    national_id: str | None = Field(default=None, max_length=18)
    credit_code: str | None = Field(default=None, max_length=18)
    opened_on: date

    @model_validator(mode="after")
    def _one_identifier(self) -> Self:
        self.national_id, self.credit_code = one_identity(
            self.national_id, self.credit_code, missing="give exactly one of national_id or credit_code"
        )
        return self


class RegistryUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clients: list[RegisteredClient] = Field(min_length=1, max_length=MAX_CLIENTS)


class RegistryResult(BaseModel):
    received: int
    distinct: int
    upserted: int


def _hash(index: BlindIndex, client: RegisteredClient) -> bytes:
    if client.national_id is not None:
        return identity_index(index, ReferralKind.vip, client.national_id)
    return identity_index(index, ReferralKind.enterprise, client.credit_code or "")


async def upsert_existing_clients(
    session: AsyncSession, index: BlindIndex, clients: list[RegisteredClient]
) -> RegistryResult:
    """One statement for the whole upload; a client keeps its earliest known opening date."""
    earliest: dict[bytes, date] = {}
    for client in clients:
        identity = _hash(index, client)
        if identity not in earliest or client.opened_on < earliest[identity]:
            earliest[identity] = client.opened_on
    result = await session.execute(
        text(
            """
            INSERT INTO existing_clients (identity_hash, opened_on, updated_at)
            SELECT identity_hash, opened_on, :now
            FROM unnest(CAST(:hashes AS bytea[]), CAST(:dates AS date[])) AS upload(identity_hash, opened_on)
            ON CONFLICT (identity_hash) DO UPDATE
                SET opened_on = LEAST(existing_clients.opened_on, EXCLUDED.opened_on), updated_at = :now
            """
        ),
        {"hashes": list(earliest), "dates": list(earliest.values()), "now": clock.now()},
    )
    return RegistryResult(received=len(clients), distinct=len(earliest), upserted=int(result.rowcount or 0))  # type: ignore[attr-defined]


class InvalidSearch(Unprocessable):
    slug, title = "invalid-search", "Invalid search"


def search_identity_hash(index: BlindIndex, national_id: str | None, credit_code: str | None) -> bytes | None:
    if national_id and credit_code:
        raise InvalidSearch("Search by national_id or by credit_code, not both.")
    if national_id:
        return identity_index(index, ReferralKind.vip, normalise_national_id(national_id))
    if credit_code:
        return identity_index(index, ReferralKind.enterprise, normalise_credit_code(credit_code))
    return None


def search_mobile_hash(index: BlindIndex, mobile: str | None) -> bytes | None:
    if not mobile:
        return None
    try:
        return mobile_index(index, normalise_mobile(mobile))
    except ValueError as exc:
        raise InvalidSearch("mobile is not a mainland China mobile number.") from exc
