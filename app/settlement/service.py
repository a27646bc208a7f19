"""Settlement (DESIGN.md, "Reconciliation"): finance approves a statement once its reconciliation is complete, and
records its payment.

Settlement is where fees and reconciliation meet, so it depends on both and neither knows it: it asks fees for the
locked statement and to move it (``record_approval``, ``record_payment``), and reconciliation for the items still
open. Each call locks the statement row first, as reconciliation's calls do: an approval never interleaves with an
upload, a dispute or a resolution of the same statement.

Money leaves under four eyes (DESIGN.md, "People"): the approver is not the issuer and the payer not the approver,
compared by audit actor (an API client's id, a person's ``person:<username>``); the statement remembers each.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.service import Actor
from app.core.problems import Conflict
from app.core.tenancy import Tenant
from app.fees import statements
from app.fees.models import Statement
from app.reconciliation import service as reconciliation


class OpenReconciliationItems(Conflict):
    slug, title = "open-reconciliation-items", "Reconciliation items are still open"


async def approve(session: AsyncSession, actor: Actor, statement_id: str, now: datetime) -> Statement:
    """Approve an issued or disputed statement once no reconciliation item is open; its issuer may not (four eyes:
    ``SecondPersonRequired``, 403, and nothing changes)."""
    statement = await statements.get_statement(session, Tenant.everyone(actor), statement_id, lock=True)
    statements.check_approvable(statement, actor.id)
    still_open = await reconciliation.open_item_count(session, statement.id)
    if still_open:
        raise OpenReconciliationItems(
            f"{still_open} reconciliation item(s) must be resolved first.", open_items=still_open
        )
    await statements.record_approval(session, statement, actor.id, now)
    await audit.record(session, actor, "statement.approved", object_type="statement", object_id=statement.id)
    return statement


async def mark_paid(
    session: AsyncSession, actor: Actor, statement_id: str, payment_ref: str, now: datetime
) -> Statement:
    """Record the payment of an approved statement; its lines become ``paid``. Its approver may not (four eyes)."""
    statement = await statements.get_statement(session, Tenant.everyone(actor), statement_id, lock=True)
    await statements.record_payment(session, statement, payment_ref, actor.id, now)
    await audit.record(
        session, actor, "statement.paid", object_type="statement", object_id=statement.id, payment_ref=payment_ref
    )
    return statement
