"""A risk signal's evidence as a manager reads it on the case page (``app.console.manager.risk_cases``): each key
the detectors write (``app.risk.detectors``) by its name, rates in basis points as percentages, money in yuan,
counts with separators, the detectors' words for a value by their name, digests shortened. An unknown key is
shown as it is."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.console import formatting
from app.console.i18n import words

SECTIONS = ("thresholds", "observed", "items")

KEY = {
    # thresholds
    "window_hours": "Window (hours)",
    "baseline_days": "Baseline period (days)",
    "factor": "Multiple required",
    "min_referrals": "Minimum referrals",
    "min_rate_bp": "Minimum rate",
    "identities_per_mobile": "Identities per mobile number",
    "lookback_days": "Lookback (days)",
    "clients_per_consent": "Clients per consent evidence",
    "accounts": "Accounts emptied or closed, at least",
    "emptied_below_bp": "Emptied: assets at or below this share of the amount funded",
    "cooling_off_days": "Cooling-off period (days)",
    # observed
    "referrals_in_window": "Referrals in the window",
    "baseline_busiest_window": "Busiest window of the baseline",
    "baseline_mean_per_window": "Mean per window of the baseline",
    "month": "Business month",
    "metric": "Rate measured",
    "received": "Referrals received",
    "count": "Referrals in the rate",
    "rate_bp": "Rate",
    "peers": "Peer partners",
    "peer_received": "Peers' referrals received",
    "peer_count": "Peers' referrals in the rate",
    "peer_rate_bp": "Peers' rate",
    "scope": "Where the number is shared",
    "identities": "Identities on the number",
    "identities_at_partner": "Identities at this partner",
    "partners": "Partners involved",
    "matched_on": "Matched on",
    "clients": "Clients on the evidence",
    "accounts_funded": "Accounts funded",
    "accounts_emptied_or_closed": "Accounts emptied or closed",
    "accounts_closed": "Accounts closed",
    "bundles_purchased": "Bundles bought",
    "bundles_cancelled_in_cooling_off": "Bundles cancelled in the cooling-off period",
    # beside the sections (``app.risk.sink``: a signal names at most so many referrals)
    "referrals_named": "Referrals named",
    "of": "Found",
    "named": "Named",
}
# Where a threshold has the name of a figure observed and means a bound on it.
THRESHOLD_KEY = {"count": "Times, at least", "rate_bp": "Minimum rate"}
VALUE = {
    "rejection_rate": "Rejection rate",
    "existing_client_rate": "Existing-client rate",
    "within_partner": "Within the partner",
    "across_partners": "Across partners",
    "evidence_ref": "Consent record reference",
    "notice_second": "Notice hash and capture second",
}
ITEM_KIND = {"mobile": "Mobile number (digest)", "consent": "Consent evidence (digest)"}
_ORDER = {key: place for place, key in enumerate(KEY)}
DIGEST_SHOWN = 12
_HEX = re.compile(r"[0-9a-f]+")


def label(section: str, key: str) -> str:
    """The English name of ``key`` in ``section`` (the key itself if it has none), for ``t``."""
    return (THRESHOLD_KEY.get(key) if section == "thresholds" else None) or KEY.get(key, key)


@dataclass(frozen=True)
class Row:
    label: str
    value: str


@dataclass(frozen=True)
class Item:
    label: str
    shown: str
    whole: str


@dataclass
class Evidence:
    thresholds: list[Row] = field(default_factory=list)
    observed: list[Row] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    others: list[Row] = field(default_factory=list)


def _value(key: str, value: Any, t: Callable[..., str], section: str) -> str:
    if value is None:
        return formatting.NOT_APPLICABLE
    if isinstance(value, bool):
        return t("Yes") if value else t("No")
    if isinstance(value, int) and key.endswith("_bp"):
        return formatting.percent(value / 10_000)
    if isinstance(value, int) and key.endswith("_fen"):
        return formatting.yuan(value)
    if isinstance(value, int):
        return formatting.count(value)
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, str):
        return t(VALUE[value]) if value in VALUE else value
    if isinstance(value, list):
        return ", ".join(_value(key, part, t, section) for part in value)
    if isinstance(value, dict):
        return "; ".join(f"{t(label(section, k))}: {_value(k, v, t, section)}" for k, v in value.items())
    return str(value)


def _item(raw: object, t: Callable[..., str]) -> Item:
    text = str(raw)
    kind, _, digest = text.partition(":")
    if not digest:
        return Item("", text, text)
    shown = f"{digest[:DIGEST_SHOWN]}…" if len(digest) > DIGEST_SHOWN and _HEX.fullmatch(digest) else digest
    return Item(t(ITEM_KIND.get(kind, kind)), shown, text)


def _rows(section: str, values: object, t: Callable[..., str]) -> list[Row]:
    if not isinstance(values, dict):
        return [] if values is None else [Row(t(label("", section)), _value(section, values, t, ""))]
    # In the order of ``KEY`` (JSONB keeps keys by length), unknown keys last.
    keys = sorted(values, key=lambda key: _ORDER.get(key, len(_ORDER)))
    return [Row(t(label(section, key)), _value(key, values[key], t, section)) for key in keys]


def evidence_view(evidence: dict[str, Any], t: Callable[..., str]) -> Evidence:
    """``evidence`` in the page's language (``t``)."""
    items = evidence.get("items")
    view = Evidence(
        thresholds=_rows("thresholds", evidence.get("thresholds"), t),
        observed=_rows("observed", evidence.get("observed"), t),
        items=[_item(item, t) for item in items] if isinstance(items, list) else [],
    )
    for key, value in evidence.items():
        if key not in SECTIONS:
            view.others.append(Row(t(label("", key)), _value(key, value, t, "")))
    return view


words(  # "Referrals received", "Yes" and "No" have theirs in ``app.console.manager.words``
    {
        "Window (hours)": "统计窗口（小时）",
        "Baseline period (days)": "基线期（天）",
        "Multiple required": "倍数阈值",
        "Minimum referrals": "最少推荐数",
        "Minimum rate": "最低比率",
        "Identities per mobile number": "每个手机号的身份数",
        "Lookback (days)": "回溯期（天）",
        "Clients per consent evidence": "每份授权凭证的客户数",
        "Accounts emptied or closed, at least": "转出或销户账户数下限",
        "Emptied: assets at or below this share of the amount funded": "视为转出：资产不高于入金额的比例",
        "Cooling-off period (days)": "犹豫期（天）",
        "Times, at least": "次数下限",
        "Referrals in the window": "窗口内推荐数",
        "Busiest window of the baseline": "基线期单窗口最高推荐数",
        "Mean per window of the baseline": "基线期单窗口平均推荐数",
        "Business month": "业务月份",
        "Rate measured": "考察指标",
        "Referrals in the rate": "计入比率的推荐数",
        "Rate": "比率",
        "Peer partners": "同业机构数",
        "Peers' referrals received": "同业推荐数",
        "Peers' referrals in the rate": "同业计入比率的推荐数",
        "Peers' rate": "同业比率",
        "Where the number is shared": "共用范围",
        "Identities on the number": "该手机号的身份数",
        "Identities at this partner": "本机构的身份数",
        "Partners involved": "涉及机构数",
        "Matched on": "匹配依据",
        "Clients on the evidence": "使用该凭证的客户数",
        "Accounts funded": "入金账户数",
        "Accounts emptied or closed": "转出或销户账户数",
        "Accounts closed": "销户账户数",
        "Bundles bought": "购买组合产品数",
        "Bundles cancelled in the cooling-off period": "犹豫期内退订数",
        "Referrals named": "列明的推荐数",
        "Found": "发现数",
        "Named": "列明数",
        "Rejection rate": "驳回率",
        "Existing-client rate": "存量客户率",
        "Within the partner": "本机构内",
        "Across partners": "跨机构",
        "Consent record reference": "授权记录编号",
        "Notice hash and capture second": "告知书哈希及采集时刻",
        "Mobile number (digest)": "手机号（摘要）",
        "Consent evidence (digest)": "授权凭证（摘要）",
    }
)
