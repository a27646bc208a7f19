"""Every source a report reads carries its tenant rule, and the query builder applies it to every part: a partner
never counts another partner's referral, whatever the source, the period's shape or the queue."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import asdict
from datetime import date

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

import app.reports
from app.audit.service import Actor
from app.core.tenancy import Tenant
from app.reports import queries, service, sources, summary
from app.reports.schemas import GroupBy
from tests.reports import oracle
from tests.reports.conftest import Book

EVERYONE = Tenant.everyone(Actor.system("test"))  # every partner's rows, as staff see them

# December's tail, the whole of January, February's head: every part of a source's statement is used.
ROUGH = queries.ReportQuery(date(2025, 12, 20), date(2026, 2, 20))
WHOLE = queries.ReportQuery(date(2026, 1, 1), date(2026, 2, 28))
SCOPED = [source for source in sources.SOURCES if source.tenant_column is not None]


def sources_in_app_reports() -> list[sources.Source]:
    found = []
    for module_info in pkgutil.walk_packages(app.reports.__path__, "app.reports."):
        module = importlib.import_module(module_info.name)
        found += [value for value in vars(module).values() if isinstance(value, sources.Source)]
    return found


def test_every_source_of_the_reports_is_listed_with_its_rule() -> None:
    found = sources_in_app_reports()
    assert found and all(any(source is listed for listed in sources.SOURCES) for source in found)
    for source in sources.SOURCES:
        assert (source.tenant_column is None) != (source.unscoped_reason is None), source.rollup
        if source.tenant_column is not None:
            assert source.tenant_column in source.key


def test_a_source_cannot_be_built_without_a_scoping_rule() -> None:
    fields = {name: value for name, value in asdict(sources.COHORTS).items()}
    del fields["tenant_column"], fields["unscoped_reason"]
    with pytest.raises(TypeError):
        sources.Source(**fields)
    with pytest.raises(TypeError):
        sources.Source(**fields, tenant_column="partner_id", unscoped_reason="both")
    with pytest.raises(TypeError):
        sources.Source(**fields, tenant_column="client_ref")  # not a key column: nothing to filter on
    assert sources.Source(**fields, tenant_column="partner_id").tenant_column == "partner_id"


@pytest.mark.parametrize("source", SCOPED, ids=lambda source: source.rollup)
@pytest.mark.parametrize("queued", [True, False], ids=["queued", "folded"])
@pytest.mark.parametrize("query", [ROUGH, WHOLE], ids=["rough", "whole"])
def test_every_part_of_a_scoped_source_filters_on_the_partner(
    source: sources.Source, queued: bool, query: queries.ReportQuery
) -> None:
    relation = queries.contributions(source, query, Tenant.of_partner("ptn_a"), queued=queued)
    sql = str(relation.element.compile(dialect=postgresql.dialect()))
    parts = sql.split("UNION ALL")
    assert len(parts) == (2 if query is ROUGH else 1) + (2 if queued else 0)
    for part in parts:
        assert f"f.{source.tenant_column} = %(tenant_partner_id)s" in part, part
    assert "tenant_partner_id" not in str(queries.contributions(source, query, EVERYONE).element)


@pytest.mark.parametrize("folded", [False, True], ids=["queued", "folded"])
async def test_a_partner_counts_none_of_another_partners_rows(book: Book, session: AsyncSession, folded: bool) -> None:
    if folded:
        await summary.refresh(session)
    bank, insurer = book.partners["bank"].id, book.partners["insurer"].id
    for source in SCOPED:
        measure = next(iter(source.measures))
        measures = queries.sums([measure])
        for query in (ROUGH, WHOLE):
            statement = queries.aggregate(source, query, EVERYONE, [GroupBy.partner], measures)
            everyone = {row["partner_id"] for row in await queries.rows_of(session, statement, measure)}
            assert {bank, insurer} <= everyone, source.rollup
            statement = queries.aggregate(source, query, Tenant.of_partner(bank), [GroupBy.partner], measures)
            own = {row["partner_id"] for row in await queries.rows_of(session, statement, measure)}
            assert own == {bank}, source.rollup
    # The partner-facing reports, as the bank: its own rows, and the figures of its referrals alone.
    for query in (ROUGH, WHOLE):
        grouped = queries.ReportQuery(query.start, query.end, group_by=(GroupBy.partner,))
        for name in ("funnel", "time_to_convert"):
            report = await getattr(service, name)(session, Tenant.of_partner(bank), grouped)
            assert {row.group.partner_id for row in report.rows} == {bank}, name
            recount = await getattr(oracle, name)(session, Tenant.of_partner(bank), grouped)
            assert report.model_dump(exclude={"generated_at"}) == recount.model_dump(exclude={"generated_at"})


async def test_a_source_of_no_partner_is_refused_to_a_partner(book: Book, session: AsyncSession) -> None:
    unscoped = [source for source in sources.SOURCES if source.tenant_column is None]
    assert unscoped
    for source in unscoped:
        with pytest.raises(sources.UnscopedSource):
            queries.contributions(source, WHOLE, Tenant.of_partner(book.partners["bank"].id))
        queries.contributions(source, WHOLE, EVERYONE)
    with pytest.raises(sources.UnscopedSource):
        await service.client_structure(session, Tenant.of_partner(book.partners["bank"].id), WHOLE)
