"""The interactive API documentation (Swagger UI at ``/docs``), served entirely by the service itself.

FastAPI's default page loads Swagger UI from a CDN, so it is blank on a machine without internet access. The
assets ship in the ``fastapi-offline`` package and are served under ``/docs/assets``; the page names only those.
ReDoc is not offered: its bundle fetches a logo from its vendor's host.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
_ASSETS = Path(fastapi_offline.__file__).parent / "static"
# Swagger UI would otherwise show a badge image fetched from the public validator service.
_PARAMETERS = {"validatorUrl": None}


def install_docs(app: FastAPI) -> None:
    """Mount the assets and the two pages; the app is built with ``docs_url=None`` and ``redoc_url=None``."""
    app.mount(ASSETS_URL, StaticFiles(directory=_ASSETS), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API documentation",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=_PARAMETERS,
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


def document_schemas(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """List ``models`` among the document's schemas although no route takes them as a field (descriptions name
    them: a batch whose items are validated one by one, for instance)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas.setdefault(model.__name__, schema)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def document_in_order(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """List the paths in the order of ``routers`` whatever the order they were included in (which is the order
    they are matched in); paths of other routes keep their place after them."""
    generate = app.openapi
    rank: dict[str, int] = {}
    for router in routers:
        for route in router.routes:
            rank.setdefault(getattr(route, "path", ""), len(rank))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        paths = document.get("paths", {})
        document["paths"] = dict(sorted(paths.items(), key=lambda item: rank.get(item[0], len(rank))))
        return document

    app.openapi = openapi  # type: ignore[method-assign]
