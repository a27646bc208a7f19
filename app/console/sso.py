"""The console's side of single sign-on: the first leg (from the sign-in form's "Sign in with SSO" to the identity
provider) and the callback, which signs the person in, created or updated from the ID token, or refuses and says so.
Every refusal is audited with its reason; the page shows one message (or, for a person without a mapped role, that
they have no console role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from app.audit import service as audit
from app.console.signing import local_next, request_actor_of, session_response, set_cookie, sign_in_page
from app.core.config import Settings
from app.core.database import SessionDep
from app.people import service as people
from app.people import sessions
from app.people.oidc import LOGIN_STATE_S, IdentityProvider, LoginState, SsoRefused

LOGIN_COOKIE = "console_sso"
CALLBACK_PATH = "/console/sso/callback"

router = APIRouter(prefix="/console", include_in_schema=False)


def provider_of(request: Request) -> IdentityProvider:
    provider: IdentityProvider | None = getattr(request.app.state, "identity_provider", None)
    if provider is None:
        provider = request.app.state.identity_provider = IdentityProvider(request.app.state.settings)
    return provider


def _redirect_uri(settings: Settings) -> str:
    return settings.issuer + CALLBACK_PATH


async def start_sso(request: Request, *, next_url: str) -> Response:
    """To the identity provider, remembering state, nonce and the PKCE verifier in a sealed cookie."""
    settings: Settings = request.app.state.settings
    try:
        url, login = await provider_of(request).start(_redirect_uri(settings), next_url)
    except SsoRefused:
        return sign_in_page(
            request, next_url=next_url, error="Single sign-on did not succeed. Please try again.", status_code=502
        )
    response = RedirectResponse(url, status_code=303)
    set_cookie(response, settings, LOGIN_COOKIE, login.seal(settings), max_age=LOGIN_STATE_S)
    return response


@router.get("/sso/callback")
async def sso_callback(
    request: Request,
    session: SessionDep,
    code: Annotated[str, Query(max_length=2048)] = "",
    state: Annotated[str, Query(max_length=512)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
    error_description: Annotated[str, Query(max_length=1000)] = "",
    session_state: Annotated[str, Query(max_length=512)] = "",
    iss: Annotated[str, Query(max_length=500)] = "",
    # Sent by some providers (Google, Microsoft Entra) beside the code; not used.
    scope: Annotated[str, Query(max_length=2000)] = "",
    authuser: Annotated[str, Query(max_length=20)] = "",
    hd: Annotated[str, Query(max_length=200)] = "",
    prompt: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    settings: Settings = request.app.state.settings
    next_url = "/console"
    try:
        if not settings.oidc_enabled:
            raise SsoRefused("sso_not_configured")
        login = LoginState.open(settings, request.cookies.get(LOGIN_COOKIE))
        next_url = local_next(login.next_url)
        if error:
            raise SsoRefused(f"provider_error:{error[:40]}")
        if iss and iss.rstrip("/") != provider_of(request).issuer:  # RFC 9207: the answer is from our provider
            raise SsoRefused("issuer_mismatch")
        identity = await provider_of(request).finish(_redirect_uri(settings), login, code=code, state=state)
    except SsoRefused as refused:
        actor = request_actor_of(request, refused.username or "sso", "anonymous")
        await audit.record(session, actor, "person.sign_in_failed", method="sso", reason=refused.reason)
        message = (
            "Your account has no console role. Ask an administrator."
            if refused.reason == "no_mapped_role"
            else "Single sign-on did not succeed. Please try again."
        )
        response = sign_in_page(request, next_url=next_url, error=message, status_code=403 if refused.username else 401)
        response.delete_cookie(LOGIN_COOKIE, path="/console")
        return response
    actor = request_actor_of(request, identity.username)
    person = await people.sign_in_with_sso(
        session,
        actor,
        subject=identity.subject,
        username=identity.username,
        display_name=identity.display_name,
        role=identity.role,
    )
    if person.disabled_at is not None:
        await audit.record(
            session,
            request_actor_of(request, person.username, "anonymous"),
            "person.sign_in_failed",
            object_type="person",
            object_id=person.id,
            method="sso",
            reason="disabled",
        )
        return sign_in_page(
            request, next_url=next_url, error="Single sign-on did not succeed. Please try again.", status_code=403
        )
    opened = await sessions.open_session(
        session, settings, person.id, method="sso", ip_address=request.client.host if request.client else None
    )
    await audit.record(
        session,
        request_actor_of(request, person.username),
        "person.signed_in",
        object_type="person",
        object_id=person.id,
        display_name=person.display_name,
        role=person.role.value,
        method="sso",
        session_id=opened.session_id,
    )
    response = session_response(request, opened, next_url)
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response
