"""Report endpoints: alliance managers' reports (``reports:read``) and each partner's own funnel and time to convert
(``referrals:read``), as JSON, CSV, XLSX or a self-contained HTML page."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response
from fastapi.security import SecurityScopes
from pydantic import BaseModel, BeforeValidator
from pydantic_core import to_json

from app.auth.deps import InsufficientScope, Principal, authenticate, requires
from app.auth.scopes import PrincipalKind
from app.catalog.models import PartnerKind
from app.conversions.models import Tier
from app.core import business_time
from app.core.database import Database, SessionDep
from app.core.problems import problem_responses
from app.core.tenancy import Tenant
from app.referrals.models import ReferralKind
from app.reports import queries, render, service, summary
from app.reports.schemas import (
    ClientStructureReport,
    FeesReport,
    FunnelReport,
    GroupBy,
    ReportFilters,
    ReportFormat,
    ReportPack,
    Scorecard,
    TimeToConvertReport,
)

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=problem_responses(401, 403, 422, 429))

MAX_VALUES = 200
STAFF_SCOPE, PARTNER_SCOPE = "reports:read", "referrals:read"
# Staff with ``reports:read`` or a partner with ``referrals:read`` (its own referrals): either requirement will do.
EITHER = {"security": [{"oauth2": [STAFF_SCOPE]}, {"oauth2": [PARTNER_SCOPE]}]}
_FORMATS = {
    "content": {
        "application/json": {},
        render.CSV_MEDIA_TYPE: {"schema": {"type": "string"}},
        render.XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        render.HTML_MEDIA_TYPE: {"schema": {"type": "string"}},
    }
}


async def report_reader(request: Request, session: SessionDep) -> Principal:
    """A staff token with ``reports:read`` (every partner) or a partner token with ``referrals:read`` (its own)."""
    principal = await authenticate(SecurityScopes([]), request, session, request.headers.get("Authorization"))
    if principal.kind is PrincipalKind.staff and STAFF_SCOPE in principal.scopes:
        return principal
    if principal.is_partner and PARTNER_SCOPE in principal.scopes:
        return principal
    raise InsufficientScope(
        f"This report needs {STAFF_SCOPE} (staff) or {PARTNER_SCOPE} (a partner, for its own referrals).",
        headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{STAFF_SCOPE} {PARTNER_SCOPE}"'},
    )


Reader = Annotated[Principal, Depends(report_reader)]
StaffReader = Annotated[Principal, requires(STAFF_SCOPE)]


def _values(raw: list[str] | None, name: str) -> list[str]:
    """Repeated parameters, each possibly a comma-separated list."""
    values = [part.strip() for item in raw or [] for part in item.split(",") if part.strip()]
    if len(values) > MAX_VALUES:
        raise queries.InvalidReportQuery(f"At most {MAX_VALUES} values of {name}.")
    return values


def _enum_values(raw: list[str] | None, name: str, enum: type[Any]) -> list[Any]:
    try:
        return [enum(value) for value in _values(raw, name)]
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise queries.InvalidReportQuery(f"{name} takes {allowed}.") from None


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: object) -> object:
    """Dates as ``YYYY-MM-DD`` only: pydantic would also read a number as a Unix timestamp."""
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


def report_query(
    start: Annotated[
        IsoDate | None,
        Query(alias="from", description="First day (business timezone), inclusive. Default: twelve months back."),
    ] = None,
    end: Annotated[IsoDate | None, Query(alias="to", description="Last day, inclusive. Default: today.")] = None,
    partner_id: Annotated[list[str] | None, Query(description="Repeat, or separate with commas.")] = None,
    partner_kind: Annotated[list[str] | None, Query(description="bank, insurer, corporate")] = None,
    program_id: Annotated[list[str] | None, Query()] = None,
    product: Annotated[
        list[str] | None, Query(description="Bundled product codes the referrals converted with.")
    ] = None,
    tier: Annotated[list[str] | None, Query(description="retail, hnw, institutional")] = None,
    kind: Annotated[list[str] | None, Query(description="Referral kind: vip, employee, enterprise")] = None,
    group_by: Annotated[
        list[str] | None,
        Query(description="Any of partner, partner_kind, program, product, tier, kind, month, in the columns' order."),
    ] = None,
) -> queries.ReportQuery:
    today = business_time.today()
    default_start, default_end = queries.default_period(end or today)
    dimensions = _enum_values(group_by, "group_by", GroupBy)
    filters = ReportFilters(
        partner_ids=_values(partner_id, "partner_id"),
        partner_kinds=_enum_values(partner_kind, "partner_kind", PartnerKind),
        program_ids=_values(program_id, "program_id"),
        product_codes=_values(product, "product"),
        tiers=_enum_values(tier, "tier", Tier),
        kinds=_enum_values(kind, "kind", ReferralKind),
    )
    return queries.ReportQuery(
        start=start or default_start,
        end=end or default_end,
        filters=filters,
        group_by=tuple(dict.fromkeys(dimensions)),
    )


Query_ = Annotated[queries.ReportQuery, Depends(report_query)]


def _fold_queue_later(background: BackgroundTasks, request: Request) -> None:
    """After the answer is sent: fold what writers queued into the summary, in a transaction of its own, so that
    the next report corrects for less. A refresh already running elsewhere makes this a no-op."""
    background.add_task(fold_queue, request.app.state.database)


async def fold_queue(database: Database) -> None:
    try:
        async with database.sessionmaker() as session, session.begin():
            done = await summary.refresh(session, max_chunks=5)
        if done.changes:
            log.info("report_summary_refreshed", changes=done.changes, referrals=done.referrals)
    except Exception as error:  # the reports stay exact without it; log and let the next one try
        log.warning("report_summary_refresh_failed", error_class=type(error).__name__)


def _filename(name: str, query: queries.ReportQuery, extension: str) -> str:
    return f"{name}-{query.start:%Y%m%d}-{query.end:%Y%m%d}.{extension}"


def _download(body: bytes, media_type: str, filename: str, inline: bool = False) -> Response:
    disposition = "inline" if inline else "attachment"
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'{disposition}; filename="{filename}"'}
    )


def _json(payload: service.Payload) -> Response:
    """The report as JSON, encoded straight from its data: shaped as the documented model (the tests hold the
    two equal) without validating thousands of rows again."""
    return Response(to_json(payload), media_type="application/json")


def _respond(
    report: BaseModel,
    format: ReportFormat,
    name: str,
    query: queries.ReportQuery,
    sheets: Sequence[render.Sheet],
    sections: Sequence[render.Section],
    title: str,
    generated_at: datetime,
) -> Response:
    if format is ReportFormat.json:
        return Response(report.model_dump_json(), media_type="application/json")
    if format is ReportFormat.csv:
        return _download(render.to_csv(render.table_of(report)), render.CSV_MEDIA_TYPE, _filename(name, query, "csv"))
    if format is ReportFormat.xlsx:
        return _download(render.to_xlsx(sheets), render.XLSX_MEDIA_TYPE, _filename(name, query, "xlsx"))
    page = render.to_html(title, sections, f"{generated_at:%Y-%m-%d %H:%M} UTC")
    return _download(page, render.HTML_MEDIA_TYPE, _filename(name, query, "html"), inline=True)


async def _funnel_views(
    session: SessionDep, tenant: Tenant, query: queries.ReportQuery, report: FunnelReport
) -> tuple[list[render.Sheet], list[render.Section]]:
    trend = report if query.group_by == (GroupBy.month,) else await service.monthly_funnel(session, tenant, query)
    trend_table = render.funnel_table(trend)
    trend_table.title = "Monthly trend"
    table = render.funnel_table(report)
    sheets = [render.Sheet(table, chart="funnel"), render.Sheet(trend_table, chart="trend")]
    figures = [("Funnel: referrals reaching each stage", render.funnel_svg(report.total))]
    if trend.rows:
        figures.append(("Monthly trend by month received", render.trend_svg(trend.rows)))
    return sheets, [render.Section(table, figures), render.Section(trend_table)]


FORMAT_QUERY = Query(description="json (default), csv, xlsx (a workbook with charts) or html (a page with charts).")


@router.get(
    "/funnel",
    response_model=FunnelReport,
    responses={200: _FORMATS},
    openapi_extra=EITHER,
    summary="Referral funnel: counts and conversion rates",
    description=(
        "Referrals received in the period (a cohort), the stages they reached (eligible, account opened, funded, "
        "converted) and the outcomes they are in (existing client, duplicate, expired, withdrawn, rejected), with "
        "stage-to-stage and overall rates, per group. Staff (`reports:read`) see every partner; a partner "
        "(`referrals:read`) sees its own referrals only."
    ),
)
async def funnel_report(
    session: SessionDep,
    principal: Reader,
    query: Query_,
    background: BackgroundTasks,
    request: Request,
    format: Annotated[ReportFormat, FORMAT_QUERY] = ReportFormat.json,
) -> Any:
    payload = await service.funnel_payload(session, principal.tenant, query)
    _fold_queue_later(background, request)
    if format is ReportFormat.json:
        return _json(payload)
    report = FunnelReport.model_validate(payload)
    sheets: list[render.Sheet] = []
    sections: list[render.Section] = []
    if format in (ReportFormat.xlsx, ReportFormat.html):
        sheets, sections = await _funnel_views(session, principal.tenant, query, report)
    return _respond(report, format, "funnel", query, sheets, sections, "Referral funnel", report.generated_at)


@router.get(
    "/time-to-convert",
    response_model=TimeToConvertReport,
    responses={200: _FORMATS},
    openapi_extra=EITHER,
    summary="Time to convert: median and 90th percentile days",
    description=(
        "Whole days from receiving a referral to its account opening, funding and conversion (business time, "
        "as the back office reported it), for the referrals received in the period that reached each stage. "
        "Percentiles interpolate as PostgreSQL's `percentile_cont`. Partners see their own referrals only."
    ),
)
async def time_to_convert_report(
    session: SessionDep,
    principal: Reader,
    query: Query_,
    background: BackgroundTasks,
    request: Request,
    format: Annotated[ReportFormat, FORMAT_QUERY] = ReportFormat.json,
) -> Any:
    payload = await service.time_to_convert_payload(session, principal.tenant, query)
    _fold_queue_later(background, request)
    if format is ReportFormat.json:
        return _json(payload)
    report = TimeToConvertReport.model_validate(payload)
    table = render.timing_table(report)
    return _respond(
        report,
        format,
        "time-to-convert",
        query,
        [render.Sheet(table)],
        [render.Section(table)],
        "Time to convert",
        report.generated_at,
    )


@router.get(
    "/client-structure",
    response_model=ClientStructureReport,
    responses={200: _FORMATS},
    summary="Client structure: tiers and ages of referred clients against organic clients",
    description=(
        "The share of HNW and institutional clients among converted (and funded) referrals, against organic "
        "clients whose account opened in the same period; assets brought in by tier; age bands with the 25-35 "
        "target marked. Partner, program, product and kind filters apply to referrals; organic clients follow "
        "the period, the month and the tier only."
    ),
)
async def client_structure_report(
    session: SessionDep,
    principal: StaffReader,
    query: Query_,
    background: BackgroundTasks,
    request: Request,
    format: Annotated[ReportFormat, FORMAT_QUERY] = ReportFormat.json,
) -> Any:
    payload = await service.client_structure_payload(session, principal.tenant, query)
    _fold_queue_later(background, request)
    if format is ReportFormat.json:
        return _json(payload)
    report = ClientStructureReport.model_validate(payload)
    table = render.structure_table(report)
    figures = [("HNW + institutional share", render.share_svg(report.total))]
    return _respond(
        report,
        format,
        "client-structure",
        query,
        [render.Sheet(table)],
        [render.Section(table, figures)],
        "Client structure",
        report.generated_at,
    )


@router.get(
    "/fees",
    response_model=FeesReport,
    responses={200: _FORMATS},
    summary="Fees and value: assets, revenue, fees by status, cost per funded account",
    description=(
        "For the referrals received in the period: assets brought in, revenue recorded, fees accrued (net of "
        "caps and clawbacks) split by status, cost per funded account and the revenue-to-fee ratio. Integer fen."
    ),
)
async def fees_report(
    session: SessionDep,
    principal: StaffReader,
    query: Query_,
    background: BackgroundTasks,
    request: Request,
    format: Annotated[ReportFormat, FORMAT_QUERY] = ReportFormat.json,
) -> Any:
    payload = await service.fees_payload(session, principal.tenant, query)
    _fold_queue_later(background, request)
    if format is ReportFormat.json:
        return _json(payload)
    report = FeesReport.model_validate(payload)
    table = render.fees_table(report)
    return _respond(
        report, format, "fees", query, [render.Sheet(table)], [render.Section(table)], "Fees", report.generated_at
    )


@router.get(
    "/partners/{id}/scorecard",
    response_model=Scorecard,
    responses={200: _FORMATS, **problem_responses(404)},
    summary="One partner against the alliance average",
    description=(
        "The partner's volumes, rates, days to convert, fees and client structure over the period, beside the "
        "alliance (every partner with referrals in the period) and its peers (partners of the same kind): "
        "volumes as the average per partner, rates, days and ratios pooled. Partner filters do not apply."
    ),
)
async def scorecard_report(
    scored: Annotated[str, Path(alias="id", max_length=40, description="The partner scored.")],
    session: SessionDep,
    principal: StaffReader,
    query: Query_,
    background: BackgroundTasks,
    request: Request,
    format: Annotated[ReportFormat, FORMAT_QUERY] = ReportFormat.json,
) -> Any:
    payload = await service.scorecard_payload(session, principal, scored, query)
    _fold_queue_later(background, request)
    if format is ReportFormat.json:
        return _json(payload)
    report = Scorecard.model_validate(payload)
    table = render.scorecard_table(report)
    return _respond(
        report,
        format,
        f"scorecard-{scored}",
        query,
        [render.Sheet(table)],
        [render.Section(table)],
        f"Scorecard: {report.partner.name}",
        report.generated_at,
    )


@router.get(
    "/pack",
    response_model=ReportPack,
    responses={200: _FORMATS},
    summary="Every report at once: the weekly workbook or page",
    description=(
        "The funnel (with its monthly trend), time to convert, fees and client structure over one period, filters "
        "and grouping: JSON, an XLSX workbook with one sheet per report and native charts, or one HTML page."
    ),
)
async def report_pack(
    session: SessionDep,
    principal: StaffReader,
    query: Query_,
    background: BackgroundTasks,
    request: Request,
    format: Annotated[Literal["json", "xlsx", "html"], FORMAT_QUERY] = "json",
) -> Any:
    everyone = principal.tenant
    reports = await service.pack(session, principal, query)
    sheets, sections = await _funnel_views(session, everyone, query, reports.funnel)
    tables = [
        render.timing_table(reports.time_to_convert),
        render.fees_table(reports.fees),
        render.structure_table(reports.client_structure),
    ]
    sheets += [render.Sheet(table) for table in tables]
    sections += [render.Section(table) for table in tables]
    sections[-1].figures.append(("HNW + institutional share", render.share_svg(reports.client_structure.total)))
    _fold_queue_later(background, request)
    generated = reports.funnel.generated_at
    if format == "json":
        return Response(reports.model_dump_json(), media_type="application/json")
    return _respond(reports, ReportFormat(format), "reports", query, sheets, sections, "Alliance reports", generated)
