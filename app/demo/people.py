"""Realistic but fake people and companies for the demo history: Chinese names, mainland mobile numbers, 18-digit
resident ID numbers with a real birth date and check digit, unified social credit codes with their check character.

Every value comes from the caller's seeded ``random.Random``: the same seed gives the same people. Region codes
avoid the ones the partner kit's example files use (230102-230104), so an example never collides with the demo.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from app.core.identifiers import credit_code_check_character, national_id_check_character

_SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
    "余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
)
_GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志红玉梅鑫宇浩然子涵欣怡博文俊杰思雨晨阳佳琪一"
    "鸣雪松海燕春雷立新德胜淑珍凤英丹丹晓东"
)
_MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
]
# Harbin and other Heilongjiang districts and counties (not 230102-230104: the partner kit's examples use those).
_REGIONS = [
    "230106",
    "230108",
    "230109",
    "230110",
    "230111",
    "230112",
    "230113",
    "230123",
    "230124",
    "230125",
    "230126",
    "230127",
    "230128",
    "230129",
    "230183",
    "230184",
    "230202",
    "230203",
    "230302",
    "230402",
    "230502",
    "230602",
    "230604",
    "230702",
    "230802",
    "230902",
    "231002",
    "231102",
    "231202",
]
_COMPANY_PLACES = ("哈尔滨", "齐齐哈尔", "牡丹江", "佳木斯", "大庆", "绥化", "五常", "双城", "北安", "宁安")
_COMPANY_TRADES = (
    "农业科技",
    "粮食贸易",
    "农机制造",
    "食品加工",
    "生物科技",
    "冷链物流",
    "种业",
    "乳业",
    "装备制造",
    "新材料",
    "米业",
    "大豆产业",
)
_COMPANY_WORDS = "丰禾北垦金穗龙江黑土沃野兴农鸿达万通泰和瑞丰嘉禾恒信宏远益民"


@dataclass(frozen=True)
class Person:
    name: str
    mobile: str
    national_id: str
    born: date


@dataclass(frozen=True)
class Company:
    name: str
    credit_code: str
    contact_mobile: str


class People:
    """Draws distinct people and companies; ``born_between`` gives the age mix the caller wants."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._ids: set[str] = set()
        self._codes: set[str] = set()
        self._names: set[str] = set()

    def mobile(self) -> str:
        return self._rng.choice(_MOBILE_PREFIXES) + f"{self._rng.randrange(10**8):08d}"

    def name(self) -> str:
        given = "".join(self._rng.choice(_GIVEN) for _ in range(self._rng.choice((1, 2, 2))))
        return self._rng.choice(_SURNAMES) + given

    def person(self, born_from: date, born_to: date) -> Person:
        while True:
            born = born_from + timedelta(days=self._rng.randrange((born_to - born_from).days + 1))
            sequence = self._rng.randrange(1, 1000)
            first17 = f"{self._rng.choice(_REGIONS)}{born:%Y%m%d}{sequence:03d}"
            number = first17 + national_id_check_character(first17)
            if number not in self._ids:
                self._ids.add(number)
                return Person(self.name(), self.mobile(), number, born)

    def company(self) -> Company:
        alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        while True:
            name = (
                f"{self._rng.choice(_COMPANY_PLACES)}{''.join(self._rng.sample(_COMPANY_WORDS, 2))}"
                f"{self._rng.choice(_COMPANY_TRADES)}有限公司"
            )
            organisation = "".join(self._rng.choice(alphabet) for _ in range(9))
            first17 = f"91{self._rng.choice(_REGIONS)}{organisation}"
            code = first17 + credit_code_check_character(first17)
            if code not in self._codes and name not in self._names:
                self._codes.add(code)
                self._names.add(name)
                return Company(name, code, self.mobile())
