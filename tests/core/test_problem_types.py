"""Every problem ``type`` is a page of the service that explains it, and every type the code can send is registered."""

from __future__ import annotations

import html
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

import app.main  # noqa: F401  (every router, so every Problem class, is imported)
from app.auth.scopes import StaffRole
from app.core import problems
from app.core.problem_types import PROBLEM_TYPES
from app.core.problems import PROBLEM_MEDIA_TYPE, Problem
from tests.conftest import CallerFactory


def problem_classes(cls: type[Problem] = Problem) -> Iterator[type[Problem]]:
    yield cls
    for subclass in cls.__subclasses__():
        yield from problem_classes(subclass)


def test_every_problem_class_and_generic_answer_has_a_registered_type() -> None:
    raised = {cls.slug: cls for cls in problem_classes()}
    assert len(raised) > 30  # the walk found the domain classes, not just the base ones
    unregistered = sorted(slug for slug in raised if slug not in PROBLEM_TYPES)
    assert not unregistered, f"Problem classes whose type has no page: {unregistered}"
    generic = {slug for slug, _ in problems._HTTP_SLUGS.values()} | {"http-error"}
    assert generic <= set(PROBLEM_TYPES)
    mismatched = [
        (cls.__name__, cls.title, PROBLEM_TYPES[cls.slug].title)
        for cls in raised.values()
        if cls.title != PROBLEM_TYPES[cls.slug].title
    ]
    assert not mismatched, f"a class and its registered type disagree on the title: {mismatched}"


def test_the_type_uri_is_the_page_of_the_service() -> None:
    for slug in PROBLEM_TYPES:
        parts = urlsplit(urljoin("https://alliance.bank.test/v1/referrals", problems.problem_type(slug)))
        assert (parts.netloc, parts.path) == ("alliance.bank.test", f"/problems/{slug}")


async def test_each_type_page_explains_it(client: httpx.AsyncClient) -> None:
    for kind in PROBLEM_TYPES.values():
        response = await client.get(f"/problems/{kind.slug}")
        assert response.status_code == 200, kind.slug
        assert response.headers["content-type"].startswith("text/html")
        page = response.text
        assert f"<title>{html.escape(kind.title)}</title>" in page and f"<h1>{html.escape(kind.title)}</h1>" in page
        assert len(kind.explanation) > 20
        first_words = html.escape(kind.explanation.split("`")[0][:40])
        assert first_words in page, kind.slug
    index = (await client.get("/problems")).text
    assert all(f'href="/problems/{slug}"' in index for slug in PROBLEM_TYPES)


async def test_an_unknown_type_page_is_a_problem_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/problems/no-such-type")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


@pytest.fixture
async def failing_calls(caller: CallerFactory) -> list[tuple[str, str, dict[str, object]]]:
    partner = await caller("partner")
    finance = await caller("staff", role=StaffRole.finance)
    json_body = {"Content-Type": "application/json"}
    return [
        ("GET", "/nowhere", {}),
        ("DELETE", "/healthz", {}),
        ("GET", "/v1/referrals", {}),
        ("GET", "/v1/referrals", {"headers": {"Authorization": "Bearer not-a-token"}}),
        ("GET", "/v1/reports/fees", {"headers": partner.headers}),
        ("GET", "/v1/referrals/ref_none", {"headers": partner.headers}),
        ("GET", "/v1/referrals", {"headers": partner.headers, "params": {"cursor": "garbage"}}),
        ("POST", "/v1/referrals", {"headers": {**partner.headers, **json_body}, "content": b"{not json"}),
        ("POST", "/v1/referrals", {"headers": partner.headers, "json": {"program_id": 5}}),
        (
            "POST",
            "/v1/referral-batches",
            {"headers": {**partner.headers, "Content-Type": "text/plain"}, "content": b"x"},
        ),
        ("GET", "/v1/reports/funnel", {"headers": partner.headers, "params": {"group_by": "colour"}}),
        ("POST", "/v1/finance/periods/2999-01/close", {"headers": finance.headers}),
        ("POST", "/v1/finance/periods/january/close", {"headers": finance.headers}),
    ]


async def test_every_problem_answered_carries_a_registered_type(
    client: httpx.AsyncClient, failing_calls: list[tuple[str, str, dict[str, object]]]
) -> None:
    seen = set()
    for method, path, options in failing_calls:
        response = await client.request(method, path, **options)  # type: ignore[arg-type]
        assert response.status_code >= 400, (method, path)
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, (method, path, response.text)
        page_url = urljoin(str(response.url), response.json()["type"])
        slug = urlsplit(page_url).path.removeprefix("/problems/")
        assert slug in PROBLEM_TYPES, (method, path, response.json()["type"])
        assert (await client.get(page_url)).status_code == 200
        seen.add(slug)
    assert len(seen) >= 9, seen  # the sample covers many types, not one
