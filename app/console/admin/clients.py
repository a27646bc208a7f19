"""接入凭证: the OAuth clients of partners, back-office systems and staff tools. An admin lists them, creates one,
rotates its secret or revokes it; a secret is shown once, on the page that answers the create or the rotation,
and never again (never in a URL, a cookie or a log). Every change is audited with the person's name."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from app.auth import inventory
from app.auth import service as credentials
from app.auth.models import AuthMethod, ClientStatus, OAuthClient
from app.auth.scopes import SCOPES, PrincipalKind, StaffRole, allowance
from app.catalog import service as catalog
from app.catalog.models import Partner, PartnerStatus
from app.console.access import SignedInPerson, form_for, page_for
from app.console.admin.listing import PageWindow, clean_text, has_empty_parameters, page_number, url_of
from app.console.admin.words import AUTH_METHODS, CLIENT_KINDS, CLIENT_STATUSES, GRACE_PERIODS
from app.console.templating import redirect, render
from app.core.database import SessionDep
from app.core.pagination import MAX_LIMIT, PageParams
from app.core.problems import NotFound, Unprocessable

router = APIRouter(prefix="/console/clients", include_in_schema=False)
Admin = Annotated[SignedInPerson, Depends(page_for("clients:manage"))]
AdminForm = Annotated[SignedInPerson, Depends(form_for("clients:manage"))]
SECRET_METHODS = (AuthMethod.client_secret_basic, AuthMethod.client_secret_post)


def _labels() -> dict[str, Any]:
    return {
        "kinds": CLIENT_KINDS,
        "statuses": CLIENT_STATUSES,
        "methods": AUTH_METHODS,
        "scope_descriptions": SCOPES,
    }


@router.get("")
async def list_clients(
    request: Request,
    session: SessionDep,
    person: Admin,
    kind: Annotated[str | None, Query()] = None,
    status: Annotated[str | None, Query()] = None,
    page: Annotated[str | None, Query()] = None,
) -> Response:
    chosen_kind = kind if kind in CLIENT_KINDS else None
    chosen_status = status if status in CLIENT_STATUSES else None
    number = page_number(page)
    filters = {"kind": chosen_kind, "status": chosen_status}
    corrected = (kind or None) != chosen_kind or (status or None) != chosen_status or number == 0
    if corrected or has_empty_parameters(request.query_params):
        return redirect(url_of(request.url.path, {**filters, "page": str(number) if number else None}))
    window = PageWindow(number or 1, total=0)
    entries, total = await inventory.client_entries(
        session,
        kind=PrincipalKind(chosen_kind) if chosen_kind else None,
        status=ClientStatus(chosen_status) if chosen_status else None,
        offset=window.offset,
        limit=window.size,
    )
    window = PageWindow(window.page, total=total)
    if window.beyond_the_end:
        return redirect(url_of(request.url.path, {**filters, "page": str(window.pages)}))
    return render(
        request,
        "admin/clients.html",
        {
            "entries": entries,
            "window": window,
            "filters": filters,
            "filtered": any(filters.values()),
            "page_url": lambda number: url_of(request.url.path, {**filters, "page": str(number)}),
            **_labels(),
        },
    )


async def _active_partners(session: AsyncSession) -> list[Partner]:
    params = PageParams(limit=MAX_LIMIT, cursor=None)
    partners = await catalog.list_partners(session, params, status=PartnerStatus.active)
    return sorted(partners[:MAX_LIMIT], key=lambda partner: partner.legal_name)


def _allowance_of(kind: str | None, role: str | None) -> tuple[str, ...]:
    if kind == PrincipalKind.staff:
        return allowance(PrincipalKind.staff, StaffRole(role)) if role and role in StaffRole.__members__ else ()
    return allowance(PrincipalKind(kind)) if kind and kind in CLIENT_KINDS else ()


async def _new_client_page(
    request: Request,
    session: SessionDep,
    values: dict[str, Any],
    errors: list[str] | None = None,
) -> Response:
    kind, role = values.get("kind"), values.get("role")
    return render(
        request,
        "admin/client_new.html",
        {
            "values": values,
            "errors": errors or [],
            "partners": await _active_partners(session) if kind == PrincipalKind.partner else [],
            "roles": list(StaffRole),
            "allowed_scopes": _allowance_of(kind, role),
            "secret_methods": [method.value for method in SECRET_METHODS],
            **_labels(),
        },
        status_code=422 if errors else 200,
    )


@router.get("/new")
async def new_client(
    request: Request,
    session: SessionDep,
    person: Admin,
    kind: Annotated[str | None, Query()] = None,
    role: Annotated[str | None, Query()] = None,
) -> Response:
    chosen_kind = kind if kind in CLIENT_KINDS else None
    chosen_role = role if chosen_kind == PrincipalKind.staff and role in StaffRole.__members__ else None
    if (kind or None) != chosen_kind or (role or None) != chosen_role:
        return redirect(url_of(request.url.path, {"kind": chosen_kind, "role": chosen_role}))
    values: dict[str, Any] = {
        "kind": chosen_kind,
        "role": chosen_role,
        "scopes": [],
        "auth_method": SECRET_METHODS[0].value,
    }
    return await _new_client_page(request, session, values)


def _client_form(form: FormData) -> tuple[dict[str, Any], list[str]]:
    """The posted form, and what is wrong with it (in words a person can act on)."""
    kind, role = form.get("kind"), form.get("role")
    values: dict[str, Any] = {
        "name": clean_text(form.get("name"), max_length=200),
        "kind": kind if kind in CLIENT_KINDS else None,
        "role": role if role in StaffRole.__members__ else None,
        "partner_id": clean_text(form.get("partner_id"), max_length=40),
        "scopes": [scope for scope in form.getlist("scope") if isinstance(scope, str)],
        "auth_method": form.get("auth_method"),
    }
    errors = []
    if values["name"] is None:
        errors.append("Give the client a name")
    if values["kind"] is None:
        errors.append("Choose a kind of client")
    if values["kind"] == PrincipalKind.partner and values["partner_id"] is None:
        errors.append("Choose the partner the client belongs to")
    if values["kind"] == PrincipalKind.staff and values["role"] is None:
        errors.append("Choose the role of the staff client")
    if values["kind"] != PrincipalKind.staff:
        values["role"] = None
    if values["kind"] != PrincipalKind.partner:
        values["partner_id"] = None
    allowed = _allowance_of(values["kind"], values["role"])
    if allowed and not set(values["scopes"]) <= set(allowed):
        errors.append("Some scopes are outside this kind's allowance")
    if values["auth_method"] not in [method.value for method in SECRET_METHODS]:
        errors.append("Choose how the client authenticates")
    return values, errors


@router.post("")
async def create_client(request: Request, session: SessionDep, person: AdminForm) -> Response:
    values, errors = _client_form(await request.form())
    if errors:
        return await _new_client_page(request, session, values, errors)
    try:
        created = await credentials.create_client(
            session,
            person.actor(request),
            name=values["name"],
            kind=PrincipalKind(values["kind"]),
            role=StaffRole(values["role"]) if values["role"] else None,
            partner_id=values["partner_id"],
            scopes=values["scopes"] or None,
            auth_method=AuthMethod(values["auth_method"]),
        )
    except (NotFound, Unprocessable):
        # Checked above but for the partner: it was not found, or is terminated (nothing was written).
        return await _new_client_page(request, session, values, ["This partner no longer exists or is terminated"])
    client = created.client
    return _secret_page(request, client, created.secret, previous_until=None)


def _secret_page(request: Request, client: OAuthClient, secret: str | None, previous_until: Any) -> Response:
    response = render(
        request,
        "admin/client_secret.html",
        {"client": client, "secret": secret, "previous_until": previous_until, **_labels()},
    )
    # The one page that holds the secret: no cache, no referrer, never indexed.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


async def _client_or_404(request: Request, session: SessionDep, client_id: str) -> OAuthClient | Response:
    try:
        return await credentials.get_client(session, client_id)
    except NotFound:
        return render(request, "admin/not_found.html", status_code=404)


@router.get("/{client_id}/rotate")
async def confirm_rotation(request: Request, session: SessionDep, person: Admin, client_id: str) -> Response:
    client = await _client_or_404(request, session, client_id)
    if isinstance(client, Response):
        return client
    return _rotation_page(request, client)


def _rotation_page(request: Request, client: OAuthClient, errors: list[str] | None = None) -> Response:
    default = request.app.state.settings.secret_rotation_grace_s
    return render(
        request,
        "admin/client_rotate.html",
        {
            "client": client,
            "errors": errors or [],
            "grace_periods": GRACE_PERIODS,
            "default_grace": default if default in GRACE_PERIODS else 86_400,
            "blocked": _why_not_rotatable(client),
            **_labels(),
        },
        status_code=422 if errors else 200,
    )


def _why_not_rotatable(client: OAuthClient) -> str | None:
    if client.status is ClientStatus.revoked:
        return "This client is revoked"
    if client.auth_method is AuthMethod.private_key_jwt:
        return "A private_key_jwt client has no secret; the partner publishes a new key instead"
    return None


@router.post("/{client_id}/rotate")
async def rotate_secret(request: Request, session: SessionDep, person: AdminForm, client_id: str) -> Response:
    client = await _client_or_404(request, session, client_id)
    if isinstance(client, Response):
        return client
    if reason := _why_not_rotatable(client):
        return _rotation_page(request, client, [reason])
    grace = (await request.form()).get("grace_s")
    grace_s = int(grace) if isinstance(grace, str) and grace.isdigit() and int(grace) in GRACE_PERIODS else None
    if grace_s is None:
        return _rotation_page(request, client, ["When the secret in use stops working"])
    client, secret, until = await credentials.rotate_client_secret(
        session, person.actor(request), client.id, grace_s=grace_s
    )
    return _secret_page(request, client, secret, previous_until=until)


@router.get("/{client_id}/revoke")
async def confirm_revocation(request: Request, session: SessionDep, person: Admin, client_id: str) -> Response:
    client = await _client_or_404(request, session, client_id)
    if isinstance(client, Response):
        return client
    return await _revocation_page(request, session, client)


async def _revocation_page(
    request: Request, session: SessionDep, client: OAuthClient, errors: list[str] | None = None
) -> Response:
    partner = await catalog.get_partner(session, client.partner_id) if client.partner_id else None
    return render(
        request,
        "admin/client_revoke.html",
        {"client": client, "partner": partner, "errors": errors or [], **_labels()},
        status_code=422 if errors else 200,
    )


@router.post("/{client_id}/revoke")
async def revoke_client(request: Request, session: SessionDep, person: AdminForm, client_id: str) -> Response:
    client = await _client_or_404(request, session, client_id)
    if isinstance(client, Response):
        return client
    if client.status is ClientStatus.revoked:
        return await _revocation_page(request, session, client, ["This client is revoked"])
    if (await request.form()).get("confirm") != "yes":
        return await _revocation_page(request, session, client, ["Tick the box to confirm"])
    await credentials.revoke_client(session, person.actor(request), client.id)
    return redirect("/console/clients", flash="The client is revoked; its tokens no longer work")
