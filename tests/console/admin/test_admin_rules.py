"""The rules of the administration pages that need no browser: audit filters as the URL gives them, the masking
of audit details, page numbers and the URLs of lists."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from app.console.admin.audit_log import AuditFilters
from app.console.admin.details import readable_details
from app.console.admin.listing import PageWindow, clean_text, page_number, url_of


def _given(**values: str) -> dict[str, str | None]:
    return {name: values.get(name) for name in ("actor", "action", "object_type", "object_id", "from", "to")}


def test_good_filters_are_kept_as_given() -> None:
    filters = AuditFilters.of(_given(actor="alice", action="client.created", **{"from": "2026-12-01"}))
    assert not filters.corrected
    assert filters.active == {"actor": "alice", "action": "client.created", "from": "2026-12-01"}


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ({"from": "2026-13-01"}, {}),
        ({"from": "yesterday"}, {}),
        ({"to": "2026-2-1"}, {}),
        ({"actor": "a\x00b"}, {}),
        ({"object_id": "x" * 81}, {}),
        ({"action": "   "}, {}),
        ({"from": "2026-12-05", "to": "2026-12-01"}, {"from": "2026-12-01", "to": "2026-12-05"}),
        ({"actor": "  alice "}, {"actor": "alice"}),
    ],
)
def test_a_bad_filter_is_corrected(given: dict[str, str], kept: dict[str, str]) -> None:
    filters = AuditFilters.of(_given(**given))
    assert filters.corrected
    assert filters.active == kept


def test_days_are_beijing_days_and_the_last_day_is_included() -> None:
    search = AuditFilters.of(_given(**{"from": "2026-12-01", "to": "2026-12-03"})).search()
    assert search.since == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert search.until == datetime(2026, 12, 3, 16, 0, tzinfo=UTC)


def test_a_username_finds_the_person_and_a_full_actor_id_only_itself() -> None:
    assert AuditFilters.of(_given(actor="alice")).search().actor_ids == ("alice", "person:alice")
    assert AuditFilters.of(_given(actor="person:alice")).search().actor_ids == ("person:alice",)
    assert AuditFilters.of(_given()).search().actor_ids == ()


def test_personal_and_secret_details_are_masked_wherever_they_are() -> None:
    details = {
        "changes": {
            "contacts": {"from": [], "to": [{"name": "张三丰", "mobile": "13812345678", "email": "zs@example.cn"}]},
            "display_name": {"from": "龙江银行", "to": "龙江示范银行"},
        },
        "mobile": "13987654321",
        "client_secret": "acs_abcdefghijklmnop",
        "grace_s": 3600,
    }
    text = readable_details(details)
    shown = json.loads(text)
    for secret in ("张三丰", "13812345678", "zs@example.cn", "13987654321", "acs_abcdefghijklmnop"):
        assert secret not in text
    assert shown["mobile"] == "139****4321"
    assert shown["changes"]["contacts"]["to"][0]["name"] == "张**"
    assert shown["changes"]["display_name"] == {"from": "龙江银行", "to": "龙江示范银行"}
    assert shown["grace_s"] == 3600
    assert readable_details({}) == ""


def test_html_in_details_stays_text_for_the_template_to_escape() -> None:
    assert "<script>" in readable_details({"note": "<script>alert(1)</script>"})


@pytest.mark.parametrize(
    ("raw", "number"), [(None, None), ("", None), ("3", 3), ("0", 0), ("-1", 0), ("x", 0), ("٣", 0)]
)
def test_page_numbers(raw: str | None, number: int | None) -> None:
    assert page_number(raw) == number


def test_a_page_beyond_the_last_is_seen_and_an_empty_list_has_one_page() -> None:
    assert PageWindow(1, total=0).pages == 1
    assert PageWindow(3, total=101, size=50).pages == 3 and not PageWindow(3, total=101, size=50).beyond_the_end
    assert PageWindow(4, total=101, size=50).beyond_the_end
    assert PageWindow(3, total=101, size=50).offset == 100


def test_urls_keep_only_the_filters_that_have_a_value() -> None:
    assert url_of("/console/audit", {"actor": "a b", "action": None, "page": "2"}) == "/console/audit?actor=a+b&page=2"
    assert url_of("/console/audit", {"actor": None}) == "/console/audit"


def test_text_that_cannot_be_stored_is_refused() -> None:
    assert clean_text(" ok ", max_length=5) == "ok"
    assert clean_text("\ud800", max_length=5) is None
    assert clean_text(None, max_length=5) is None
    assert clean_text("toolong", max_length=5) is None


def test_every_label_and_message_of_the_administration_pages_has_its_chinese() -> None:
    """The labels of values, and the English sentences the pages pass to templates (errors, reasons), are words."""
    import ast
    from pathlib import Path

    import app.console.admin  # noqa: F401  (registers the words)
    from app.console.admin import words as admin_words
    from app.console.i18n import chinese_of

    labels = [
        *admin_words.CLIENT_KINDS.values(),
        *admin_words.CLIENT_STATUSES.values(),
        *admin_words.AUTH_METHODS.values(),
        *admin_words.GRACE_PERIODS.values(),
        *admin_words.ACTOR_KINDS.values(),
    ]
    sentences = []
    for path in Path(admin_words.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        sentences += [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and re.fullmatch(r"[A-Z][a-z'-]+( [^ ]+)+", node.value)
        ]
    missing = [word for word in labels + sentences if chinese_of(word) is None]
    assert sentences and not missing, missing
