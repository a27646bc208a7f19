"""Which partners a set-based job acts on: every partner, only some, or all but some.

The worker's periodic jobs run on real time for every partner without a sandbox test clock (``all_but`` the
clocked ones); a test clock's advance runs the same jobs for its partner alone (``just``). Each job stays one
statement: the filter is one more condition in its ``WHERE``, an array parameter whatever its length.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.core.bulk import equals_any


@dataclass(frozen=True)
class PartnerFilter:
    only: tuple[str, ...] | None = None
    excluding: tuple[str, ...] = ()

    @classmethod
    def every(cls) -> PartnerFilter:
        return cls()

    @classmethod
    def just(cls, partner_id: str) -> PartnerFilter:
        return cls(only=(partner_id,))

    @classmethod
    def all_but(cls, partner_ids: Iterable[str]) -> PartnerFilter:
        return cls(excluding=tuple(partner_ids))

    def where(self, column: Any) -> sa.ColumnElement[bool]:
        """The condition on a partner-id column (SQLAlchemy)."""
        conditions: list[sa.ColumnElement[bool]] = []
        if self.only is not None:
            conditions.append(column == self.only[0] if len(self.only) == 1 else equals_any(column, self.only))
        if self.excluding:
            conditions.append(sa.not_(equals_any(column, self.excluding)))
        return sa.and_(sa.true(), *conditions)

    def sql(self, column: str) -> str:
        """The condition on a partner-id column (text SQL), with ``params`` as its parameters."""
        conditions = ["TRUE"]
        if self.only is not None:
            one = len(self.only) == 1
            conditions.append(f"{column} = :partner_one" if one else f"{column} = ANY(CAST(:partners_only AS text[]))")
        if self.excluding:
            conditions.append(f"NOT ({column} = ANY(CAST(:partners_excluding AS text[])))")
        return " AND ".join(conditions)

    @property
    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.only is not None:
            params.update({"partner_one": self.only[0]} if len(self.only) == 1 else {"partners_only": list(self.only)})
        if self.excluding:
            params["partners_excluding"] = list(self.excluding)
        return params


EVERY_PARTNER = PartnerFilter()
