"""Every English word the manager's pages show has its Chinese: the literals of the templates and the names of
statuses, kinds, causes and figures the pages look up."""

from __future__ import annotations

import re
from pathlib import Path

from app.console.i18n import chinese_of
from app.console.manager import labels, overview, partners, router
from app.reports import scorecard

TEMPLATES = Path(router.__file__).resolve().parents[1] / "templates" / "manager"
LITERAL = re.compile(r"""\bt\(\s*(["'])(.+?)\1""")


def test_every_literal_of_the_templates_has_its_chinese() -> None:
    used = {match.group(2) for path in TEMPLATES.glob("*.html") for match in LITERAL.finditer(path.read_text())}
    assert len(used) > 100
    missing = sorted(word for word in used if chinese_of(word) is None)
    assert not missing, missing


def test_every_looked_up_name_has_its_chinese() -> None:
    names = [
        *(
            value
            for table in (labels.REFERRAL_STATUS, labels.PARTNER_STATUS, labels.PARTNER_KIND)
            for value in table.values()
        ),
        *labels.SCHEDULE_STATE.values(),
        *labels.PROGRAM_STATUS.values(),
        *labels.STATEMENT_STATUS.values(),
        *labels.RESOLUTION.values(),
        *labels.CAUSE.values(),
        *(label for _, label in overview.CHANNELS),
        *(label for _, label in overview.FUNNEL_STEPS),
        *overview.AGE_LABELS.values(),
        *partners.TAB_LABELS.values(),
        *router.SEARCHED_AS.values(),
        *(metric[1] for metric in scorecard._SCORECARD),  # the scorecard tab shows the report's own labels
    ]
    missing = sorted(name for name in names if chinese_of(name) is None)
    assert not missing, missing
