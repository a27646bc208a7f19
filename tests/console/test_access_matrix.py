"""Every console route against every role, read from ``tests/console/policy.py`` (written from DESIGN.md), never
from the routes' own declarations; a route added anywhere in the console is walked without an edit here.

* No session: a page leads to sign-in; a form is refused and changes nothing.
* A role the policy does not admit: the 403 page, and nothing changes.
* An admitted role: never 403, never 5xx; an unknown id in the path answers the 404 page (or leads to another
  console page, the list with a message).
* A form without the session's CSRF token: refused, and nothing changes.
* Every page (and error page) loads nothing from another host, and every local asset it names answers 200.
* In Chinese, no page shows a registered English word untranslated; every word a template or console module
  passes to ``t()`` (or flashes) is registered.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.console.i18n import chinese_of
from tests.console.conftest import ConsoleAs, SignedIn
from tests.console.policy import ROLES
from tests.console.walk import (
    Route,
    VisibleText,
    audit_events,
    real_values,
    walked_routes,
    writes_so_far,
)
from tests.core.test_html_pages import ABSOLUTE, References

CONSOLE = Path(__file__).resolve().parents[2] / "app" / "console"
SIGN_IN = "/console/sign-in?next="


async def _people(console_as: ConsoleAs) -> dict[str, SignedIn]:
    return {role: await console_as(role) for role in ROLES}


def _form(person: SignedIn | None, route: Route) -> dict[str, str] | None:
    if route.method != "POST":
        return None
    return {"csrf_token": person.csrf_token} if person else {"csrf_token": "no-session"}


def _answers_an_unknown_id(response: httpx.Response) -> bool:
    """The 404 page, or a redirect to another console page (the list, with a message): never a page as if it were
    there, never sign-in."""
    if response.status_code == 404:
        return response.headers["content-type"].startswith("text/html")
    location = response.headers.get("location", "")
    return response.status_code == 303 and location.startswith("/console") and not location.startswith(SIGN_IN)


async def test_without_a_session_pages_lead_to_sign_in_and_forms_change_nothing(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    routes = walked_routes(app)
    values = await real_values(session, routes)
    problems = []
    for route in routes:
        url = route.url(values)
        writes, events = await writes_so_far(session), await audit_events(session)
        response = await client.request(route.method, url, data=_form(None, route))
        location = response.headers.get("location", "")
        if route.method == "GET" and not (response.status_code == 303 and location.startswith(SIGN_IN)):
            problems.append(f"GET {url}: {response.status_code} {location!r}, not a redirect to sign-in")
        if route.method != "GET":
            if response.status_code < 300 or (response.status_code < 400 and not location.startswith(SIGN_IN)):
                problems.append(f"{route.method} {url} without a session: {response.status_code} {location!r}")
            if (await writes_so_far(session), await audit_events(session)) != (writes, events):
                problems.append(f"{route.method} {url} without a session changed something")
    assert routes and not problems, "\n".join(problems)


async def test_a_role_the_policy_does_not_admit_gets_the_403_page_and_changes_nothing(
    app: FastAPI, session: AsyncSession, console_as: ConsoleAs
) -> None:
    people = await _people(console_as)
    routes = walked_routes(app)
    values = await real_values(session, routes)
    problems = []
    for route in routes:
        for role in route.refused:
            url = route.url(values)
            writes, events = await writes_so_far(session), await audit_events(session)
            response = await people[role].client.request(route.method, url, data=_form(people[role], route))
            if response.status_code != 403 or not response.headers["content-type"].startswith("text/html"):
                problems.append(f"{role} {route.method} {url}: {response.status_code}, not the 403 page")
            if (await writes_so_far(session), await audit_events(session)) != (writes, events):
                problems.append(f"{role} {route.method} {url}: refused, yet something changed")
    assert not problems, "\n".join(problems)


async def test_an_admitted_role_is_never_refused_and_never_meets_a_fault(
    app: FastAPI, session: AsyncSession, console_as: ConsoleAs
) -> None:
    # A new person for each route and role: an admitted form may end the session (signing out).
    routes = walked_routes(app)
    values = await real_values(session, routes)
    problems = []
    for route in routes:
        for role in route.admitted:
            person = await console_as(role)
            # url → whether every id in it is unknown (then it must answer the 404 page)
            urls = {route.url(values): not any(name in values for name in route.parameters)}
            if route.parameters:
                urls[route.url({})] = True
            for url, unknown in sorted(urls.items()):
                response = await person.client.request(route.method, url, data=_form(person, route))
                if response.status_code == 403 or response.status_code >= 500:
                    problems.append(f"{role} {route.method} {url}: {response.status_code}")
                elif route.parameters and unknown and not _answers_an_unknown_id(response):
                    problems.append(f"{role} {route.method} {url}: {response.status_code}, not the 404 page")
    assert not problems, "\n".join(problems)


async def test_a_form_without_the_session_csrf_token_is_refused_and_changes_nothing(
    app: FastAPI, session: AsyncSession, console_as: ConsoleAs
) -> None:
    people = await _people(console_as)
    routes = [route for route in walked_routes(app) if route.method == "POST"]
    values = await real_values(session, routes)
    problems = []
    for route in routes:
        for role in route.admitted:
            url = route.url(values)
            forms = {
                "no token": {},
                "a forged token": {"csrf_token": "forged"},
                "another token": {"csrf_token": people[role].csrf_token + "x"},
            }
            for sent, form in forms.items():
                writes, events = await writes_so_far(session), await audit_events(session)
                response = await people[role].client.post(url, data={**form, "confirm": "yes"})
                if response.status_code != 403:
                    problems.append(f"{role} POST {url} with {sent}: {response.status_code}, not refused")
                if (await writes_so_far(session), await audit_events(session)) != (writes, events):
                    problems.append(f"{role} POST {url} with {sent}: refused, yet something changed")
    assert routes and not problems, "\n".join(problems)


async def _pages(app: FastAPI, session: AsyncSession, people: dict[str, SignedIn]) -> list[tuple[str, str, str]]:
    """(role, url, html) of every page an admitted role opens, its error pages (404) included."""
    routes = [route for route in walked_routes(app) if route.method == "GET"]
    values = await real_values(session, routes)
    pages = []
    for route in routes:
        for role in route.admitted:
            for url in sorted({route.url(values), route.url({})}):
                response = await people[role].client.get(url)
                if response.headers.get("content-type", "").startswith("text/html"):
                    pages.append((role, url, response.text))
    return pages


async def test_every_console_page_loads_nothing_from_another_host(
    app: FastAPI, session: AsyncSession, console_as: ConsoleAs
) -> None:
    people = await _people(console_as)
    pages = await _pages(app, session, people)
    problems, checked = [], {}
    for role, url, html in pages:
        found = References()
        found.feed(html)
        for reference in found.urls:
            parts = urlsplit(reference)
            if parts.netloc or parts.scheme not in ("", "data"):
                problems.append(f"{url} ({role}) loads {reference} from elsewhere")
            elif parts.scheme != "data" and not reference.startswith("#") and "/static/" in parts.path:
                if parts.path not in checked:
                    checked[parts.path] = (await people[role].client.get(urljoin(url, reference))).status_code
                if checked[parts.path] != 200:
                    problems.append(f"{url} references {reference}, which answers {checked[parts.path]}")
        problems += [f"{url} has inline code naming another host" for code in found.inline if ABSOLUTE.search(code)]
    assert pages and checked and not problems, "\n".join(problems)


async def test_in_chinese_no_page_shows_a_registered_english_word(
    app: FastAPI, session: AsyncSession, console_as: ConsoleAs
) -> None:
    people = await _people(console_as)
    problems = []
    for role, url, html in await _pages(app, session, people):
        shown = VisibleText()
        shown.feed(html)
        untranslated = {text for text in shown.texts if chinese_of(text) not in (None, text)}
        problems += [f"{url} ({role}) shows {text!r} in English" for text in sorted(untranslated)]
    assert not problems, "\n".join(problems)


# t("…") / t('…') in templates; in console modules, t("…") calls and flash="…" arguments (docstrings aside).
_TRANSLATED = re.compile(r"""\bt\(\s*(?P<q>["'])(?P<word>(?:(?!(?P=q)).)+)(?P=q)""")


def _words_of_module(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id == "t" and node.args:
            found.append(node.args[0])
        found += [keyword.value for keyword in node.keywords if keyword.arg == "flash"]
    return [node.value for node in found if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_every_word_the_console_translates_is_registered(app: FastAPI) -> None:
    # The app is built: every console module (and its words) is imported.
    missing = []
    for path in sorted(CONSOLE.rglob("*")):
        if path.suffix == ".html":
            used = [match["word"] for match in _TRANSLATED.finditer(path.read_text(encoding="utf-8"))]
        elif path.suffix == ".py":
            used = _words_of_module(path.read_text(encoding="utf-8"))
        else:
            continue
        missing += [f"{path.relative_to(CONSOLE)}: {word!r}" for word in used if chinese_of(word) is None]
    assert not missing, "Words without their Chinese (register them with words({...})):\n" + "\n".join(missing)
