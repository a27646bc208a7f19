"""The view model of one statement page: its figures (which add up: lines + carried = net; 不含税金额 + 增值税额 =
价税合计), its lines, the partner's claim and every discrepancy, the audit trail, and what this person may do under
four eyes (经办 / 复核), with the reason when they may not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.models import AuditEvent
from app.catalog import service as catalog
from app.console.access import SignedInPerson
from app.console.finance.common import FINANCE_WRITE, who
from app.fees import statements
from app.fees.models import FeeAccrual, Statement, StatementStatus
from app.reconciliation import service as reconciliation
from app.reconciliation.models import Claim, ReconciliationItem

CONFIRMABLE = ("issue", "approve", "pay")


@dataclass(frozen=True)
class Figures:
    """A statement's money, as the page and its print show it. ``net_excl_vat_fen`` (不含税金额) is what is left
    of the gross without its VAT, whichever way the partner invoices: the three always add up."""

    lines_total_fen: int
    carried_forward_fen: int
    net_fen: int
    net_excl_vat_fen: int
    vat_fen: int
    gross_fen: int
    vat_rate_bp: int
    vat_inclusive: bool

    @classmethod
    def of(cls, statement: Statement) -> Figures:
        return cls(
            lines_total_fen=statement.lines_total_fen,
            carried_forward_fen=statement.carried_forward_fen,
            net_fen=statement.net_fen,
            net_excl_vat_fen=statement.gross_fen - statement.vat_fen,
            vat_fen=statement.vat_fen,
            gross_fen=statement.gross_fen,
            vat_rate_bp=statement.vat_rate_bp,
            vat_inclusive=statement.vat_inclusive,
        )

    @property
    def vat_rate(self) -> str:
        whole, part = divmod(self.vat_rate_bp, 100)
        return f"{whole}%" if not part else f"{whole}.{part:02d}".rstrip("0") + "%"


@dataclass(frozen=True)
class Action:
    """A button: shown to people who may write; ``refusal`` disables it and says why."""

    name: str
    refusal: str | None = None


@dataclass(frozen=True)
class StatementPage:
    statement: Statement
    partner_name: str
    figures: Figures
    lines: list[FeeAccrual]
    claim: Claim | None
    items: list[ReconciliationItem]
    trail: list[AuditEvent]
    actions: list[Action]

    @property
    def lines_sum_fen(self) -> int:
        return sum(line.amount_fen for line in self.lines)

    @property
    def open_items(self) -> list[ReconciliationItem]:
        return [item for item in self.items if item.open]

    @property
    def issuer(self) -> str | None:
        return who(self.statement.issued_by)

    @property
    def approver(self) -> str | None:
        return who(self.statement.approved_by)

    @property
    def payer(self) -> str | None:
        return who(self.statement.paid_by)

    @property
    def locked(self) -> bool:
        return self.statement.status is not StatementStatus.draft

    def action(self, name: str) -> Action | None:
        return next((action for action in self.actions if action.name == name), None)


def actions_for(statement: Statement, person_actor_id: str, may_write: bool, open_items: int) -> list[Action]:
    """What the person may do next with the statement, and why a button is disabled."""
    if not may_write:
        return []
    status = statement.status
    if status is StatementStatus.draft:
        return [Action("issue")]
    if status in (StatementStatus.issued, StatementStatus.disputed):
        refusal = statements.approval_refusal(statement, person_actor_id)
        if refusal is None and open_items:
            refusal = "Every discrepancy of the partner's claim must be resolved before approval"
        return [Action("approve", refusal)]
    if status is StatementStatus.approved:
        return [Action("pay", statements.payment_refusal(statement, person_actor_id))]
    return []


async def statement_page(
    session: AsyncSession, person: SignedInPerson, person_actor_id: str, statement_id: str
) -> StatementPage:
    statement = await statements.get_statement(session, person.tenant, statement_id)
    partner = await catalog.get_partner(session, statement.partner_id)
    lines = await statements.all_lines(session, statement.id)
    items = await reconciliation.all_items(session, statement.id)
    claim = await reconciliation.current_claim(session, statement.id)
    about = [statement.id, *([claim.id] if claim else []), *(item.id for item in items)]
    trail = await audit.events_about(session, about)
    open_items = sum(1 for item in items if item.open)
    actions = actions_for(statement, person_actor_id, FINANCE_WRITE in person.scopes, open_items)
    return StatementPage(statement, partner.legal_name, Figures.of(statement), lines, claim, items, trail, actions)


def age_days(since: datetime, now: datetime) -> int:
    """Whole days an item has waited."""
    return max(0, (now - since).days)
