"""The SDK covers the partner API: every partner-facing operation of the OpenAPI document has a method on both
clients, and every operation the SDK calls exists, with the same method and path."""

from __future__ import annotations

import inspect
import re
from typing import Any

import alliance_partner
from alliance_partner import OPERATIONS, AsyncClient, Client
from fastapi import FastAPI

from app.auth.scopes import PARTNER_SCOPES

_PARAMETER = re.compile(r"\{[^}]+\}")


def _shape(path: str) -> str:
    return _PARAMETER.sub("{}", path)


def partner_operations(app: FastAPI) -> dict[tuple[str, str], str]:
    """(method, path shape) → operation id, for every operation a partner token may call: one of its security
    requirements (alternatives, e.g. staff ``reports:read`` or partner ``referrals:read``) asks only for
    partner scopes."""
    found = {}
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            for requirement in operation.get("security", []):
                scopes = set(requirement.get("oauth2", []))
                if scopes and scopes <= set(PARTNER_SCOPES):
                    found[(method.upper(), _shape(path))] = operation["operationId"]
    return found


def test_every_partner_operation_has_an_sdk_method(app: FastAPI) -> None:
    api = partner_operations(app)
    assert len(api) >= 25, "the partner API was found in the document"
    assert ("GET", "/v1/reports/funnel") in api and ("GET", "/v1/admin/partners") not in api
    covered = {(method, _shape(path)) for method, path in OPERATIONS.values()}
    missing = {key: operation for key, operation in api.items() if key not in covered}
    assert not missing, f"partner operations without an SDK method: {missing}"


def test_every_sdk_operation_exists_in_the_api(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for name, (method, path) in OPERATIONS.items():
        assert method.lower() in paths.get(path, {}), f"{name}: {method} {path} is not in the OpenAPI document"


def method_of(client: type[Any], name: str) -> Any:
    """A dotted name is a method of a group: ``sandbox.simulate`` is ``client.sandbox.simulate``."""
    found: Any = client
    for part in name.split("."):
        found = getattr(found, part)
    return found


def test_both_clients_have_every_method_and_the_same_signature() -> None:
    for name in OPERATIONS:
        sync_method = method_of(Client, name)
        async_method = method_of(AsyncClient, name)
        assert sync_method.__doc__ is None or async_method.__doc__ == sync_method.__doc__, name
        assert inspect.signature(sync_method).parameters.keys() == inspect.signature(async_method).parameters.keys()
        listing = name.rsplit(".", 1)[-1].startswith("list_") and name != "list_referral_events"
        # Lists return a pager at once (iterated with `for` / `async for`); everything else is awaited.
        assert inspect.iscoroutinefunction(async_method) is not listing, name
        assert not inspect.iscoroutinefunction(sync_method)


def test_the_package_exports_what_it_documents() -> None:
    exported: Any = alliance_partner
    for name in alliance_partner.__all__:
        assert hasattr(exported, name), name
    assert alliance_partner.Client.__module__ == "alliance_partner"
    assert (alliance_partner.__file__ or "").endswith("__init__.py")
    from pathlib import Path

    assert (Path(alliance_partner.__file__ or "").parent / "py.typed").exists()
