"""Tenant scoping: the one place where partner-owned rows are filtered to the caller's partner.

Services that read partner-owned rows take a ``Tenant`` and pass their query through ``scoped`` (lists) or build
it with ``owned_row`` (one row by id). The partner is then in the statement's ``WHERE`` clause: another partner's
row is never read, nor locked by a ``FOR UPDATE`` added to the statement, and is simply not found, never forbidden.
There is deliberately no "fetch, then check the owner" helper: the row would already be read (and locked).

Seeing every partner's rows (``Tenant.everyone``) needs proof that the caller is the firm's staff or the platform
itself (a staff ``Principal``, or an ``Actor`` of kind staff or system): a partner can never obtain it, and no code
builds it by accident. Code creating a partner's rows asks the tenant for ``own_partner_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, select

S = TypeVar("S", bound=Select[Any])
M = TypeVar("M")
_NOBODY = ""


class StaffProof(Protocol):
    """Who may see every partner's rows: the firm's staff and the platform's own jobs."""

    @property
    def sees_every_partner(self) -> bool: ...


class NotStaff(PermissionError):
    """Every partner's rows were asked for without a staff principal or a system actor."""


_STAFF_ONLY = object()


@dataclass(frozen=True, slots=True)
class Tenant:
    """Whose rows a caller may see: one partner's, or every partner's (``partner_id`` None, the firm's staff)."""

    partner_id: str | None
    _proof: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.partner_id is None and self._proof is not _STAFF_ONLY:
            raise NotStaff("Every partner's rows are seen only through Tenant.everyone(staff).")

    @classmethod
    def everyone(cls, staff: StaffProof) -> Tenant:
        """Every partner's rows, for ``staff``: a staff principal or actor, or a system actor."""
        if not staff.sees_every_partner:
            raise NotStaff("Only the firm's staff and the platform's own jobs see every partner's rows.")
        return cls(None, _STAFF_ONLY)

    @classmethod
    def of_partner(cls, partner_id: str | None) -> Tenant:
        # A caller that is no partner but asks as one sees nothing.
        return cls(partner_id or _NOBODY)

    @property
    def own_partner_id(self) -> str:
        """The partner whose rows this caller creates ("" for a caller that is no partner, who owns nothing)."""
        if self.partner_id is None:
            raise NotStaff("A caller seeing every partner creates no partner's rows as that partner.")
        return self.partner_id


def scoped(statement: S, tenant: Tenant, partner_column: Any) -> S:
    if tenant.partner_id is None:
        return statement
    return statement.where(partner_column == tenant.partner_id)


def owned_row(model: type[M], object_id: str, tenant: Tenant) -> Select[M]:
    """The statement selecting one row of a partner-owned table (columns ``id`` and ``partner_id``) by id, scoped."""
    columns = model.__table__.c  # type: ignore[attr-defined]
    return scoped(select(model).where(columns.id == object_id), tenant, columns.partner_id)
