"""Schema fuzzing: requests generated from the app's own OpenAPI document, sent with a real token for each principal.

Schemathesis draws each operation's requests (valid ones, and invalid ones that must be refused) and checks every
answer: never a 5xx, a documented status and content type, a body and headers conforming to the documented schema,
an invalid request refused with a 4xx; and our own rule, every 4xx/5xx is ``application/problem+json``.

The app runs in process over the test's rolled-back transaction, so the requests are sent with the suite's
``httpx.AsyncClient`` on the test's event loop; Hypothesis drives the generation from a worker thread.

Every operation is fuzzed without a token (one call: the 401), and with the principals it admits (the 403s of the
others are the authorization matrix's concern). Two profiles: ``bounded`` runs in ``make test`` (3 examples per
operation and generation mode, with the first principal each operation admits, derandomized so that the suite stays
deterministic); ``long`` is marked ``fuzz`` and runs only under ``make fuzz`` (every admitted principal, 50 examples,
a fresh seed each run).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.problem_types import PROBLEM_TYPES
from app.core.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from tests.conftest import Caller, CallerFactory
from tests.fuzz.conftest import FuzzRun
from tests.security.principals import disable_rate_limit, make_callers

ANONYMOUS = "anonymous"
BASE_URL = "http://testserver"


# RFC 6749 (5.2), RFC 7009 and RFC 7662 fix the error shape of these endpoints: `{"error": ...}` as application/json,
# documented on each of them (`OAuthErrorBody`); anything else they answer (422, 500) is still problem details.
OAUTH_ENDPOINTS = {"/oauth/token", "/oauth/introspect", "/oauth/revoke"}
OAUTH_ERROR_STATUSES = {400, 401, 413, 429}


def problem_json_errors(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every error the API answers is RFC 9457 problem details, whatever the route and whoever asks."""
    if case.operation.path in OAUTH_ENDPOINTS and response.status_code in OAUTH_ERROR_STATUSES:
        return
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.split(";")[0].strip() == PROBLEM_MEDIA_TYPE, (
            f"{response.status_code} answered with {content_type!r}, not {PROBLEM_MEDIA_TYPE}"
        )
        kind = str(response.json().get("type", ""))
        assert kind.startswith(PROBLEM_BASE) and kind.removeprefix(PROBLEM_BASE) in PROBLEM_TYPES, (
            f"{response.status_code} names the problem type {kind!r}, which has no page in the registry"
        )


# Media types of request bodies that are text files, documented as strings: any bytes drawn for them are a string.
TEXT_BODIES = {"text/csv", "application/x-ndjson"}


def _free_strings(document: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """(path, method, location, name) of each parameter documented as a string, or a list of strings, and no more."""
    found = set()
    for path, operations in document["paths"].items():
        for method, spec in operations.items():
            for parameter in spec.get("parameters", []):
                schema = parameter["schema"]
                choices = [choice for choice in schema.get("anyOf", [schema]) if choice.get("type") != "null"]
                inner = choices[0].get("items", choices[0]) if len(choices) == 1 else {}
                if {key: value for key, value in inner.items() if key not in ("title", "description")} == {
                    "type": "string"
                }:
                    found.add((path, method, parameter["in"], parameter["name"]))
    return found


def _checks(document: dict[str, Any]) -> list[Callable[..., Any]]:
    free_strings = _free_strings(document)

    def negative_data_rejected(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
        """schemathesis' `negative_data_rejection`, less its false positives on free-form string parameters.

        A path segment, header or query value is a string on the wire whatever was drawn for it: the number or
        boolean drawn to be "not a string" arrives as a valid one (`?program_id=false`), and a 200 is right. So is
        a body that is not JSON (a CSV or JSON Lines file): the `null` drawn for it arrives as the text "null".
        """
        data = case.meta.phase.data if case.meta is not None else None
        location = getattr(data, "parameter_location", None)
        media_type = (case.media_type or "").split(";")[0].strip()
        if location is not None and location.value == "body" and media_type in TEXT_BODIES:
            return None
        if data is not None and location is not None and location.value in ("path", "query", "header"):
            names = {data.parameter} if data.parameter else {m.parameter for m in data.mutations if m.parameter}
            operation = (case.operation.path, case.operation.method.lower(), location.value)
            if names and all((*operation, name) in free_strings for name in names):
                return None
        return negative_data_rejection(ctx, response, case)

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        negative_data_rejected,
        problem_json_errors,
    ]


@dataclass(frozen=True)
class Profile:
    name: str
    every_principal: bool  # else only the first principal (in `PRINCIPALS` order) each operation admits
    examples: int  # per operation, principal and generation mode
    derandomize: bool


BOUNDED = Profile("bounded", every_principal=False, examples=3, derandomize=True)
# `FUZZ_EXAMPLES=500 make fuzz` for a longer run still.
LONG = Profile("long", every_principal=True, examples=int(os.environ.get("FUZZ_EXAMPLES", "50")), derandomize=False)


@dataclass
class Outcome:
    cases: int = 0
    unnegatable: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _admits(security: list[dict[str, list[str]]], caller: Caller) -> bool:
    """Whether the operation's documented security lets this principal in."""
    granted = set(caller.client.scopes)
    return any(set(requirement.get("oauth2", [])) <= granted for requirement in security)


def _can_be_invalid(spec: dict[str, Any]) -> bool:
    """Whether an invalid request can reach the wire: a JSON body, or a parameter that is more than a bare string.

    A path segment, header or form field is a string whatever is drawn for it, so schemathesis filters out every
    invalid draft for such an operation, after hundreds of tries: seconds spent on nothing.
    """
    if "application/json" in spec.get("requestBody", {}).get("content", {}):
        return True
    ignored = {"title", "description"}
    return any(
        {key: value for key, value in parameter["schema"].items() if key not in ignored} != {"type": "string"}
        for parameter in spec.get("parameters", [])
    )


def _as_request(case: schemathesis.Case, headers: dict[str, str]) -> httpx.Request:
    """The case serialised exactly as schemathesis would send it (query, JSON, form, multipart), as an httpx request."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
    prepared = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        data=kwargs.get("data"),
        json=kwargs.get("json"),
        files=kwargs.get("files"),
        cookies=kwargs.get("cookies"),
    ).prepare()
    sent_headers = {name: value for name, value in prepared.headers.items() if name.lower() != "content-length"}
    return httpx.Request(
        prepared.method or "GET", prepared.url or BASE_URL, headers=sent_headers, content=prepared.body
    )


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    profile: Profile,
    principal: str,
    headers: dict[str, str],
    send: Callable[[httpx.Request], httpx.Response],
    checks: list[Callable[..., Any]],
    outcome: Outcome,
) -> None:
    """Runs in a worker thread: Hypothesis generates, ``send`` hands each request to the event loop."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=profile.derandomize,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=not profile.derandomize,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = send(_as_request(case, headers))
        outcome.cases += 1
        outcome.statuses[response.status_code] = outcome.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=checks, headers=headers)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # Nothing in this operation can be made invalid on the wire (no body, free-form strings only).
        outcome.unnegatable += 1
    except (Exception, BaseExceptionGroup) as error:  # every failing operation is reported, not only the first
        outcome.failures.append(f"--- {operation.label} as {principal} ({mode.value})\n{error}")


async def _fuzz(app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory, profile: Profile) -> Outcome:
    disable_rate_limit(app)
    document = (await client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    callers = await make_callers(caller)
    loop = asyncio.get_running_loop()

    def send(request: httpx.Request) -> httpx.Response:
        return asyncio.run_coroutine_threadsafe(client.send(request), loop).result(timeout=60)

    checks = _checks(document)
    outcome = Outcome()
    jobs = []
    for result in schema.get_all_operations():
        operation = result.ok()
        spec = document["paths"][operation.path][operation.method.lower()]
        security = spec.get("security")
        modes = list(GenerationMode) if _can_be_invalid(spec) else [GenerationMode.POSITIVE]
        if not security:  # a public route: fuzzed without a token
            jobs.extend((operation, mode, profile.examples, ANONYMOUS, {}) for mode in modes)
            continue
        # Without a token every protected route is a 401: one call each proves it is documented.
        jobs.append((operation, GenerationMode.POSITIVE, 1, ANONYMOUS, {}))
        admitted = [(name, who) for name, who in callers.items() if _admits(security, who)]
        for name, who in admitted if profile.every_principal else admitted[:1]:
            jobs.extend((operation, mode, profile.examples, name, who.headers) for mode in modes)

    def run_all() -> None:
        for operation, mode, examples, name, headers in jobs:
            _fuzz_operation(operation, mode, examples, profile, name, headers, send, checks, outcome)

    await asyncio.to_thread(run_all)
    return outcome


async def _check_profile(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory, profile: Profile, fuzz_runs: list[FuzzRun]
) -> None:
    started = time.monotonic()
    outcome = await _fuzz(app, client, caller, profile)
    seconds = time.monotonic() - started
    fuzz_runs.append(FuzzRun(profile.name, outcome.cases, seconds, outcome.statuses, outcome.unnegatable))
    assert not outcome.failures, f"{len(outcome.failures)} failing operation(s):\n" + "\n".join(outcome.failures)
    assert outcome.cases > 0


async def test_fuzz_bounded(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory, fuzz_runs: list[FuzzRun]
) -> None:
    await _check_profile(app, client, caller, BOUNDED, fuzz_runs)


@pytest.mark.fuzz
async def test_fuzz_long(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory, fuzz_runs: list[FuzzRun]
) -> None:
    await _check_profile(app, client, caller, LONG, fuzz_runs)
