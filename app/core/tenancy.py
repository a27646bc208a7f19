"""Tenant scoping: the one place where partner-owned rows are filtered to the caller's partner.

Services that read partner-owned rows take a ``Tenant`` and pass their query through ``scoped`` (lists) or build
it with ``owned_row`` (one row by id). The partner is then in the statement's ``WHERE`` clause: another partner's
row is never read, nor locked by a ``FOR UPDATE`` added to the statement, and is simply not found, never forbidden.
There is deliberately no "fetch, then check the owner" helper: the row would already be read (and locked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, select

S = TypeVar("S", bound=Select[Any])
M = TypeVar("M")
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


def owned_row(model: type[M], object_id: str, tenant: Tenant) -> Select[M]:
    """The statement selecting one row of a partner-owned table (columns ``id`` and ``partner_id``) by id, scoped."""
    columns = model.__table__.c  # type: ignore[attr-defined]
    return scoped(select(model).where(columns.id == object_id), tenant, columns.partner_id)
