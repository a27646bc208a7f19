from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    created_at: datetime
    actor_id: str
    actor_kind: str
    action: str
    object_type: str | None
    object_id: str | None
    request_id: str | None
    ip_address: str | None
    details: dict[str, Any]
