"""A partner's sandbox test clock (DESIGN.md, "Time" and "Sandbox"): written by the sandbox domain only."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, updated_at_field


class SandboxClock(SQLModel, table=True):
    """A partner's test clock. No row: the partner follows real time. A row: the partner's time stands at ``now``
    until the clock is advanced again (forward only); ``advanced_by_s`` is how far it was moved in all."""

    __tablename__ = "sandbox_clocks"

    partner_id: str = Field(foreign_key="partners.id", primary_key=True, max_length=40)
    now: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    advanced_by_s: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
