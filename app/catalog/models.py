"""Catalog tables: the partner registry (programs, products and fee schedules join it as they arrive)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, enum_type, id_field


class PartnerKind(StrEnum):
    bank = "bank"
    insurer = "insurer"
    corporate = "corporate"


class PartnerStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    terminated = "terminated"


class Partner(SQLModel, table=True):
    __tablename__ = "partners"

    id: str = id_field("ptn")
    kind: PartnerKind = Field(sa_type=enum_type(PartnerKind, "partner_kind"), nullable=False)
    legal_name: str = Field(max_length=200)
    display_name: str = Field(max_length=200)
    status: PartnerStatus = Field(
        default=PartnerStatus.active, sa_type=enum_type(PartnerStatus, "partner_status"), nullable=False, index=True
    )
    created_at: datetime = created_at_field()
