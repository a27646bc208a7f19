"""签名密钥 and 审计日志 in the console: an admin rotates the signing key after a summary (tokens already issued keep
working); admins and auditors search the log by person, action, object and Beijing days, in the URL, with chips,
pages and masked details; an auditor finds no action to take."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import service as audit
from app.audit.models import AuditEvent
from app.audit.service import Actor
from app.auth.models import SigningKey, SigningKeyStatus
from app.console.i18n import LOCALE_COOKIE
from app.core import clock
from tests.conftest import CallerFactory
from tests.console.conftest import ConsoleAs

MANAGER = Actor(id="person:zhao.manager", kind="staff")


async def _active_kid(session: AsyncSession) -> str | None:
    return await session.scalar(select(col(SigningKey.kid)).where(col(SigningKey.status) == SigningKeyStatus.active))


async def test_an_admin_rotates_the_signing_key_after_a_summary_and_issued_tokens_keep_working(
    console_as: ConsoleAs, session: AsyncSession, caller: CallerFactory
) -> None:
    admin = await console_as("admin")
    manager = await caller("staff", role="alliance_manager")  # a token signed by the key in use
    before = await _active_kid(session)
    summary = await admin.client.get("/console/keys/rotate")
    assert summary.status_code == 200 and str(before) in summary.text and "已发放的令牌不受影响" in summary.text

    rotated = await admin.post("/console/keys/rotate")

    assert rotated.status_code == 303 and rotated.headers["location"] == "/console/keys"
    after = await _active_kid(session)
    assert after is not None and after != before
    page = await admin.client.get("/console/keys")
    assert "新签名密钥已启用" in page.text
    assert after in page.text and str(before) in page.text and "已停用，仍可验证令牌" in page.text
    event = await session.scalar(select(AuditEvent).where(col(AuditEvent.object_id) == after))
    assert event is not None and event.action == "signing_key.rotated" and event.actor_id == admin.actor_id
    assert event.details["retired"] == before
    assert (await admin.client.get("/console/keys")).status_code == 200
    api = await caller("staff", role="auditor")  # a token signed by the new key
    for token_holder in (manager, api):
        response = await admin.client.get("/v1/admin/partners", headers=token_holder.headers)
        assert response.status_code == 200


async def _story(session: AsyncSession, manual_clock: clock.ManualClock) -> None:
    manual_clock.move_to(datetime(2026, 11, 30, 15, 30, tzinfo=UTC))  # 23:30 on 30 Nov, Beijing
    await audit.record(session, MANAGER, "story.opened", object_type="story", object_id="sty_1")
    manual_clock.move_to(datetime(2026, 11, 30, 16, 30, tzinfo=UTC))  # 00:30 on 1 Dec, Beijing
    await audit.record(
        session,
        MANAGER,
        "story.changed",
        object_type="story",
        object_id="sty_1",
        changes={"contacts": {"from": [], "to": [{"name": "张三丰", "mobile": "13812345678"}]}},
        note="<b>bold</b>",
    )
    await audit.record(session, Actor.system("nightly"), "story.changed", object_type="story", object_id="sty_2")


async def test_the_log_filters_by_person_action_object_and_beijing_day(
    console_as: ConsoleAs, session: AsyncSession, manual_clock: clock.ManualClock
) -> None:
    auditor = await console_as("auditor")
    await _story(session, manual_clock)

    by_person = await auditor.client.get("/console/audit?actor=zhao.manager")
    assert by_person.status_code == 200
    assert "story.opened" in by_person.text and "story.changed" in by_person.text and "nightly" not in by_person.text
    assert "共 2 条" in by_person.text
    first_of_december = await auditor.client.get("/console/audit?action=story.changed&from=2026-12-01&to=2026-12-01")
    assert "sty_1" in first_of_december.text and "sty_2" in first_of_december.text
    assert "story.opened" not in first_of_december.text.split('id="audit-results"')[1]
    on_the_30th = await auditor.client.get("/console/audit?object_type=story&object_id=sty_1&to=2026-11-30")
    assert "共 1 条" in on_the_30th.text and "2026-11-30 23:30:00" in on_the_30th.text
    assert "时间（北京时间）" in on_the_30th.text and "日期按北京时间计算" in on_the_30th.text


async def test_filters_show_as_chips_each_removable_and_all_at_once(
    console_as: ConsoleAs, session: AsyncSession, manual_clock: clock.ManualClock
) -> None:
    admin = await console_as("admin")
    await _story(session, manual_clock)

    page = await admin.client.get("/console/audit?action=story.changed&object_id=sty_2")

    assert 'href="/console/audit?object_id=sty_2"' in page.text  # the action chip's removal keeps the rest
    assert 'href="/console/audit?action=story.changed"' in page.text
    assert ">清除全部</a>" in page.text
    nothing = await admin.client.get("/console/audit?action=story.changed&object_id=sty_404")
    assert "没有符合筛选条件的记录" in nothing.text


async def test_a_bad_filter_leads_to_the_corrected_url(console_as: ConsoleAs) -> None:
    auditor = await console_as("auditor")

    for given, corrected in [
        ("from=2026-02-30&action=x", "/console/audit?action=x"),
        ("from=2026-12-09&to=2026-12-01", "/console/audit?from=2026-12-01&to=2026-12-09"),
        ("object_id=" + "x" * 81, "/console/audit"),
        ("page=0&actor=a", "/console/audit?actor=a"),
        ("actor=%00", "/console/audit"),
    ]:
        response = await auditor.client.get(f"/console/audit?{given}")
        assert response.status_code == 303, given
        assert response.headers["location"] == corrected, given
    followed = await auditor.client.get("/console/audit")
    assert "部分筛选条件无效，已移除" in followed.text


async def test_pages_say_the_total_and_a_page_past_the_end_leads_to_the_last(
    console_as: ConsoleAs, session: AsyncSession
) -> None:
    auditor = await console_as("auditor")
    for number in range(51):
        await audit.record(session, MANAGER, "story.paged", object_id=f"pg_{number}")

    first = await auditor.client.get("/console/audit?action=story.paged")
    second = await auditor.client.get("/console/audit?action=story.paged&page=2")
    beyond = await auditor.client.get("/console/audit?action=story.paged&page=7")

    assert "共 51 条 · 第 1 / 2 页" in first.text and "/console/audit?action=story.paged&amp;page=2" in first.text
    assert "pg_50" in first.text and "pg_0<" not in first.text
    assert "第 2 / 2 页" in second.text and "pg_0<" in second.text
    assert beyond.status_code == 303 and beyond.headers["location"] == "/console/audit?action=story.paged&page=2"


async def test_details_are_readable_escaped_and_never_show_personal_data(
    console_as: ConsoleAs, session: AsyncSession, manual_clock: clock.ManualClock
) -> None:
    auditor = await console_as("auditor")
    await _story(session, manual_clock)

    page = await auditor.client.get("/console/audit?object_id=sty_1&action=story.changed")

    assert "13812345678" not in page.text and "张三丰" not in page.text
    assert "138****5678" in page.text
    assert "<b>bold</b>" not in page.text and "&lt;b&gt;bold&lt;/b&gt;" in page.text


async def test_htmx_gets_only_the_results_and_a_browser_the_whole_page(console_as: ConsoleAs) -> None:
    admin = await console_as("admin")

    fragment = await admin.client.get("/console/audit", headers={"HX-Request": "true"})
    whole = await admin.client.get("/console/audit")

    assert "<html" not in fragment.text and "<html" in whole.text
    assert 'id="audit-results"' in whole.text


class Controls(HTMLParser):
    """The forms (method, action) and buttons of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, str]] = []
        self.buttons = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append(((values.get("method") or "get").lower(), values.get("action") or ""))
        if tag == "button" or (tag == "input" and values.get("type") == "submit"):
            self.buttons += 1


async def test_an_auditor_reads_the_log_and_finds_no_action_to_take(
    console_as: ConsoleAs, session: AsyncSession, manual_clock: clock.ManualClock
) -> None:
    auditor = await console_as("auditor")
    await _story(session, manual_clock)

    page = await auditor.client.get("/console/audit")

    controls = Controls()
    controls.feed(page.text)
    posted = {action for method, action in controls.forms if method == "post"}
    assert posted <= {"/console/sign-out", "/console/language"}, posted
    assert ("get", "/console/audit") in controls.forms
    assert controls.buttons == len(controls.forms)  # one button a form: the filter, the language, sign-out
    assert "/console/clients" not in page.text and "/console/keys" not in page.text


async def test_the_log_speaks_english_when_chosen(console_as: ConsoleAs) -> None:
    auditor = await console_as("auditor")
    auditor.client.cookies.set(LOCALE_COOKIE, "en")

    page = await auditor.client.get("/console/audit")

    assert "<h1>Audit log</h1>" in page.text and "Days are Beijing days" in page.text


async def test_the_empty_fields_of_the_filter_form_stay_out_of_the_url(console_as: ConsoleAs) -> None:
    auditor = await console_as("auditor")
    form = "actor=&action=client.created&object_type=&object_id=&from=&to="

    browser = await auditor.client.get(f"/console/audit?{form}")
    htmx = await auditor.client.get(f"/console/audit?{form}", headers={"HX-Request": "true"})

    assert browser.status_code == 303 and browser.headers["location"] == "/console/audit?action=client.created"
    assert htmx.status_code == 200 and htmx.headers["hx-push-url"] == "/console/audit?action=client.created"
