"""The alliance manager's pages. Each reads its state from the URL (a bad value redirects to the corrected URL),
calls the domain services with the signed-in person's tenant and actor, and renders a whole page or, for htmx,
the region it swaps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from app.console.access import SignedInPerson, page_for
from app.console.i18n import locale_of, translator
from app.console.manager import overview as overview_view
from app.console.manager import periods
from app.console.manager import words as _words  # noqa: F401  (the Chinese of these pages)
from app.console.templating import redirect, render
from app.core import business_time
from app.core.database import SessionDep

router = APIRouter(prefix="/console", include_in_schema=False)

ReportReader = Annotated[SignedInPerson, Depends(page_for("reports:read"))]
Text = Annotated[str | None, Query()]  # checked by the page, which redirects a bad value


@router.get("/overview")
async def overview_page(request: Request, session: SessionDep, person: ReportReader, period: Text = None) -> Response:
    today = business_time.today()
    chosen = periods.parse(period or periods.DEFAULT, today)
    if chosen is None:
        return redirect(
            f"/console/overview?period={periods.DEFAULT}",
            flash="Unknown period: showing the last 12 months",
            level="warning",
        )
    view = await overview_view.overview(session, person.tenant, chosen)
    context = {
        "view": view,
        "charts": overview_view.charts_of(view, _translator(request)),
        "ages": overview_view.age_bars(view.structure),
        "change_shown": overview_view.change_shown,
        "period_choices": periods.choices(today),
    }
    return render(request, "manager/overview.html", context, fragment="manager/overview_body.html")


def _translator(request: Request) -> Callable[..., str]:
    return translator(locale_of(request))
