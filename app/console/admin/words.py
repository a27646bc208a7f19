"""The Chinese of the administration pages (clients, signing keys, audit log), and the labels of the values they
show: a kind, status or method is shown by its label, never by its code."""

from __future__ import annotations

from app.auth.scopes import SCOPES
from app.console.i18n import words

CLIENT_KINDS = {"partner": "Partner client", "back_office": "Back-office client", "staff": "Staff client"}
CLIENT_STATUSES = {"active": "Client in use", "revoked": "Revoked"}
AUTH_METHODS = {
    "client_secret_basic": "Secret in the Authorization header",
    "client_secret_post": "Secret in the request body",
    "private_key_jwt": "Signed assertion (private_key_jwt)",
}
ACTOR_KINDS = {
    "staff": "Staff member",
    "partner": "Partner system",
    "back_office": "Back-office system",
    "system": "The platform itself",
}
# How long the secret in use keeps working after a rotation, so that the partner can deploy the new one.
GRACE_PERIODS = {0: "At once", 3600: "In 1 hour", 86_400: "In 24 hours", 7 * 86_400: "In 7 days"}

SCOPE_CHINESE = {
    "referrals:write": "提交和撤回本机构的推荐",
    "referrals:read": "查看本机构的推荐、项目和转化漏斗",
    "webhooks:manage": "管理本机构的回调地址和投递",
    "statements:read": "查看本机构的结算单",
    "claims:write": "上传本机构结算单的对账和异议",
    "conversions:write": "推送开户、入金等转化事件",
    "registry:write": "推送存量客户名单",
    "catalog:read": "查看合作机构、项目、产品和费率",
    "catalog:write": "管理合作机构、项目、产品和费率",
    "attribution:manage": "查询推荐、处理归因冲突、改判归因",
    "pii:unmask": "查看单条推荐的明文个人信息（留痕）",
    "reports:read": "查看全部报表",
    "risk:read": "查看风险案件：信号、证据、推荐、费用明细和处理记录",
    "risk:manage": "分派、备注和结案风险案件（结案解冻或冲回费用，留痕）",
    "finance:read": "查看计提、结算单和对账",
    "finance:write": "关账、出具、审批和付款结算单，处理对账",
    "clients:manage": "创建、轮换和吊销接入凭证",
    "keys:manage": "轮换签名密钥和数据密钥",
    "audit:read": "查看审计日志",
}
assert set(SCOPE_CHINESE) == set(SCOPES), "every scope has its Chinese"

words({SCOPES[scope]: chinese for scope, chinese in SCOPE_CHINESE.items()})
words(
    {
        # clients
        "Partner client": "合作机构凭证",
        "Back-office client": "后台系统凭证",
        "Staff client": "内部工具凭证",
        "Client in use": "使用中",
        "Revoked": "已吊销",
        "Secret in the Authorization header": "密钥放在 Authorization 请求头",
        "Secret in the request body": "密钥放在请求体",
        "Signed assertion (private_key_jwt)": "签名断言（private_key_jwt）",
        "At once": "立即失效",
        "In 1 hour": "1 小时后失效",
        "In 24 hours": "24 小时后失效",
        "In 7 days": "7 天后失效",
        "New client": "新建接入凭证",
        "Client name": "凭证名称",
        "Client kind": "凭证类型",
        "Partner of the client": "所属合作机构",
        "Choose a partner": "请选择合作机构",
        "Staff role": "人员角色",
        "Scopes": "权限范围",
        "Leave every scope unticked to grant the whole allowance of this kind": "不勾选任何权限即授予该类型的全部权限",
        "How it authenticates": "认证方式",
        "Create the client": "创建接入凭证",
        "Client status": "凭证状态",
        "Created at": "创建时间",
        "Last rotated": "最近轮换",
        "Never rotated": "从未轮换",
        "Rotate secret": "轮换密钥",
        "Revoke": "吊销",
        "All kinds": "全部类型",
        "All statuses": "全部状态",
        "No client yet": "暂无接入凭证",
        "The client's secret": "接入凭证密钥",
        "Copy it now: it is shown only this once and cannot be read again": (
            "请立即复制：密钥仅显示这一次，之后无法再查看"
        ),
        "Store it in the partner's secret manager, never in e-mail or chat": (
            "请保存在对方的密钥管理系统中，切勿通过邮件或聊天工具发送"
        ),
        "Client id": "凭证编号",
        "Back to the clients": "返回接入凭证列表",
        "The previous secret keeps working until {until}": "原密钥在 {until} 前仍可使用",
        "When the secret in use stops working": "原密钥何时失效",
        "Rotate the secret of this client": "轮换此接入凭证的密钥",
        "A new secret is made and shown once": "将生成新密钥并仅显示一次",
        "Revoke this client": "吊销此接入凭证",
        "Revoking cannot be undone": "吊销后无法恢复",
        "The client gets no new token, and the tokens it holds stop working at once": (
            "该凭证将无法再获取令牌，已发放的令牌立即失效"
        ),
        "I understand that this cannot be undone": "我了解此操作无法撤销",
        "Tick the box to confirm": "请勾选确认",
        "The client is revoked; its tokens no longer work": "接入凭证已吊销，其令牌已失效",
        "This client is revoked": "此接入凭证已吊销",
        "A private_key_jwt client has no secret; the partner publishes a new key instead": (
            "private_key_jwt 凭证没有密钥，请对方发布新的签名公钥"
        ),
        "Give the client a name": "请填写凭证名称",
        "Choose a kind of client": "请选择凭证类型",
        "Choose the partner the client belongs to": "请选择凭证所属的合作机构",
        "Choose the role of the staff client": "请选择内部工具凭证的人员角色",
        "Some scopes are outside this kind's allowance": "部分权限超出了该类型允许的范围",
        "Choose how the client authenticates": "请选择认证方式",
        "This partner no longer exists or is terminated": "该合作机构不存在或已终止合作",
        "Clients signing with a key (private_key_jwt) are registered through the API": (
            "使用签名公钥（private_key_jwt）的凭证请通过接口登记"
        ),
        # signing keys
        "Key id": "密钥编号",
        "Algorithm": "算法",
        "Key state": "密钥状态",
        "Signing": "签发中",
        "Retired, still verifies tokens": "已停用，仍可验证令牌",
        "Retired": "已停用",
        "Retired at": "停用时间",
        "Accepted until": "验证截止",
        "Rotate the signing key": "轮换签名密钥",
        "A new key signs every token from now on": "此后所有令牌均由新密钥签发",
        "The current key stops signing but verifies the tokens it signed for {hours} more hours": (
            "当前密钥停止签发，但在之后 {hours} 小时内仍可验证其签发的令牌"
        ),
        "No token already issued stops working": "已发放的令牌不受影响",
        "A new signing key is in use": "新签名密钥已启用",
        "No signing key yet: the first is made with the first token": "暂无签名密钥：签发第一个令牌时自动生成",
        # audit log
        "Staff member": "内部人员",
        "Partner system": "合作机构系统",
        "Back-office system": "后台系统",
        "The platform itself": "平台自动",
        "Time (Beijing time)": "时间（北京时间）",
        "Actor": "操作人",
        "Action": "操作",
        "Object": "对象",
        "Object type": "对象类型",
        "Object id": "对象编号",
        "Details": "详情",
        "From day": "起始日期",
        "To day": "截止日期",
        "Any action": "全部操作",
        "Any object type": "全部对象类型",
        "Person or client": "人员或凭证",
        "Clear all": "清除全部",
        "Request id": "请求编号",
        "From address": "来源地址",
        "Some filters were not valid and were removed": "部分筛选条件无效，已移除",
        "Days are Beijing days": "日期按北京时间计算",
        "The log records every change, by whom and when; it cannot be edited": (
            "审计日志记录每一次变更、操作人和时间，不可修改"
        ),
    }
)
