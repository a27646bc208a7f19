"""项目与费率: programs and their fee-schedule versions with their state; a version's rules as a table; a draft
written in a form (amounts in yuan, rates in basis points) and activated after a summary; two versions side by
side. Writes go through ``app.catalog.service`` (drafts edited freely, an active version only succeeded)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import service as catalog
from app.catalog.models import BundledProduct, FeeSchedule, FeeScheduleStatus, Partner, Program
from app.catalog.schemas import FeeRules
from app.console import formatting
from app.core import business_time
from app.core.pagination import PageParams
from app.core.problems import Problem
from app.core.tenancy import Tenant

EVERYTHING = PageParams(limit=1000, cursor=None)
MAX_YUAN = Decimal("100000000000")  # one hundred billion: no fee is larger


def schedule_state(schedule: FeeSchedule, today: date) -> str:
    """draft · scheduled (active, not begun) · active (in force today) · succeeded (a later version took over)."""
    if schedule.status is FeeScheduleStatus.draft:
        return "draft"
    if schedule.effective_from > today:
        return "scheduled"
    if schedule.effective_to is not None and schedule.effective_to <= today:
        return "succeeded"
    return "active"


@dataclass(frozen=True)
class Version:
    schedule: FeeSchedule
    state: str

    @property
    def in_use(self) -> bool:
        return self.schedule.first_accrual_at is not None


@dataclass
class ProgramEntry:
    program: Program
    partner: Partner | None
    products: list[BundledProduct]
    versions: list[Version] = field(default_factory=list)


async def program_entries(session: AsyncSession, tenant: Tenant, partner_id: str | None = None) -> list[ProgramEntry]:
    """Every program (or one partner's) with its partner, products and versions, newest version first."""
    programs = await catalog.list_programs(session, EVERYTHING, tenant, partner_id=partner_id)
    partners = {partner.id: partner for partner in await catalog.list_partners(session, EVERYTHING)}
    ids = [program.id for program in programs]
    products = await catalog.program_products(session, ids)
    schedules = await catalog.list_fee_schedules(session, EVERYTHING)
    today = business_time.today()
    entries = {
        program.id: ProgramEntry(program, partners.get(program.partner_id), products.get(program.id, []))
        for program in programs
    }
    for schedule in schedules:
        if schedule.program_id in entries:
            entries[schedule.program_id].versions.append(Version(schedule, schedule_state(schedule, today)))
    for entry in entries.values():
        entry.versions.sort(key=lambda version: version.schedule.version, reverse=True)
    return sorted(
        entries.values(), key=lambda entry: (entry.partner.display_name if entry.partner else "", entry.program.name)
    )


async def program_entry(session: AsyncSession, tenant: Tenant, program_id: str) -> ProgramEntry | None:
    try:
        program = await catalog.get_program(session, program_id, tenant)
    except Problem:
        return None
    for entry in await program_entries(session, tenant, program.partner_id):
        if entry.program.id == program_id:
            return entry
    return None


async def find_schedule(session: AsyncSession, schedule_id: str) -> FeeSchedule | None:
    try:
        return await catalog.get_fee_schedule(session, schedule_id)
    except Problem:
        return None


# --- rules as rows: the view, the side-by-side comparison ---------------------------------------------------------


@dataclass(frozen=True)
class RuleRow:
    label: str
    unit: str  # fen | bps | months | text
    value: Any


def rule_rows(rules: dict[str, Any], products: list[BundledProduct]) -> list[RuleRow]:
    """A version's rules as labelled rows, in one order for every version (so two versions line up)."""
    parsed = FeeRules.model_validate(rules)
    bounty = parsed.funded_bounty
    rows = [
        RuleRow("Funded bounty: minimum assets", "fen", bounty.min_assets_fen if bounty else None),
        RuleRow("Funded bounty: retail", "fen", bounty.by_tier.retail if bounty else None),
        RuleRow("Funded bounty: HNW", "fen", bounty.by_tier.hnw if bounty else None),
        RuleRow("Funded bounty: institutional", "fen", bounty.by_tier.institutional if bounty else None),
    ]
    fees = {fee.product_code: fee for fee in parsed.bundle_fees}
    codes = [product.code for product in products] + sorted(set(fees) - {product.code for product in products})
    for code in codes:
        fee = fees.get(code)
        rows += [
            RuleRow(f"{code} · flat", "fen", fee.flat_fen if fee else None),
            RuleRow(f"{code} · bps", "bps", fee.bps if fee else None),
            RuleRow(f"{code} · minimum", "fen", fee.min_fen if fee else None),
            RuleRow(f"{code} · maximum", "fen", fee.max_fen if fee else None),
        ]
    share = parsed.revenue_share
    rows += [
        RuleRow("Revenue share", "bps", share.bps if share else None),
        RuleRow("Revenue share months", "months", share.months if share else None),
        RuleRow("Cap per referral", "fen", parsed.caps.per_referral_fen),
        RuleRow("Cap per partner per month", "fen", parsed.caps.per_partner_month_fen),
    ]
    return rows


def side_by_side(
    left: FeeSchedule, right: FeeSchedule, products: list[BundledProduct]
) -> list[tuple[RuleRow, RuleRow, bool]]:
    """The two versions' rows paired, each pair marked when the values differ."""
    pairs = zip(rule_rows(left.rules, products), rule_rows(right.rules, products), strict=False)
    return [(a, b, a.value != b.value) for a, b in pairs]


# --- the draft form -----------------------------------------------------------------------------------------------


def _yuan_text(fen: int | None) -> str:
    if fen is None:
        return ""
    whole, cents = divmod(fen, 100)
    return f"{whole}.{cents:02d}"


def form_values(
    rules: dict[str, Any] | None, effective_from: date | None, products: list[BundledProduct]
) -> dict[str, str]:
    """The form's fields for ``rules`` (a draft, or the version a new draft starts from)."""
    parsed = FeeRules.model_validate(rules or {})
    values = {"effective_from": effective_from.isoformat() if effective_from else ""}
    bounty = parsed.funded_bounty
    values |= {
        "bounty_min_assets": _yuan_text(bounty.min_assets_fen if bounty else None),
        "bounty_retail": _yuan_text(bounty.by_tier.retail if bounty else None),
        "bounty_hnw": _yuan_text(bounty.by_tier.hnw if bounty else None),
        "bounty_institutional": _yuan_text(bounty.by_tier.institutional if bounty else None),
    }
    fees = {fee.product_code: fee for fee in parsed.bundle_fees}
    for product in products:
        fee = fees.get(product.code)
        values |= {
            f"bundle_{product.code}_flat": _yuan_text(fee.flat_fen if fee else None),
            f"bundle_{product.code}_bps": str(fee.bps) if fee and fee.bps is not None else "",
            f"bundle_{product.code}_min": _yuan_text(fee.min_fen if fee else None),
            f"bundle_{product.code}_max": _yuan_text(fee.max_fen if fee else None),
        }
    share = parsed.revenue_share
    values |= {
        "revenue_bps": str(share.bps) if share else "",
        "revenue_months": str(share.months) if share else "",
        "cap_per_referral": _yuan_text(parsed.caps.per_referral_fen),
        "cap_per_partner_month": _yuan_text(parsed.caps.per_partner_month_fen),
    }
    return values


class FormProblem(ValueError):
    """A field the person must correct: its name and what to do (English, translated on the page)."""

    def __init__(self, name: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.detail = detail


def _fen(form: dict[str, str], name: str) -> int | None:
    text = form.get(name, "").strip().replace(",", "")
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise FormProblem(name, "Enter an amount in yuan, such as 1500 or 1500.50") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_YUAN or amount != amount.quantize(Decimal("0.01")):
        raise FormProblem(name, "Enter an amount in yuan, such as 1500 or 1500.50")
    return int(amount * 100)


def _whole(form: dict[str, str], name: str, most: int) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) > most:
        raise FormProblem(name, "Enter a whole number in the allowed range")
    return int(text)


def rules_of_form(form: dict[str, str], products: list[BundledProduct]) -> tuple[date, dict[str, Any]]:
    """The form read into an effective date and rules (as ``FeeRules`` accepts them); ``FormProblem`` otherwise."""
    try:
        effective_from = date.fromisoformat(form.get("effective_from", "").strip())
    except ValueError:
        raise FormProblem("effective_from", "Enter the first day as YYYY-MM-DD") from None
    rules: dict[str, Any] = {"bundle_fees": [], "caps": {}}
    bounty = [_fen(form, f"bounty_{name}") for name in ("min_assets", "retail", "hnw", "institutional")]
    if any(value is not None for value in bounty):
        if any(value is None for value in bounty):
            raise FormProblem("bounty_min_assets", "A funded bounty needs the minimum assets and all three tiers")
        minimum, retail, hnw, institutional = bounty
        rules["funded_bounty"] = {
            "min_assets_fen": minimum,
            "by_tier": {"retail": retail, "hnw": hnw, "institutional": institutional},
        }
    for product in products:
        prefix = f"bundle_{product.code}"
        fee = {
            "flat_fen": _fen(form, f"{prefix}_flat"),
            "bps": _whole(form, f"{prefix}_bps", 10_000),
            "min_fen": _fen(form, f"{prefix}_min"),
            "max_fen": _fen(form, f"{prefix}_max"),
        }
        if any(value is not None for value in fee.values()):
            if fee["flat_fen"] is None and fee["bps"] is None:
                raise FormProblem(f"{prefix}_flat", "A bundle fee needs a flat amount, basis points or both")
            rules["bundle_fees"].append(
                {"product_code": product.code, **{k: v for k, v in fee.items() if v is not None}}
            )
    share_bps, share_months = _whole(form, "revenue_bps", 10_000), _whole(form, "revenue_months", 120)
    if (share_bps is None) != (share_months is None) or share_months == 0:
        raise FormProblem("revenue_bps", "A revenue share needs basis points and 1 to 120 months")
    if share_bps is not None:
        rules["revenue_share"] = {"bps": share_bps, "months": share_months}
    for name, key in (("cap_per_referral", "per_referral_fen"), ("cap_per_partner_month", "per_partner_month_fen")):
        if (cap := _fen(form, name)) is not None:
            rules["caps"][key] = cap
    try:
        checked = FeeRules.model_validate(rules)
    except ValidationError as invalid:
        raise FormProblem(
            "", "The rules are not consistent: " + "; ".join(e["msg"] for e in invalid.errors())
        ) from None
    return effective_from, checked.model_dump(mode="json")


STATE_CLASS = {"draft": "muted", "scheduled": "warn", "active": "ok", "succeeded": "muted"}


def rule_label(text: str, t: Any) -> str:
    """``BANK_WM_PLUS_EQUITY · flat``: the product code as it is, the rest in the reader's language."""
    head, _, tail = text.partition(" · ")
    return f"{head} · {t(tail)}" if tail else t(text)


def rule_value(row: RuleRow, t: Any) -> str:
    if row.value is None:
        return formatting.NOT_APPLICABLE
    if row.unit == "fen":
        return formatting.yuan(row.value)
    if row.unit == "bps":
        return t("{bps} bp ({percent})", bps=row.value, percent=f"{row.value / 100:.2f}%")
    if row.unit == "months":
        return t("{months} months", months=row.value)
    return str(row.value)
