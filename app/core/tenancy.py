"""Tenant scoping: the one place where partner-owned rows are filtered to the caller's partner.

Services that read partner-owned rows take a ``Tenant`` and pass their query through ``scoped`` (lists) or
``ensure_owned`` (one row). Another partner's object is then simply not found, never forbidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select

from app.core.problems import NotFound

S = TypeVar("S", bound=Select[Any])
_NOBODY = ""


@dataclass(frozen=True, slots=True)
class Tenant:
    """Whose rows a caller may see: one partner's, or every partner's (``partner_id`` None, the firm's staff)."""

    partner_id: str | None

    @classmethod
    def everyone(cls) -> Tenant:
        return cls(None)

    @classmethod
    def of_partner(cls, partner_id: str | None) -> Tenant:
        # A caller that is no partner but asks as one sees nothing.
        return cls(partner_id or _NOBODY)


def scoped(statement: S, tenant: Tenant, partner_column: Any) -> S:
    if tenant.partner_id is None:
        return statement
    return statement.where(partner_column == tenant.partner_id)


def ensure_owned(tenant: Tenant, owner_partner_id: str | None, what: str = "object") -> None:
    if tenant.partner_id is not None and owner_partner_id != tenant.partner_id:
        raise NotFound(f"No such {what}.")
