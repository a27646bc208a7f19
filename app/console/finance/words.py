"""The Chinese of the finance pages (CONSOLE.md "Words"): statuses, figures, four eyes (经办 / 复核), reconciliation."""

from __future__ import annotations

from app.console.i18n import words

words(
    {
        # Statuses and their meaning.
        "Draft": "草稿",
        "Issued": "已出具",
        "Disputed": "有异议",
        "Approved": "已审批",
        "Paid": "已付款",
        "Built by closing the month; lines may still be added by closing it again. Issue it to freeze it and tell "
        "the partner.": "结算周期关账时生成；再次关账仍可追加明细。出具后冻结并通知合作机构。",
        "Frozen and sent to the partner, who may upload a claim. Approved by a second finance officer once every "
        "discrepancy is resolved.": "已冻结并发送合作机构，对方可上传对账单。所有差异处理完毕后由另一位财务人员审批。",
        "The partner disputed some lines. Resolve every discrepancy, then a second finance officer approves.": (
            "合作机构对部分明细提出异议。处理全部差异后由另一位财务人员审批。"
        ),
        "Approved under four eyes. Marked paid by someone other than the approver, with the transfer's reference.": (
            "已按双人复核审批。须由审批人以外的人员填写转账流水号并标记为已付款。"
        ),
        "Paid: closed and locked. Corrections go to the next period as adjustments.": (
            "已付款：已结清并锁定。更正计入下一期调整。"
        ),
        # Periods.
        "In progress": "未结束",
        "View": "查看",
        "Unresolved": "待处理",
        "Closable": "可关账",
        "Closed": "已关账",
        "Not closable": "不可关账",
        "The month has not ended yet (Beijing time); it can be closed from the 1st of the next month.": (
            "本月尚未结束（北京时间），下月 1 日起可关账。"
        ),
        "The month has ended: closing it releases due holds and builds one draft statement per partner.": (
            "本月已结束：关账将解冻到期明细，并为每家合作机构生成一张结算单草稿。"
        ),
        "Closed: its statements exist. Closing it again adds lines that became due since to its drafts.": (
            "已关账，结算单已生成。再次关账会把此后到期的明细追加到草稿中。"
        ),
        "A later month is already closed: months are closed in order, so its lines went to a later statement.": (
            "之后的月份已关账：月份须按顺序关账，本月明细已计入之后的结算单。"
        ),
        "A month is closed once it has ended (Beijing time): due holds are released and each partner with payable "
        "lines gets one draft statement.": (
            "月份结束（北京时间）后方可关账：到期冻结明细解冻，每家有应付明细的合作机构生成一张结算单草稿。"
        ),
        "Month": "月份",
        "Status": "状态",
        "Drafts": "草稿",
        "Statements of the month, of which drafts": "本月结算单数量（其中草稿）",
        "Sum of the gross amounts of the month's statements": "本月结算单价税合计之和",
        "Gross (CNY)": "价税合计（元）",
        "Net (CNY)": "应结金额（元）",
        "VAT (CNY)": "增值税额（元）",
        "Review and close": "查看并关账",
        "What closing would do": "查看关账预览",
        "Close again": "再次关账",
        "Lines that became due since go on the drafts; issued statements are frozen": (
            "此后到期的明细追加到草稿；已出具的结算单不变"
        ),
        "Not ended": "未结束",
        "No fee lines yet: months appear here once partners earn fees.": (
            "暂无费用明细：合作机构产生费用后此处显示月份。"
        ),
        "Close {period}": "{period} 关账",
        "Partners": "合作机构",
        "Partners who get a draft statement (or whose draft is topped up)": "将生成（或追加）结算单草稿的合作机构",
        "Lines": "明细",
        "Lines due before the month ended that are not on a statement yet": "月末前到期、尚未计入结算单的明细",
        "Lines held": "冻结中的明细",
        "Lines still in their hold period, or due only after the month: they wait for a later statement": (
            "仍在冻结期或月末后才到期的明细：计入之后的结算单"
        ),
        "What goes on statements": "将计入结算单",
        "Partner": "合作机构",
        "Total": "合计",
        "Amounts before VAT and before a negative balance carried from the partner's previous statement.": (
            "金额未含增值税，亦未计入上期结转的负余额。"
        ),
        "No line is due for this month: closing builds no statement.": "本月没有到期明细：关账不会生成结算单。",
        "Reference": "推荐编号",
        "Fee type": "费用类型",
        "Why held": "冻结原因",
        "A line is put on the statement of the month in which its hold period ends": "明细计入其冻结期结束当月的结算单",
        "Hold period until {when}": "冻结期至 {when}",
        "Due {when}, after the month": "{when} 到期，晚于本月",
        "The {shown} released soonest of {total}": "共 {total} 条，显示最早解冻的 {shown} 条",
        "No line is held.": "没有冻结中的明细。",
        "Closing {period} builds or tops up the draft statements above. Drafts can still be reviewed before they "
        "are issued.": "{period} 关账将生成或追加上述结算单草稿，出具前仍可复查。",
        "Confirm: close {period}": "确认：{period} 关账",
        "This month cannot be closed now": "该月份现在不能关账",
        "{period} closed: {count} draft statements, {lines} lines put on them": (
            "{period} 已关账：{count} 张结算单草稿，计入 {lines} 条明细"
        ),
        # Fee types.
        "Funded bounty": "入金奖励",
        "Tier top-up": "升档补差",
        "Bundle fee": "组合产品费",
        "Revenue share": "收入分成",
        "Cap": "封顶扣减",
        "Clawback": "佣金追回",
        "Adjustment": "调整",
        "Attribution moved": "归因变更冲回",
        # Statements list.
        "Count and gross amount (CNY) per status, for the month and partner chosen.": (
            "按状态统计的数量与价税合计（元），范围为所选月份与合作机构。"
        ),
        "All partners": "全部合作机构",
        "Clear all": "清除全部",
        "Issue": "出具",
        "No statement yet: close a month to build its drafts.": "暂无结算单：关账后生成草稿。",
        "Lines total plus the negative balance carried in": "明细合计加上期结转的负余额",
        # A statement.
        "Statement": "结算单",
        "Maker": "经办",
        "Checker": "复核",
        "Paid by": "付款经办",
        "Issued the statement (maker)": "出具结算单的人员（经办）",
        "Approved the statement (checker): never the maker": "审批结算单的人员（复核），不得为经办人",
        "Marked it paid: never the checker": "标记付款的人员，不得为复核人",
        "Paid: this statement is closed and locked. Corrections go to the next period as adjustments.": (
            "已付款：本结算单已结清并锁定。更正计入下一期调整。"
        ),
        "Issued statements are frozen: corrections go to the next period as adjustments.": (
            "已出具的结算单已冻结：更正计入下一期调整。"
        ),
        "Approve": "审批通过",
        "Mark paid": "标记为已付款",
        "Printable copy": "打印版",
        "Issue this statement?": "出具此结算单？",
        "Issuing freezes it and tells the partner, who may then upload a claim. Another finance officer approves it.": (
            "出具后结算单冻结并通知合作机构，对方可上传对账单。由另一位财务人员审批。"
        ),
        "Approve this statement?": "审批此结算单？",
        "After approval, someone other than you marks it paid.": "审批后须由您以外的人员标记付款。",
        "Mark this statement paid?": "将此结算单标记为已付款？",
        "Its lines become paid; this cannot be undone.": "其明细将变为已付款，且不可撤销。",
        "Net of VAT": "不含税金额",
        "VAT": "增值税额",
        "Gross": "价税合计",
        "CNY": "元",
        "Payment reference": "转账流水号",
        "Amounts": "金额",
        "Sum of the lines below": "下列明细之和",
        "Lines total": "明细合计",
        "Carried forward": "上期结转",
        "A negative net of the previous statement is carried into this one": "上一期结算单的负余额结转至本期",
        "Net to settle": "应结金额",
        "The partner invoices amounts that include VAT: the VAT is within the net": (
            "合作机构按含税金额开票：增值税包含在应结金额中"
        ),
        "VAT is added on top of the net": "增值税在应结金额之外另计",
        "a negative or zero net has no VAT and is carried to the next statement": (
            "应结金额为负或为零时不计增值税，并结转下期"
        ),
        "included": "已含",
        "The net is negative: it is carried into the partner's next statement.": (
            "应结金额为负：将结转至该合作机构的下一期结算单。"
        ),
        "Occurred": "发生时间",
        "The partner's claim": "合作机构对账单",
        "Uploaded {when}: {lines} lines, {amount} CNY claimed": "{when} 上传：{lines} 条，申报 {amount} 元",
        "{open} discrepancies open": "{open} 项差异待处理",
        "Class": "差异类型",
        "Ours (CNY)": "我方（元）",
        "Theirs (CNY)": "对方（元）",
        "Difference (CNY)": "差额（元）",
        "Theirs minus ours": "对方金额减我方金额",
        "Dispute": "异议",
        "Resolution": "处理结果",
        "Resolve": "处理",
        "The partner has not uploaded a claim for this statement.": "合作机构尚未上传本结算单的对账单。",
        "At": "操作时间",
        "By": "操作人",
        "Action": "操作",
        "Partner disputed lines": "合作机构提出异议",
        "Partner uploaded a claim": "合作机构上传对账单",
        "Discrepancy resolved": "差异已处理",
        "Adjustment booked": "已记调整",
        "Marked paid": "已标记付款",
        "Printed {when}": "打印时间 {when}",
        "Statement issued: it is frozen and the partner has been told": "结算单已出具：已冻结并通知合作机构",
        "Statement approved": "结算单已审批",
        "Statement marked paid": "结算单已标记为已付款",
        "Enter the bank transfer's reference (1 to 100 characters)": "请填写转账流水号（1 至 100 个字符）",
        # Four eyes and other refusals.
        "You issued this statement: another finance officer must approve it.": (
            "您是本结算单的经办人，须由另一位财务人员审批。"
        ),
        "You approved this statement: another finance officer must mark it paid.": (
            "您是本结算单的复核人，须由另一位财务人员标记付款。"
        ),
        "Every discrepancy of the partner's claim must be resolved before approval": (
            "审批前须处理合作机构对账单的全部差异"
        ),
        "Four eyes: another finance officer must do this": "双人复核：须由另一位财务人员操作",
        "Resolve every discrepancy of the partner's claim first": "请先处理合作机构对账单的全部差异",
        "The statement's status does not allow this any more; the page shows it now": (
            "结算单当前状态不允许此操作，页面已显示最新状态"
        ),
        "The month has not ended yet": "该月份尚未结束",
        "A later month is already closed: months are closed in order": "之后的月份已关账：月份须按顺序关账",
        "This discrepancy was resolved already": "该差异已处理",
        "It no longer exists": "该记录已不存在",
        # Discrepancies.
        "Amount mismatch": "金额不符",
        "Unclaimed": "对方未申报",
        "Unknown to us": "我方无此记录",
        "Claimed twice": "重复申报",
        "Matched": "一致",
        "Both sides have the line, with different amounts; the difference is theirs minus ours.": (
            "双方都有该明细但金额不同；差额为对方减我方。"
        ),
        "On our statement, missing from the partner's claim.": "我方结算单有、对方对账单没有。",
        "Claimed by the partner, not on our statement; the reason says why.": "对方申报、我方结算单没有；原因见说明。",
        "The partner claimed the same line more than once.": "对方重复申报同一明细。",
        "Both sides agree.": "双方一致。",
        "Accept ours": "以我方为准",
        "Accept theirs": "以对方为准",
        "Write off": "核销",
        "Our figure stands; nothing is booked.": "以我方金额为准，不记账。",
        "The partner's figure stands: the difference is booked as an adjustment on the next statement.": (
            "以对方金额为准：差额作为调整计入下一期结算单。"
        ),
        "The line is dropped from the discussion; nothing is booked.": "该明细不再追究，不记账。",
        "Not one of our referrals": "非我方归因的推荐",
        "Referral expired": "推荐已过期",
        "Referral was a duplicate": "推荐为重复推荐",
        "Already a client of the firm": "已是本公司客户",
        "Referral rejected or withdrawn": "推荐已拒绝或撤回",
        "Not yet due (in its hold period)": "尚未到期（冻结期内）",
        "On another statement": "已计入其他结算单",
        "No such fee earned": "未产生该费用",
        "Every unresolved line of the partners' claims, oldest first. A statement is approved once all of its "
        "discrepancies are resolved.": (
            "合作机构对账单中所有未处理的差异，按时间由早到晚排列。结算单的差异全部处理后方可审批。"
        ),
        "All classes": "全部类型",
        "Resolve this discrepancy": "处理此差异",
        "Note (kept in the audit log)": "说明（记入审计日志）",
        "A resolution cannot be undone.": "处理结果不可撤销。",
        "Age (days)": "已等待（天）",
        "Days since the claim was matched": "对账单匹配至今的天数",
        "Over a week old is shown in red": "超过一周的以红色显示",
        "Choose a resolution and write a note (up to 500 characters)": "请选择处理方式并填写说明（最多 500 个字符）",
        "Nothing to resolve: every claim matches, or its discrepancies are resolved.": (
            "没有待处理的差异：对账单全部一致或差异已处理。"
        ),
    }
)
