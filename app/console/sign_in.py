"""Signing people in and out: the local account form (username, password and one-time code), sign-out, the
person's own account page with sign-out everywhere.

Failures never tell whether the username exists: one message for every wrong field. A username or an address
with too many failures waits, and is told how long. The sign-in form, having no session yet, is protected from
cross-site posts by a double-submit token (a cookie and the same value in the form). Every sign-in, failure and
sign-out is audited with the person's username and name.
"""

from __future__ import annotations

import hmac
import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from app.audit import service as audit
from app.auth.limits import FailureThrottle
from app.console.access import CSRF_FIELD, SESSION_COOKIE, SignedInPerson, SignInRequired, StaleForm, current_person
from app.console.i18n import words
from app.console.signing import (
    PRE_SESSION_COOKIE,
    SIGN_IN_URL,
    local_next,
    request_actor_of,
    session_response,
    sign_in_page,
)
from app.console.sso import start_sso
from app.console.templating import redirect, render
from app.core.config import Settings
from app.core.database import SessionDep
from app.people import service as people
from app.people import sessions

MAX_FIELD = 256

router = APIRouter(prefix="/console", include_in_schema=False)


def install_throttles(app_state: object, settings: Settings) -> None:
    """Failed sign-ins counted per username and per address (in process memory, like the API's limits)."""
    window = settings.console_failure_window_s
    app_state.sign_in_failures_by_username = FailureThrottle(settings.console_failures_per_username, window)  # type: ignore[attr-defined]
    app_state.sign_in_failures_by_address = FailureThrottle(settings.console_failures_per_address, window)  # type: ignore[attr-defined]


def _throttles(request: Request) -> tuple[FailureThrottle, FailureThrottle]:
    state = request.app.state
    return state.sign_in_failures_by_username, state.sign_in_failures_by_address


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str = "/console") -> Response:
    if await current_person(request) is not None:
        return redirect(local_next(next))
    return sign_in_page(request, next_url=next)


def pre_session_form_is_ours(request: Request, sent: str) -> bool:
    expected = request.cookies.get(PRE_SESSION_COOKIE)
    return bool(expected) and hmac.compare_digest(sent.encode(), (expected or "").encode())


@router.post("/sign-in")
async def sign_in(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    password: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    code: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/console",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=MAX_FIELD)] = "",
    action: Annotated[str, Form(max_length=20)] = "password",
) -> Response:
    settings: Settings = request.app.state.settings
    if not pre_session_form_is_ours(request, csrf_token):
        return sign_in_page(
            request, next_url=next, error="The form has expired; please try again", status_code=403, username=username
        )
    if action == "sso" and settings.oidc_enabled:
        return await start_sso(request, next_url=local_next(next))
    name = people.normalise_username(username)
    by_username, by_address = _throttles(request)
    wait_s = max(by_username.retry_after(("username", name)), by_address.retry_after(_address(request)))
    if wait_s:
        await audit.record(
            session, request_actor_of(request, name, "anonymous"), "person.sign_in_failed", reason="throttled"
        )
        return sign_in_page(
            request,
            next_url=next,
            error="Too many failed attempts. Try again in {minutes} min.",
            minutes=math.ceil(wait_s / 60),
            status_code=429,
            username=name,
        )
    verdict = await people.check_local_credentials(session, settings, name, password, code)
    if verdict.reason is not None or verdict.person is None:
        by_username.record(("username", name))
        by_address.record(_address(request))
        await audit.record(
            session,
            request_actor_of(request, name, "anonymous"),
            "person.sign_in_failed",
            object_type="person" if verdict.person else None,
            object_id=verdict.person.id if verdict.person else None,
            reason=verdict.reason,
            method="password",
        )
        return sign_in_page(
            request,
            next_url=next,
            error="The username, password or one-time code is not right.",
            status_code=401,
            username=name,
        )
    person = verdict.person
    opened = await sessions.open_session(session, settings, person.id, method="password", ip_address=_address(request))
    await audit.record(
        session,
        request_actor_of(request, person.username),
        "person.signed_in",
        object_type="person",
        object_id=person.id,
        display_name=person.display_name,
        role=person.role.value,
        method="password",
        session_id=opened.session_id,
    )
    return session_response(request, opened, next)


async def signed_in_form(request: Request) -> SignedInPerson:
    """Any signed-in person, posting a form of their own session (CSRF token checked)."""
    person = await current_person(request)
    if person is None:
        raise SignInRequired("/console")
    request.state.person = person
    sent = (await request.form()).get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), person.csrf_token.encode()):
        raise StaleForm()
    return person


async def signed_in_page(request: Request) -> SignedInPerson:
    person = await current_person(request)
    if person is None:
        raise SignInRequired(request.url.path)
    request.state.person = person
    return person


def _signed_out(request: Request, flash: str) -> Response:
    response = redirect(SIGN_IN_URL, flash=flash)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.post("/sign-out")
async def sign_out(
    request: Request, session: SessionDep, person: Annotated[SignedInPerson, Depends(signed_in_form)]
) -> Response:
    await sessions.end_session(session, person.session_id)
    await audit.record(
        session,
        person.actor(request),
        "person.signed_out",
        object_type="person",
        object_id=person.person_id,
        display_name=person.display_name,
        session_id=person.session_id,
    )
    return _signed_out(request, "You are signed out")


@router.get("/account")
async def account(
    request: Request, session: SessionDep, person: Annotated[SignedInPerson, Depends(signed_in_page)]
) -> Response:
    settings: Settings = request.app.state.settings
    open_sessions = await sessions.open_sessions_of(session, settings, person.person_id)
    context = {
        "open_sessions": open_sessions,
        "idle_minutes": settings.console_idle_timeout_s // 60,
        "lifetime_hours": f"{settings.console_session_lifetime_s / 3600:g}",
    }
    return render(request, "people/account.html", context)


@router.post("/account/sign-out-everywhere")
async def sign_out_everywhere(
    request: Request, session: SessionDep, person: Annotated[SignedInPerson, Depends(signed_in_form)]
) -> Response:
    ended = await sessions.end_every_session(session, person.person_id)
    await audit.record(
        session,
        person.actor(request),
        "person.signed_out_everywhere",
        object_type="person",
        object_id=person.person_id,
        display_name=person.display_name,
        sessions_ended=ended,
    )
    return _signed_out(request, "You are signed out everywhere")


words(
    {
        "Username": "用户名",
        "Password": "密码",
        "One-time code": "动态验证码",
        "The six digits your authenticator app shows": "身份验证器应用当前显示的 6 位数字",
        "Sign in with SSO": "使用统一身份认证登录",
        "or with a local account": "或使用本地账户",
        "Sign in to the alliance console": "登录合作联盟管理台",
        "For the firm's alliance managers, finance officers, administrators and auditors": (
            "供联盟经理、财务人员、系统管理员和审计员使用"
        ),
        "The username, password or one-time code is not right.": "用户名、密码或动态验证码不正确。",
        "Too many failed attempts. Try again in {minutes} min.": "失败次数过多，请 {minutes} 分钟后再试。",
        "You are signed out": "您已退出登录",
        "You are signed out everywhere": "您已在所有设备上退出登录",
        "Sign out everywhere": "退出所有设备",
        "My account": "我的账户",
        "Open sessions": "当前登录会话",
        "Signed in at": "登录时间",
        "Last active": "最近活动",
        "Address": "地址",
        "Method": "方式",
        "This session": "当前会话",
        "Role": "角色",
        "Name": "姓名",
        "Ends every session of yours, this one included": "结束您的所有会话（包括当前会话）",
        "password": "密码 + 动态验证码",
        "sso": "统一身份认证",
        "A session ends after {idle} minutes without activity, and {hours} hours after sign-in": (
            "会话在无操作 {idle} 分钟后、或登录 {hours} 小时后结束"
        ),
        "Single sign-on did not succeed. Please try again.": "统一身份认证登录未成功，请重试。",
        "Your account has no console role. Ask an administrator.": "您的账户没有管理台角色，请联系系统管理员。",
    }
)
