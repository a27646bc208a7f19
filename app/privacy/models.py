"""Data-encryption keys for personal data, each sealed with the master key; one is active at a time."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field


class DataKey(SQLModel, table=True):
    __tablename__ = "data_keys"
    __table_args__ = (sa.Index("uq_data_keys_one_active", "active", unique=True, postgresql_where=sa.text("active")),)

    id: int | None = Field(default=None, primary_key=True)
    sealed_key: bytes = Field(sa_type=sa.LargeBinary, nullable=False)
    active: bool = True
    created_at: datetime = created_at_field()
    retired_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
