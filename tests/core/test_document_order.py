"""The OpenAPI document lists paths in the documented order of the routers, whatever order they were included in
(``app.main`` includes the routers of the calls made most first, so that they are matched first)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from app.core.docs import document_in_order
from app.main import create_app


def _router(prefix: str, *paths: str) -> APIRouter:
    router = APIRouter(prefix=prefix)
    for path in paths:

        async def endpoint() -> None:
            return None

        router.add_api_route(path, endpoint, methods=["GET"], name=f"{prefix}{path}")
    return router


def test_paths_follow_the_documented_order_not_the_included_one() -> None:
    first, second, third = _router("/a", "", "/{x}"), _router("/b", "/one", "/two"), _router("/c", "")
    app = FastAPI()
    for router in (third, second, first):
        app.include_router(router)
    app.add_api_route("/other", lambda: None, methods=["GET"])  # a route of no listed router: after them

    document_in_order(app, (first, second, third))

    assert list(app.openapi()["paths"]) == ["/a", "/a/{x}", "/b/one", "/b/two", "/c", "/other"]


def test_the_service_documents_its_own_paths_before_the_hot_ones_it_matches_first(settings) -> None:  # type: ignore[no-untyped-def]
    paths = list(create_app(settings).openapi()["paths"])

    # The catalog (staff) is documented before the partner's programs, and the audit log after statements.
    assert paths.index("/v1/admin/partners") < paths.index("/v1/programs")
    assert paths.index("/v1/statements") < paths.index("/v1/admin/audit-events")
    assert paths[0] == "/healthz"
