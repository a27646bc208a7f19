"""审计日志: every recorded change, newest first, for admins and auditors. The filters (person or client, action,
object, days in Beijing time) and the page live in the URL and are checked on the server: a bad value leads to the
corrected URL. The page only reads: it has no action, and its only form is the filter (a GET)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from app.audit import service as audit
from app.console.access import SignedInPerson, page_for
from app.console.admin.details import readable_details
from app.console.admin.listing import PageWindow, clean_text, has_empty_parameters, page_number, url_of
from app.console.admin.words import ACTOR_KINDS
from app.console.templating import is_fragment_request, redirect, render
from app.core.business_time import business_zone
from app.core.database import SessionDep

router = APIRouter(prefix="/console/audit", include_in_schema=False)
Reader = Annotated[SignedInPerson, Depends(page_for("audit:read"))]
PERSON_PREFIX = "person:"
# The longest value each filter can match (the column's length): anything longer matches nothing and is dropped.
TEXT_FILTERS = {"actor": 80, "action": 60, "object_type": 40, "object_id": 80}
DAY_FILTERS = ("from", "to")
FILTER_LABELS = {
    "actor": "Person or client",
    "action": "Action",
    "object_type": "Object type",
    "object_id": "Object id",
    "from": "From day",
    "to": "To day",
}


def _day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw and len(raw) == 10 else None
    except ValueError:
        return None


def _start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=business_zone()).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """The filters as the URL gives them, and as they are once checked."""

    given: dict[str, str | None]
    kept: dict[str, str | None]

    @classmethod
    def of(cls, given: dict[str, str | None]) -> AuditFilters:
        kept: dict[str, str | None] = {
            name: clean_text(given.get(name), max_length=limit) for name, limit in TEXT_FILTERS.items()
        }
        since, until = _day(given.get("from")), _day(given.get("to"))
        if since and until and since > until:
            since, until = until, since
        kept["from"], kept["to"] = (since.isoformat() if since else None), (until.isoformat() if until else None)
        return cls(given, kept)

    @property
    def corrected(self) -> bool:
        return any((self.given.get(name) or None) != self.kept[name] for name in self.kept)

    @property
    def active(self) -> dict[str, str]:
        return {name: value for name, value in self.kept.items() if value}

    def search(self) -> audit.AuditSearch:
        actor = self.kept["actor"]
        since, until = _day(self.kept["from"]), _day(self.kept["to"])
        return audit.AuditSearch(
            # A person is written ``person:<username>`` in the log; their username alone finds them too.
            actor_ids=(actor, PERSON_PREFIX + actor) if actor and ":" not in actor else ((actor,) if actor else ()),
            action=self.kept["action"],
            object_type=self.kept["object_type"],
            object_id=self.kept["object_id"],
            since=_start_of(since) if since else None,
            until=_start_of(until + timedelta(days=1)) if until else None,
        )


@router.get("")
async def audit_log(
    request: Request,
    session: SessionDep,
    person: Reader,
    actor: Annotated[str | None, Query()] = None,
    action: Annotated[str | None, Query()] = None,
    object_type: Annotated[str | None, Query()] = None,
    object_id: Annotated[str | None, Query()] = None,
    since: Annotated[str | None, Query(alias="from")] = None,
    until: Annotated[str | None, Query(alias="to")] = None,
    page: Annotated[str | None, Query()] = None,
) -> Response:
    given = {
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "from": since,
        "to": until,
    }
    filters = AuditFilters.of(given)
    number = page_number(page)
    path = request.url.path
    canonical = url_of(path, {**filters.kept, "page": str(number) if number else None})
    if not is_fragment_request(request) and has_empty_parameters(request.query_params) and not filters.corrected:
        return redirect(canonical)
    if filters.corrected or number == 0:
        return redirect(
            url_of(path, filters.kept), flash="Some filters were not valid and were removed", level="warning"
        )
    window = PageWindow(number or 1, total=0)
    events, total = await audit.search_events(session, filters.search(), offset=window.offset, limit=window.size)
    window = PageWindow(window.page, total=total)
    if window.beyond_the_end:
        return redirect(url_of(path, {**filters.kept, "page": str(window.pages)}))
    chips = [
        (FILTER_LABELS[name], value, url_of(path, {**filters.kept, name: None}))
        for name, value in filters.active.items()
    ]
    response = render(
        request,
        "admin/audit.html",
        {
            "events": [(event, readable_details(event.details)) for event in events],
            "window": window,
            "filters": filters.kept,
            "chips": chips,
            "actions": await audit.recorded_actions(session),
            "object_types": await audit.recorded_object_types(session),
            "page_url": lambda number: url_of(path, {**filters.kept, "page": str(number)}),
            "actor_kinds": ACTOR_KINDS,
        },
        fragment="admin/audit_results.html",
    )
    response.headers["HX-Push-Url"] = canonical  # htmx shows the URL of the filters set, not of the whole form
    return response
