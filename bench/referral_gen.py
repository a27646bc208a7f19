"""Deterministic, realistic referrals for the service's benches: the same seed gives the same referrals, everywhere.

Each referral is a dict shaped like the body of ``POST /v1/referrals`` (``app.referrals.schemas.ReferralCreate``)
and passes its validation:

* individuals (``vip``, ``employee``) carry an 18-digit resident ID number with a real birth date and the GB 11643
  check character, a mainland mobile number, a Chinese name whose gender matches the ID number's sequence code,
  and consent evidence (``Consent``) captured before ``as_of``;
* enterprises carry a unified social credit code with its GB 32100 check character (and a GB 11714 organisation
  code inside it), a company name and a contact mobile, and no consent.

Within one stream every ID number, credit code, mobile and ``external_ref`` is unique, so each referral is a
different person: the service answers 201, never 200 ("you already referred this person"). Ages are drawn from
``AGE_BANDS``, weighted so that 25-35, the firm's young-client target, is well represented.

``write_csv`` writes the same referrals as CSV rows (``CSV_COLUMNS``), for the batch benches.

    from bench import referral_gen
    bodies = referral_gen.referrals(10_000, program_id="prg_demo_bank_vip")
    referral_gen.write_csv(bodies, "referrals.csv")
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import random
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from app.core.identifiers import credit_code_check_character, national_id_check_character
from app.referrals.batches.files import CSV_COLUMNS  # the service's own columns, in its order

DEFAULT_SEED = 20_261_125
DEFAULT_PROGRAM_ID = "prg_demo_bank_vip"
# Birth dates and consent times are relative to this date, not to today, so that a seed always gives the same rows.
# Consent is captured at most CONSENT_WINDOW_DAYS before it (never in the future, which the service refuses).
AS_OF = date(2026, 1, 1)
CONSENT_WINDOW_DAYS = 120
CHINA = timezone(timedelta(hours=8))
KINDS = ("vip", "employee", "enterprise")
T = TypeVar("T")


class Weighted(Generic[T]):
    """Values with weights, drawn by weight: ``Weighted([("a", 3), ("b", 1)]).pick(rng)``."""

    def __init__(self, pairs: Iterable[tuple[T, float]]) -> None:
        pairs = list(pairs)
        self.values = [value for value, _ in pairs]
        self.cumulative = list(itertools.accumulate(weight for _, weight in pairs))

    def pick(self, rng: random.Random) -> T:
        return rng.choices(self.values, cum_weights=self.cumulative)[0]


# (youngest, oldest, weight): ages on AS_OF. Adults only; 25-35 carries the largest weight.
AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (18, 24, 0.10),
    (25, 35, 0.40),
    (36, 45, 0.22),
    (46, 55, 0.15),
    (56, 75, 0.13),
)

_AGES = Weighted(((youngest, oldest), weight) for youngest, oldest, weight in AGE_BANDS)

# Real administrative division codes (GB/T 2260), weighted towards Heilongjiang, where the demo partners are.
REGIONS: tuple[tuple[str, float], ...] = (
    ("230102", 8),  # 哈尔滨市道里区
    ("230103", 9),  # 哈尔滨市南岗区
    ("230104", 6),  # 哈尔滨市道外区
    ("230108", 2),  # 哈尔滨市平房区
    ("230109", 3),  # 哈尔滨市松北区
    ("230110", 5),  # 哈尔滨市香坊区
    ("230111", 2),  # 哈尔滨市呼兰区
    ("230112", 2),  # 哈尔滨市阿城区
    ("230202", 3),  # 齐齐哈尔市龙沙区
    ("230302", 2),  # 鸡西市鸡冠区
    ("230402", 1),  # 鹤岗市向阳区
    ("230602", 3),  # 大庆市萨尔图区
    ("230604", 2),  # 大庆市让胡路区
    ("230702", 1),  # 伊春市伊美区
    ("230803", 2),  # 佳木斯市向阳区
    ("231002", 2),  # 牡丹江市东安区
    ("231102", 1),  # 黑河市爱辉区
    ("231202", 2),  # 绥化市北林区
    ("220102", 3),  # 长春市南关区
    ("220104", 2),  # 长春市朝阳区
    ("210102", 3),  # 沈阳市和平区
    ("210202", 2),  # 大连市中山区
    ("110105", 3),  # 北京市朝阳区
    ("110108", 3),  # 北京市海淀区
    ("310104", 2),  # 上海市徐汇区
    ("310115", 3),  # 上海市浦东新区
    ("440106", 2),  # 广州市天河区
    ("440305", 2),  # 深圳市南山区
    ("330106", 2),  # 杭州市西湖区
    ("370102", 1),  # 济南市历下区
    ("510107", 1),  # 成都市武侯区
    ("130102", 1),  # 石家庄市长安区
)

# The most common surnames, roughly by frequency, and a few compound ones.
SURNAMES: tuple[tuple[str, float], ...] = (
    *zip("王李张刘陈", (7.1, 7.0, 6.7, 5.4, 4.5), strict=True),
    *zip("杨黄赵吴周", (3.1, 2.2, 2.0, 1.9, 1.9), strict=True),
    *((surname, 1.0) for surname in "徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"),
    *((surname, 0.5) for surname in "彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方"),
    *((surname, 0.25) for surname in "白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"),
    *((surname, 0.03) for surname in ("欧阳", "司马", "诸葛", "上官", "慕容")),
)
GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林欣博文轩然晨阳昊天志国建峰"
GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀英华慧巧美婷雪琳晶颖倩琪欣怡梦佳悦涵萱雨瑶璐洁丹玲萍红月薇妍"
GIVEN_EITHER = "子思嘉一若安清宇明晓雅诗可心家"

# Mainland mobile prefixes (China Mobile, China Unicom, China Telecom, China Broadnet), weighted by market share.
MOBILE_PREFIXES: tuple[tuple[str, float], ...] = (
    *((prefix, 3.0) for prefix in ("134", "135", "136", "137", "138", "139", "150", "151", "152")),
    *((prefix, 2.5) for prefix in ("157", "158", "159", "182", "183", "184", "187", "188", "198")),
    *((prefix, 1.0) for prefix in ("147", "172", "178", "195")),
    *((prefix, 2.0) for prefix in ("130", "131", "132", "155", "156", "185", "186", "166", "176")),
    *((prefix, 1.0) for prefix in ("145", "175", "196")),
    *((prefix, 2.0) for prefix in ("133", "153", "180", "181", "189", "177", "173", "199", "191")),
    ("192", 0.5),
)

ASSETS_BANDS: tuple[tuple[str | None, float], ...] = (("under_1m", 55), ("1m_to_5m", 28), ("5m_plus", 7), (None, 10))

# Where the client consented, by kind of referral.
CONSENT_CHANNELS: dict[str, tuple[tuple[str, float], ...]] = {
    "vip": (
        ("mobile_app", 45),
        ("online_banking", 20),
        ("branch_tablet", 20),
        ("branch_paper", 10),
        ("call_center", 5),
    ),
    "employee": (("hr_portal", 80), ("mobile_app", 20)),
}
RECIPIENT_NAME = "示范证券股份有限公司"
CONSENT_PURPOSES = {
    "vip": "银证合作项目下向示范证券推荐开立证券账户并提供财富管理服务",
    "employee": "向示范证券推荐开立证券账户并参加员工专属财富计划",
}
NOTICE_VERSIONS = ("2025-06", "2025-09", "2025-12")
RETENTION_DAYS: tuple[tuple[int, float], ...] = ((365, 70), (730, 20), (180, 10))

EMPLOYERS = (
    "黑土地示范农业集团有限公司",
    "哈尔滨电气集团有限公司",
    "北大荒农垦集团有限公司",
    "哈药集团股份有限公司",
    "大庆油田有限责任公司",
    "中国一重集团有限公司",
    "哈尔滨工业大学",
    "黑龙江省建设投资集团有限公司",
)
COMPANY_CITIES = ("哈尔滨", "齐齐哈尔", "大庆", "牡丹江", "佳木斯", "绥化", "黑龙江")
COMPANY_WORDS = "龙江北方寒地松花江冰城金穗丰源鸿运华信恒泰瑞丰兴达宏远天成博远嘉禾"
COMPANY_TRADES = ("农业科技", "粮油贸易", "食品", "机械制造", "建筑工程", "物流", "新能源", "医药", "软件", "商贸")
COMPANY_FORMS = (("有限公司", 80), ("股份有限公司", 15), ("有限责任公司", 5))

_REGIONS, _SURNAMES, _MOBILE_PREFIXES = Weighted(REGIONS), Weighted(SURNAMES), Weighted(MOBILE_PREFIXES)
_ASSETS, _RETENTION, _COMPANY_FORMS = Weighted(ASSETS_BANDS), Weighted(RETENTION_DAYS), Weighted(COMPANY_FORMS)
_CHANNELS = {kind: Weighted(channels) for kind, channels in CONSENT_CHANNELS.items()}


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February, in a year that has none
        return day.replace(year=day.year - years, day=28)


def notice_sha256(version: str) -> str:
    """The SHA-256 of the consent notice text of ``version`` (the text itself is not the bench's business)."""
    return hashlib.sha256(f"示范证券个人信息单独同意书 {version}".encode()).hexdigest()


def organisation_code_check_character(first8: str) -> str:
    """The check character of a GB 11714 organisation code (the 9th to 17th characters of a credit code)."""
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(char, 36) * weight for char, weight in zip(first8, weights, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


class ReferralGenerator:
    """A stream of distinct referrals. ``next(kind)`` gives the next one; the stream depends only on the seed."""

    def __init__(
        self,
        *,
        seed: int = DEFAULT_SEED,
        program_id: str = DEFAULT_PROGRAM_ID,
        ref_prefix: str = "BENCH",
        as_of: date = AS_OF,
    ) -> None:
        self.rng = random.Random(seed)
        self.program_id = program_id
        self.ref_prefix = ref_prefix
        self.as_of = as_of
        self.count = 0
        self._identifiers: set[str] = set()
        self._mobiles: set[str] = set()

    def next(self, kind: str = "vip") -> dict[str, Any]:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
        self.count += 1
        external_ref = f"{self.ref_prefix}-{self.count:09d}"
        if kind == "enterprise":
            subject = self._enterprise()
            return {"program_id": self.program_id, "external_ref": external_ref, "kind": kind, "subject": subject}
        subject, consent = self._individual(kind)
        return {
            "program_id": self.program_id,
            "external_ref": external_ref,
            "kind": kind,
            "subject": subject,
            "consent": consent,
        }

    # --- people -----------------------------------------------------------------------------------------------

    def birth_date(self) -> date:
        youngest, oldest = _AGES.pick(self.rng)
        age = self.rng.randint(youngest, oldest)
        # Born between (age + 1) years and age years before as_of: exactly `age` on as_of.
        latest = _years_before(self.as_of, age)
        earliest = _years_before(self.as_of, age + 1) + timedelta(days=1)
        return earliest + timedelta(days=self.rng.randrange((latest - earliest).days + 1))

    def national_id(self, born: date, male: bool) -> str:
        """A new valid 18-character resident ID number: region, birth date, sequence (odd for men), check."""
        while True:
            sequence = self.rng.randrange(500) * 2 + (1 if male else 0)
            first17 = f"{_REGIONS.pick(self.rng)}{born:%Y%m%d}{sequence:03d}"
            if first17 not in self._identifiers:
                self._identifiers.add(first17)
                return first17 + national_id_check_character(first17)

    def mobile(self) -> str:
        while True:
            number = f"{_MOBILE_PREFIXES.pick(self.rng)}{self.rng.randrange(10**8):08d}"
            if number not in self._mobiles:
                self._mobiles.add(number)
                return number

    def name(self, male: bool) -> str:
        pool = (GIVEN_MALE if male else GIVEN_FEMALE) + GIVEN_EITHER
        given = "".join(self.rng.choice(pool) for _ in range(1 if self.rng.random() < 0.3 else 2))
        return _SURNAMES.pick(self.rng) + given

    def _individual(self, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
        male = self.rng.random() < 0.5
        born = self.birth_date()
        subject: dict[str, Any] = {
            "name": self.name(male),
            "mobile": self.mobile(),
            "national_id": self.national_id(born, male),
        }
        assets = _ASSETS.pick(self.rng)
        if assets is not None:
            subject["declared_assets_band"] = assets
        if kind == "employee":
            subject["employer"] = self.rng.choice(EMPLOYERS)
        return subject, self.consent(kind, subject)

    def consent(self, kind: str, subject: dict[str, Any]) -> dict[str, Any]:
        """Evidence of the client's separate consent (``app.referrals.schemas.Consent``), before ``as_of``."""
        start = datetime(self.as_of.year, self.as_of.month, self.as_of.day, tzinfo=CHINA)
        day = start - timedelta(days=self.rng.randint(1, CONSENT_WINDOW_DAYS))
        captured = day + timedelta(hours=self.rng.randint(8, 21), minutes=self.rng.randrange(60))
        captured += timedelta(seconds=self.rng.randrange(60))
        channel = _CHANNELS[kind].pick(self.rng)
        version = max((v for v in NOTICE_VERSIONS if v <= f"{captured:%Y-%m}"), default=NOTICE_VERSIONS[0])
        categories = ["name", "mobile", "national_id"]
        if "declared_assets_band" in subject:
            categories.append("declared_assets_band")
        if "employer" in subject:
            categories.append("employer")
        return {
            "captured_at": captured.isoformat(),
            "channel": channel,
            "notice_version": version,
            "notice_sha256": notice_sha256(version),
            "recipient_name": RECIPIENT_NAME,
            "purpose": CONSENT_PURPOSES[kind],
            "data_categories": categories,
            "retention_days": _RETENTION.pick(self.rng),
            "separate_consent": True,
            "evidence_ref": f"CNS-{captured:%Y%m%d}-{self.count:09d}-{self.rng.getrandbits(32):08x}",
        }

    # --- enterprises --------------------------------------------------------------------------------------------

    def credit_code(self) -> str:
        """A new valid unified social credit code: 9 (market regulator), 1 (company), region, organisation code."""
        alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        while True:
            body = "MA" + "".join(self.rng.choice(alphabet) for _ in range(6))
            first17 = f"91{_REGIONS.pick(self.rng)}{body}{organisation_code_check_character(body)}"
            if first17 not in self._identifiers:
                self._identifiers.add(first17)
                return first17 + credit_code_check_character(first17)

    def _enterprise(self) -> dict[str, Any]:
        words = "".join(self.rng.sample(COMPANY_WORDS, 2))
        name = (
            f"{self.rng.choice(COMPANY_CITIES)}{words}{self.rng.choice(COMPANY_TRADES)}{_COMPANY_FORMS.pick(self.rng)}"
        )
        return {"name": name, "credit_code": self.credit_code(), "contact_mobile": self.mobile()}


def iter_referrals(
    count: int,
    *,
    seed: int = DEFAULT_SEED,
    program_id: str = DEFAULT_PROGRAM_ID,
    kind: str | Mapping[str, float] = "vip",
    ref_prefix: str = "BENCH",
    as_of: date = AS_OF,
) -> Iterator[dict[str, Any]]:
    """``count`` distinct referrals as ``POST /v1/referrals`` bodies: all of one ``kind``, or a mix drawn with the
    weights of a mapping (``{"vip": 0.8, "employee": 0.15, "enterprise": 0.05}``)."""
    generator = ReferralGenerator(seed=seed, program_id=program_id, ref_prefix=ref_prefix, as_of=as_of)
    mix = Weighted(kind.items()) if isinstance(kind, Mapping) else None
    for _ in range(count):
        yield generator.next(mix.pick(generator.rng) if mix is not None else str(kind))


def referrals(count: int, **options: Any) -> list[dict[str, Any]]:
    return list(iter_referrals(count, **options))


# --- CSV ------------------------------------------------------------------------------------------------------------


def csv_row(body: dict[str, Any]) -> dict[str, str]:
    """One referral body as a CSV row of ``CSV_COLUMNS`` (empty cells for what does not apply)."""
    subject, consent = body["subject"], body.get("consent") or {}
    enterprise = body["kind"] == "enterprise"
    row = {
        "program_id": body["program_id"],
        "external_ref": body["external_ref"],
        "kind": body["kind"],
        "name": subject["name"],
        "mobile": "" if enterprise else subject["mobile"],
        "national_id": "" if enterprise else subject["national_id"],
        "credit_code": subject["credit_code"] if enterprise else "",
        "contact_mobile": (subject.get("contact_mobile") or "") if enterprise else "",
        "declared_assets_band": subject.get("declared_assets_band") or "",
        "employer": subject.get("employer") or "",
    }
    if consent:
        row |= {
            "consent_captured_at": consent["captured_at"],
            "consent_channel": consent["channel"],
            "consent_notice_version": consent["notice_version"],
            "consent_notice_sha256": consent["notice_sha256"],
            "consent_recipient_name": consent["recipient_name"],
            "consent_purpose": consent["purpose"],
            "consent_data_categories": ";".join(consent["data_categories"]),
            "consent_retention_days": str(consent["retention_days"]),
            "consent_separate": "true" if consent["separate_consent"] else "false",
            "consent_evidence_ref": consent["evidence_ref"],
        }
    return {column: row.get(column, "") for column in CSV_COLUMNS}


def write_csv(bodies: Iterable[dict[str, Any]], target: str | Path | IO[str]) -> int:
    """Write ``bodies`` as CSV (header, then one row each, UTF-8) to a path or an open text file; returns the rows."""
    if isinstance(target, str | Path):
        with open(target, "w", encoding="utf-8", newline="") as file:
            return write_csv(bodies, file)
    writer = csv.DictWriter(target, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows = 0
    for body in bodies:
        writer.writerow(csv_row(body))
        rows += 1
    return rows


def csv_text(bodies: Iterable[dict[str, Any]]) -> str:
    """The CSV of ``bodies`` as one string (for an upload body)."""
    buffer = io.StringIO()
    write_csv(bodies, buffer)
    return buffer.getvalue()
