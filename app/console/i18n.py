"""The console's two languages: Chinese (the default) and English.

Templates and page code write English and call ``t("Statements")``; each area of the console registers its own
Chinese words with ``words({...})`` next to its pages, so that two areas never edit one list. A word with no
Chinese is shown in English (``tests/console`` checks that every word used has its Chinese)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from starlette.requests import Request

Locale = Literal["zh", "en"]
LOCALES: tuple[Locale, ...] = ("zh", "en")
DEFAULT_LOCALE: Locale = "zh"
LOCALE_COOKIE = "console_lang"

_CHINESE: dict[str, str] = {}


def words(chinese: Mapping[str, str]) -> None:
    """Register the Chinese of some English words; one English word has one Chinese everywhere."""
    for english, text in chinese.items():
        known = _CHINESE.setdefault(english, text)
        if known != text:
            raise ValueError(f"{english!r} is already {known!r}, not {text!r}")


def chinese_of(english: str) -> str | None:
    return _CHINESE.get(english)


def locale_of(request: Request) -> Locale:
    chosen = request.cookies.get(LOCALE_COOKIE)
    return "en" if chosen == "en" else DEFAULT_LOCALE


def translator(locale: Locale) -> Callable[..., str]:
    """``t("{n} selected", n=3)``: the word in ``locale``, with its fields filled in."""

    def t(english: str, **fields: object) -> str:
        text = english if locale == "en" else _CHINESE.get(english, english)
        return text.format(**fields) if fields else text

    return t


words(
    {
        "Alliance console": "合作联盟管理台",
        "Overview": "总览",
        "Partners": "合作机构",
        "Programs and fee schedules": "项目与费率",
        "Conflicts": "归因冲突",
        "Referral search": "推荐查询",
        "Periods": "结算周期",
        "Statements": "结算单",
        "Discrepancies": "对账差异",
        "Clients": "接入凭证",
        "Signing keys": "签名密钥",
        "Audit log": "审计日志",
        "Sign in": "登录",
        "Sign out": "退出登录",
        "Alliance management": "联盟管理",
        "Finance": "财务结算",
        "Administration": "系统管理",
        "Times are Beijing time": "时间均为北京时间",
        "No data": "暂无数据",
        "Nothing matches these filters": "没有符合筛选条件的记录",
        "Reset": "重置",
        "Filter": "筛选",
        "Search": "查询",
        "Actions": "操作",
        "Export": "导出",
        "Page {page} of {pages}": "第 {page} / {pages} 页",
        "{total} in all": "共 {total} 条",
        "Previous": "上一页",
        "Next": "下一页",
        "Confirm": "确认",
        "Cancel": "取消",
        "Amount (CNY)": "金额（元）",
        "You do not have access to this page": "您没有访问此页面的权限",
        "Your role": "您的角色",
        "Back to the console": "返回管理台",
        "Page not found": "页面不存在",
        "Not found": "未找到该记录",
        "Unprocessable content": "内容无法处理",
        "This cannot be done in the current state": "当前状态下无法执行此操作",
        "This form is incomplete or invalid; please check it and try again": "表单不完整或有误，请检查后重试",
        "The form has expired; please try again": "表单已过期，请重试",
        "alliance_manager": "联盟经理",
        "finance": "财务",
        "admin": "系统管理员",
        "auditor": "审计员",
        "中文": "中文",
        "English": "English",
    }
)
