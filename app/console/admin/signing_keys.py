"""签名密钥: the keys that sign access tokens. The page shows the key in use and the ones before it (how long each
retired key still verifies what it signed); an admin rotates after a summary, audited with the person's name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from app.audit import service as audit
from app.auth.inventory import signing_key_entries
from app.auth.keys import rotate_signing_key
from app.console.access import SignedInPerson, form_for, page_for
from app.console.templating import redirect, render
from app.core.database import SessionDep

router = APIRouter(prefix="/console/keys", include_in_schema=False)
KeysAdmin = Annotated[SignedInPerson, Depends(page_for("keys:manage"))]
KeysAdminForm = Annotated[SignedInPerson, Depends(form_for("keys:manage"))]


@router.get("")
async def list_keys(request: Request, session: SessionDep, person: KeysAdmin) -> Response:
    settings = request.app.state.settings
    keys = await signing_key_entries(session, retired_key_publish_s=settings.retired_key_publish_s)
    return render(request, "admin/keys.html", {"keys": keys})


@router.get("/rotate")
async def confirm_rotation(request: Request, session: SessionDep, person: KeysAdmin) -> Response:
    settings = request.app.state.settings
    keys = await signing_key_entries(session, retired_key_publish_s=settings.retired_key_publish_s, limit=1)
    current = keys[0] if keys and keys[0].signing else None
    return render(
        request,
        "admin/key_rotate.html",
        {"current": current, "accepted_hours": settings.retired_key_publish_s // 3600},
    )


@router.post("/rotate")
async def rotate_key(request: Request, session: SessionDep, person: KeysAdminForm) -> Response:
    retired, active = await rotate_signing_key(session, request.app.state.settings)
    await audit.record(
        session,
        person.actor(request),
        "signing_key.rotated",
        object_type="signing_key",
        object_id=active,
        retired=retired,
    )
    request.app.state.keyring.invalidate()
    return redirect("/console/keys", flash="A new signing key is in use")
