"""The names and the Chinese of the risk case pages (``app.console.manager.risk_cases``): one English name per
value, so that a status reads the same on every page, and its Chinese."""

from __future__ import annotations

from app.console.i18n import words

SIGNAL_KIND = {
    "shared_mobile": "One mobile on several identities",
    "referral_burst": "Burst of referrals",
    "reused_consent": "Consent evidence reused",
    "funded_then_emptied": "Funded then emptied in the hold",
    "bundle_churn": "Bundles bought and cancelled again and again",
    "outlier_rates": "Rates far above peers",
}
SIGNAL_HINT = {
    "shared_mobile": "One mobile number appears on referrals of several different identities",
    "referral_burst": "The partner's referrals far above its normal rate",
    "reused_consent": "The same consent record or notice hash and capture second across many clients",
    "funded_then_emptied": "Accounts funded, then emptied or closed inside the hold period",
    "bundle_churn": "Bundles bought and cancelled in the cooling-off period, again and again",
    "outlier_rates": "The partner's rejection or existing-client rate far above its peers'",
}
CASE_STATUS = {"open": "Case open", "closed": "Case closed"}
OUTCOME = {"cleared": "Cleared: nothing wrong", "confirmed": "Confirmed: fraud or abuse"}
EVENT_KIND = {
    "opened": "Case opened",
    "signal_added": "Signal added",
    "assigned": "Assigned",
    "note": "Note",
    "closed": "Case closed",
}
WHOSE = {"all": "Every case", "mine": "Assigned to me", "unassigned": "Unassigned"}
LINE_STATUS = {
    "pending": "In hold period",
    "payable": "Payable line",
    "statemented": "On a statement",
    "paid": "Paid line",
    "reversed": "Reversed line",
}
RULE = {
    "funded_bounty": "Funded bounty",
    "tier_top_up": "Tier top-up",
    "bundle_fee": "Bundle fee",
    "revenue_share": "Revenue share",
    "cap": "Cap",
    "clawback": "Clawback",
    "adjustment": "Adjustment",
    "attribution_moved": "Attribution moved",
    "risk_confirmed": "Reversed after a risk review",
}

words(
    {
        "Risk cases": "风险案件",
        "Risk case": "风险案件详情",
        # signals
        "One mobile on several identities": "同一手机号对应多个身份",
        "Burst of referrals": "推荐量激增",
        "Consent evidence reused": "授权凭证重复使用",
        "Funded then emptied in the hold": "冻结期内入金后转出或销户",
        "Bundles bought and cancelled again and again": "反复购买并退订组合产品",
        "Rates far above peers": "驳回率或存量客户率畸高",
        "One mobile number appears on referrals of several different identities": (
            "同一手机号出现在多个不同身份的推荐中"
        ),
        "The partner's referrals far above its normal rate": "该机构的推荐量远高于其正常水平",
        "The same consent record or notice hash and capture second across many clients": (
            "多个客户使用同一授权记录或告知书哈希及同一采集时刻"
        ),
        "Accounts funded, then emptied or closed inside the hold period": "账户在冻结期内入金后转出或销户",
        "Bundles bought and cancelled in the cooling-off period, again and again": "组合产品在犹豫期内反复购买又退订",
        "The partner's rejection or existing-client rate far above its peers'": "该机构的驳回率或存量客户率远高于同业",
        # statuses and outcomes
        "Case open": "处理中",
        "Case closed": "已结案",
        "Closed cases archive": "已结案归档",
        "Cleared: nothing wrong": "排除：未发现问题",
        "Confirmed: fraud or abuse": "确认：存在欺诈或违规",
        "Case opened": "立案",
        "Signal added": "新增信号",
        "Assigned": "已分派",
        "Note": "备注",
        "Every case": "全部案件",
        "Assigned to me": "分派给我",
        "Unassigned": "未分派",
        "In hold period": "冻结期内",
        "Payable line": "可结算",
        "On a statement": "已入结算单",
        "Paid line": "已付款明细",
        "Reversed line": "已冲回",
        "Reversed after a risk review": "风险核实冲回",
        "Rejected after a risk review": "风险核实后驳回",
        "Under review": "审核中",
        # the pages
        "Signals": "风险信号",
        "Referrals the case names: their fee lines are held while it is open": "案件涉及的推荐：结案前其费用明细冻结",
        "Assignee": "处理人",
        "Opened": "立案时间",
        "Outcome": "结案结论",
        "No risk signal has opened a case yet": "尚无风险信号触发案件",
        "Fee lines of these referrals not on a statement: a month close leaves them out while the case is open": (
            "这些推荐尚未入结算单的费用明细：案件未结前，月度关账不纳入"
        ),
        "Amount held (CNY)": "冻结金额（元）",
        "Closed cases are locked; a new signal for the partner opens a new case.": (
            "已结案件不可修改；该机构的新信号将开立新案件。"
        ),
        "Evidence": "证据",
        "Hashes, masked values and ids only: personal data is never shown here.": (
            "仅显示哈希、脱敏值和编号，不显示个人信息明文。"
        ),
        "Threshold": "阈值",
        "Observed": "观测值",
        "Items ({count})": "明细项（{count}）",
        "Fee lines": "费用明细",
        "The first {shown} of {total}": "共 {total} 条，显示前 {shown} 条",
        "Line status": "明细状态",
        "Release time": "解冻时间",
        "Left out of every month close until the case is closed": "结案前不纳入任何月度关账",
        "Assign": "分派",
        "Assign to me": "分派给我处理",
        "Unassign": "取消分派",
        "Assign to a colleague": "分派给同事",
        "Add a note": "添加备注",
        "Close the case": "结案",
        "Cleared: the {count} lines held go into the next month close.": (
            "排除：冻结的 {count} 条明细将纳入下一次月度关账。"
        ),
        "Confirmed: {lines} lines are reversed and {referrals} referrals rejected; the partner is told they were "
        "rejected, never why.": (
            "确认：冲回 {lines} 条明细并驳回 {referrals} 条推荐；合作机构只会收到驳回通知，不会得知原因。"
        ),
        "I have read the summary: closing cannot be undone": "我已阅读以上摘要：结案后不可撤销",
        "Only alliance managers act on risk cases; your role reads them.": (
            "仅联盟经理可处理风险案件；您的角色只能查看。"
        ),
        # flashes
        "Unknown filter: showing the open cases": "筛选条件无效：显示处理中的案件",
        "No such risk case": "风险案件不存在",
        "Assign the case to a person (person:username)": "请将案件分派给具体人员（person:用户名）",
        "Assign the case to an alliance manager whose account is active": "请将案件分派给账户有效的联盟经理",
        "Case assigned": "案件已分派",
        "Case unassigned": "已取消分派",
        "Write a note of 1 to 2,000 characters": "备注长度须为 1 至 2000 个字符",
        "Note added": "备注已添加",
        "Choose cleared or confirmed": "请选择排除或确认",
        "Give a reason of 3 to 500 characters": "请填写 3 至 500 个字符的原因",
        "Tick the confirmation: closing cannot be undone": "请勾选确认：结案后不可撤销",
        "Case cleared: its lines go into the next close": "案件已排除：其明细将纳入下一次关账",
        "Case confirmed: lines reversed, referrals rejected": "案件已确认：明细已冲回，推荐已驳回",
        "Lines under review": "审核中的明细",
        "Open risk cases": "待处理风险案件",
        "Partners under review: their fee lines are held until the case is closed": (
            "受审核的合作机构：结案前其费用明细冻结"
        ),
        "Due lines left out: their referral is under a risk review until the case is closed": (
            "到期但未纳入的明细：其推荐正在风险审核中，结案前不结算"
        ),
    }
)
