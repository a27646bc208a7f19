"""Hot reads (``HotRead`` routes: ``GET /v1/programs`` and the audit search) answer exactly what FastAPI's own
resolution answers, errors included, without resolving a dependency through FastAPI; anything unusual goes to
FastAPI's handler. The routes rely on a private part of FastAPI (``_effective_route_context_var``): the tests that
count FastAPI's resolutions fail as soon as a FastAPI upgrade turns the hot path off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import HotRead, Principal, requires
from app.auth.limits import TokenBuckets
from app.auth.scopes import PrincipalKind
from app.catalog.models import PartnerKind
from app.core.compiled import ReadsDep
from app.core.database import SessionDep
from app.core.pagination import Page
from app.core.problems import install_problem_handlers
from tests.conftest import CallerFactory
from tests.factories.referrals import make_program

PROGRAMS = "/v1/programs"
AUDIT = "/v1/admin/audit-events"
PROBLEM = "application/problem+json"


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths of the calls FastAPI resolved the dependencies of (by its own ``solve_dependencies``)."""
    seen: list[str] = []
    solve = fastapi.routing.solve_dependencies

    async def counted(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["request"].url.path)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    yield seen


def _by_fastapi(app: FastAPI) -> None:
    """Any dependency override hands every hot call to FastAPI's own handler."""
    app.dependency_overrides[_unused] = _unused


def _unused() -> None:  # pragma: no cover - overridden, never called
    pass


def _comparable(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    return response.status_code, response.content, list(response.headers.multi_items())


def _same_request_id(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "X-Request-Id": "req-compared"}  # problems carry it in their body


async def test_a_partner_lists_its_own_programs_without_fastapi_resolving_a_dependency(
    client: httpx.AsyncClient, caller: CallerFactory, session: AsyncSession, make_partner: Any, resolutions: list[str]
) -> None:
    bank, insurer = await make_partner(), await make_partner(PartnerKind.insurer, "中国平安财产保险股份有限公司")
    mine = [await make_program(session, bank, name=f"银证合作 {n}") for n in range(3)]
    theirs = await make_program(session, insurer, name="保险专区")
    partner = await caller("partner", partner=bank)

    first = await client.get(PROGRAMS, params={"limit": 2}, headers=partner.headers)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/json"
    page = first.json()
    # Newest first, two of three, and a cursor to the third.
    assert [program["id"] for program in page["data"]] == [mine[2].id, mine[1].id]
    assert page["data"][0]["name"] == "银证合作 2"
    assert page["data"][0]["products"] == [] and page["data"][0]["fee_schedule_in_force"] is None
    rest = await client.get(PROGRAMS, params={"cursor": page["next_cursor"]}, headers=partner.headers)
    assert [program["id"] for program in rest.json()["data"]] == [mine[0].id]
    assert rest.json()["next_cursor"] is None
    # The route beside it (not hot) still answers 404 for another partner's program.
    other = await client.get(f"{PROGRAMS}/{theirs.id}", headers=partner.headers)
    assert other.status_code == 404 and other.headers["content-type"] == PROBLEM
    assert resolutions == [f"{PROGRAMS}/{theirs.id}"]


async def test_the_audit_search_is_hot(
    client: httpx.AsyncClient, caller: CallerFactory, resolutions: list[str]
) -> None:
    admin = await caller("staff", role="admin")
    created = await caller("staff", role="auditor")  # creating a client is audited
    found = await client.get(AUDIT, params={"object_id": created.client.id, "limit": 1}, headers=admin.headers)
    assert found.status_code == 200, found.text
    [event] = found.json()["data"]
    assert event["object_id"] == created.client.id
    assert resolutions == []


async def test_errors_are_the_same_problems(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    partner = await caller("partner")
    no_token = await client.get(PROGRAMS)
    assert no_token.status_code == 401 and no_token.headers["www-authenticate"] == "Bearer"
    assert no_token.headers["content-type"] == PROBLEM and no_token.json()["status"] == 401
    garbage = await client.get(PROGRAMS, headers={"Authorization": "Bearer not-a-token"})
    assert garbage.status_code == 401 and 'error="invalid_token"' in garbage.headers["www-authenticate"]
    # A partner's token has no audit:read.
    refused = await client.get(AUDIT, headers=partner.headers)
    assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM
    assert refused.json()["type"].endswith("/insufficient-scope")
    assert 'scope="audit:read"' in refused.headers["www-authenticate"]
    narrow = await caller("partner", scopes=["referrals:write"])
    assert (await client.get(PROGRAMS, headers=narrow.headers)).status_code == 403


async def test_the_rate_limit_answers_429_before_the_read(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    app.state.api_rate_limits = TokenBuckets(default_rate=2)
    admin = await caller("staff", role="admin")
    statuses = [(await client.get(AUDIT, headers=admin.headers)).status_code for _ in range(5)]
    assert statuses[:4] == [200, 200, 200, 200] and statuses[4] == 429
    limited = await client.get(AUDIT, headers=admin.headers)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.headers["content-type"] == PROBLEM and limited.json()["type"].endswith("/rate-limited")


QUERIES = [
    "",
    "?limit=1",
    "?limit=500",
    "?limit=0",
    "?limit=501",
    "?limit=abc",
    "?limit=01",
    "?limit=+1",
    "?limit=%201",
    "?limit=1&limit=2",
    "?limit=",
    "?cursor=",
    "?cursor=not-a-cursor",
    "?cursor=" + "x" * 201,
    "?stauts=active",
]


@pytest.mark.parametrize("query", QUERIES)
async def test_programs_answer_as_fastapi_does(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory, session: AsyncSession, make_partner: Any, query: str
) -> None:
    bank = await make_partner()
    for n in range(2):
        await make_program(session, bank, name=f"银证合作 {n}")
    partner = await caller("partner", partner=bank)
    hot = await client.get(PROGRAMS + query, headers=_same_request_id(partner.headers))
    _by_fastapi(app)
    resolved = await client.get(PROGRAMS + query, headers=_same_request_id(partner.headers))
    assert _comparable(hot) == _comparable(resolved)


@pytest.mark.parametrize(
    "query",
    [*QUERIES, "?action=client.create", "?action=", "?action=" + "a" * 61, "?actor_id=test&object_id=x&limit=3"],
)
async def test_the_audit_search_answers_as_fastapi_does(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory, query: str
) -> None:
    admin = await caller("staff", role="admin")
    await caller("staff", role="auditor")
    hot = await client.get(AUDIT + query, headers=_same_request_id(admin.headers))
    _by_fastapi(app)
    resolved = await client.get(AUDIT + query, headers=_same_request_id(admin.headers))
    assert _comparable(hot) == _comparable(resolved)


async def test_well_formed_values_are_read_without_fastapi_and_others_are_left_to_it(
    client: httpx.AsyncClient, caller: CallerFactory, resolutions: list[str]
) -> None:
    admin = await caller("staff", role="admin")
    for query in ("?limit=3", "?action=client.create&limit=1", "?cursor="):
        assert (await client.get(AUDIT + query, headers=admin.headers)).status_code in (200, 400)
    assert resolutions == [AUDIT]  # the empty cursor only
    invalid = await client.get(AUDIT + "?limit=0", headers=admin.headers)
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["loc"] == ["query", "limit"]
    unknown = await client.get(AUDIT + "?stauts=x", headers=admin.headers)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == ["query", "stauts"]
    assert resolutions == [AUDIT, AUDIT, AUDIT]


async def test_an_override_is_honoured(app: FastAPI, client: httpx.AsyncClient) -> None:
    from app.auth.deps import authenticate

    app.dependency_overrides[authenticate] = lambda: Principal(
        client_id="cli_override",
        kind=PrincipalKind.partner,
        scopes=frozenset({"referrals:read"}),
        partner_id="ptn_nobody",
        role=None,
        token_id="j",
    )
    answer = await client.get(PROGRAMS)  # no token: the override answers for it
    assert answer.status_code == 200 and answer.json() == {"data": [], "next_cursor": None}


async def _with_session(session: SessionDep, principal: Annotated[Principal, requires("audit:read")]) -> Page[int]:
    raise AssertionError  # pragma: no cover


async def _with_enum(reads: ReadsDep, kind: Annotated[PartnerKind | None, Query()] = None) -> Page[int]:
    raise AssertionError  # pragma: no cover


async def _with_list(reads: ReadsDep, tag: Annotated[list[str] | None, Query()] = None) -> Page[int]:
    raise AssertionError  # pragma: no cover


async def _with_pattern(reads: ReadsDep, code: Annotated[str | None, Query(pattern="^[A-Z]+$")] = None) -> Page[int]:
    raise AssertionError  # pragma: no cover


async def _with_default_declaration(reads: ReadsDep, limit: int = Query(5)) -> Page[int]:
    raise AssertionError  # pragma: no cover


@pytest.mark.parametrize("endpoint", [_with_session, _with_enum, _with_list, _with_pattern, _with_default_declaration])
def test_a_route_it_cannot_resolve_is_refused_when_built(endpoint: Any) -> None:
    with pytest.raises(TypeError, match="HotRead"):
        APIRouter().add_api_route("/x", endpoint, response_model=Page[int], route_class_override=HotRead)


async def test_fastapi_still_tells_a_route_which_inclusion_it_is_built_for() -> None:
    """The one private part of FastAPI ``HotRead`` uses: if this fails, hot routes are ordinary routes again."""
    from fastapi.routing import _effective_route_context_var

    built: list[Any] = []

    class Recording(HotRead):
        def get_route_handler(self) -> Any:
            built.append(_effective_route_context_var.get())
            return super().get_route_handler()

    async def listed(principal: Annotated[Principal, requires("audit:read")]) -> Page[int]:
        return Page(data=[], next_cursor=None)  # pragma: no cover

    router = APIRouter(prefix="/v1/inner")
    router.add_api_route("", listed, response_model=Page[int], route_class_override=Recording)
    app = FastAPI()
    install_problem_handlers(app)
    app.state.database = None  # never read: the call has no token
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert (await http.get("/v1/inner")).status_code == 401  # no token, answered by the hot handler
    included = [context for context in built if context is not None]
    assert included and included[0].original_route is router.routes[0]
    assert included[0].path_format == "/v1/inner"
    assert included[0].dependency_overrides_provider is app
