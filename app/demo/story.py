"""The demo's year, written before anything is loaded: who each partner refers and when, what becomes of each
client at the firm (the back office's events), which referrals are withdrawn, who was a client already.

Pure and deterministic: the same seed, start and end give the same story. Nothing here decides an outcome the
platform decides (attribution, fees, statements): the story only says what partners and the back office send,
and ``app.demo.history`` sends it through the services, which apply every rule.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from app.core.business_time import business_day, business_zone
from app.demo.people import Company, People, Person

SEED = 17
BANK, INSURER, CORPORATE = "ptn_demo_bank", "ptn_demo_insurer", "ptn_demo_corporate"
CLIENT_OF = {BANK: "cli_demo_bank", INSURER: "cli_demo_insurer", CORPORATE: "cli_demo_corporate"}
PRODUCT_OF = {
    "prg_demo_bank_vip": "BANK_WM_PLUS_EQUITY",
    "prg_demo_insurer_bundle": "LIFE_PLUS_FUND_SIP",
    "prg_demo_corporate_employees": "EMPLOYEE_WEALTH_PLAN",
    "prg_demo_corporate_enterprise": "ENTERPRISE_IB_AM",
}
CNY = 100  # fen
MARKER = (BANK, "VIP-00001")  # the bank's first referral of the story: if it exists, the history is loaded

# Age bands (years at the start of the story) with each channel's weights: the share of 25-35 is what the seed
# watches. Bank VIPs are older, an employer's staff younger.
_AGES = ((20, 24), (25, 35), (36, 45), (46, 55), (56, 68))
_AGE_WEIGHTS = {
    "prg_demo_bank_vip": (3, 30, 29, 22, 16),
    "prg_demo_insurer_bundle": (6, 38, 30, 16, 10),
    "prg_demo_corporate_employees": (12, 46, 26, 13, 3),
}
# Tier of the first funding by channel (retail, HNW, institutional).
_TIER_WEIGHTS = {
    "prg_demo_bank_vip": (45, 42, 13),
    "prg_demo_insurer_bundle": (68, 27, 5),
    "prg_demo_corporate_employees": (85, 14, 1),
}
_BANDS = ("under_1m", "1m_to_5m", "5m_plus")
_OPEN_RATE = {
    "prg_demo_bank_vip": 0.56,
    "prg_demo_insurer_bundle": 0.46,
    "prg_demo_corporate_employees": 0.5,
    "prg_demo_corporate_enterprise": 0.7,
}
_CONSENT_CHANNELS = {
    "prg_demo_bank_vip": ("mobile_app", "online_banking", "branch_tablet", "branch_paper"),
    "prg_demo_insurer_bundle": ("branch_tablet", "mobile_app", "call_center", "branch_paper"),
    "prg_demo_corporate_employees": ("hr_portal",),
}
_RECIPIENT = "示范证券股份有限公司"


@dataclass
class Lead:
    """One referral as its partner sends it, and what the story has in mind for the client."""

    partner_id: str
    program_id: str
    kind: str
    external_ref: str
    subject: dict[str, Any]
    consent: dict[str, Any] | None
    identity: str
    enterprise: bool
    band: int = 0  # the tier the client funds at, when it does (0 retail, 1 HNW, 2 institutional)
    earliest_open: datetime | None = None  # a later partner's duplicate must arrive while this one still holds

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "program_id": self.program_id,
            "external_ref": self.external_ref,
            "kind": self.kind,
            "subject": self.subject,
        }
        if self.consent is not None:
            body["consent"] = self.consent
        return body


@dataclass
class Submission:
    at: datetime
    partner_id: str
    leads: list[Lead]
    single: bool = False  # one API call per referral instead of a batch file


@dataclass(frozen=True)
class Withdrawal:
    at: datetime
    partner_id: str
    external_ref: str
    reason: str


@dataclass
class Story:
    start: datetime
    end: datetime
    registry: list[dict[str, Any]] = field(default_factory=list)
    submissions: list[Submission] = field(default_factory=list)
    withdrawals: list[Withdrawal] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def at_local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=business_zone())


def days(start: datetime, end: datetime) -> Iterator[date]:
    day = business_day(start)
    while day <= business_day(end):
        yield day
        day += timedelta(days=1)


class _Writer:
    """Writes the story; one instance per story, drawing from one seeded generator."""

    def __init__(self, start: datetime, end: datetime, seed: int) -> None:
        self.rng = random.Random(seed)
        self.people = People(self.rng)
        self.story = Story(start, end)
        self.start, self.end = start, end
        self.leads_at: list[tuple[datetime, Lead]] = []
        self.accounts = 0
        self.refs: dict[str, int] = {}

    # --- helpers ------------------------------------------------------------------------------------------------

    def later(self, moment: datetime, low_days: float, high_days: float) -> datetime:
        """A moment ``low`` to ``high`` days later, moved into the firm's working hours (09:00 to 18:00)."""
        moment = moment + timedelta(days=self.rng.uniform(low_days, high_days))
        local = moment.astimezone(business_zone())
        return at_local(local.date(), self.rng.randrange(9, 18), self.rng.randrange(60))

    def ref(self, prefix: str) -> str:
        self.refs[prefix] = self.refs.get(prefix, 0) + 1
        return f"{prefix}{self.refs[prefix]:05d}"

    def season(self, day: date) -> float:
        """More referrals in the spring and autumn campaigns (开门红, 金九银十), fewer around the Spring Festival."""
        return {1: 1.2, 2: 0.6, 3: 1.3, 4: 1.2, 9: 1.25, 10: 1.15, 12: 0.9}.get(day.month, 1.0)

    def count(self, mean: float, day: date) -> int:
        expected = mean * self.season(day)
        return max(0, round(self.rng.gauss(expected, expected / 3)))

    def person(self, program_id: str) -> Person:
        low, high = self.rng.choices(_AGES, weights=_AGE_WEIGHTS[program_id])[0]
        today = business_day(self.start)
        return self.people.person(
            today.replace(year=today.year - high - 1) + timedelta(days=1), today.replace(year=today.year - low)
        )

    def consent(self, program_id: str, submitted: datetime, evidence: str) -> dict[str, Any]:
        version = f"{submitted.year}-{'01' if submitted.month <= 6 else '07'}"
        return {
            "captured_at": self.later(submitted, -12, -1).isoformat(),
            "channel": self.rng.choice(_CONSENT_CHANNELS[program_id]),
            "notice_version": version,
            "notice_sha256": hashlib.sha256(f"{program_id} notice {version}".encode()).hexdigest(),
            "recipient_name": _RECIPIENT,
            "purpose": "向证券公司推荐开立证券账户及配套金融产品",
            "data_categories": ["name", "mobile", "national_id"],
            "retention_days": 365,
            "separate_consent": True,
            "evidence_ref": evidence,
        }

    # --- referrals ----------------------------------------------------------------------------------------------

    def individual(self, partner_id: str, program_id: str, prefix: str, submitted: datetime) -> Lead:
        person = self.person(program_id)
        band = self.rng.choices((0, 1, 2), weights=_TIER_WEIGHTS[program_id])[0]
        external_ref = self.ref(prefix)
        subject: dict[str, Any] = {"name": person.name, "mobile": person.mobile, "national_id": person.national_id}
        if program_id == "prg_demo_corporate_employees":
            subject["employer"] = "黑土地示范农业集团有限公司"
        elif self.rng.random() < 0.85:  # what the partner knows, not always what the client brings
            subject["declared_assets_band"] = _BANDS[band if self.rng.random() < 0.8 else max(0, band - 1)]
        kind = "employee" if program_id == "prg_demo_corporate_employees" else "vip"
        consent = self.consent(program_id, submitted, f"CNS-{external_ref}")
        return Lead(partner_id, program_id, kind, external_ref, subject, consent, person.national_id, False, band)

    def enterprise(self, company: Company) -> Lead:
        subject = {"name": company.name, "credit_code": company.credit_code, "contact_mobile": company.contact_mobile}
        return Lead(
            CORPORATE,
            "prg_demo_corporate_enterprise",
            "enterprise",
            self.ref("ENT-"),
            subject,
            None,
            company.credit_code,
            True,
            2,
        )

    def submit(self, at: datetime, partner_id: str, leads: list[Lead], *, single: bool = False) -> None:
        if leads and at < self.end:
            self.story.submissions.append(Submission(at, partner_id, leads, single))
            self.leads_at += [(at, lead) for lead in leads]

    def referrals(self) -> None:
        for day in days(self.start, self.end):
            weekday, fortnight = day.weekday(), day.isocalendar().week % 2
            if weekday == 0 and fortnight == 0:  # the bank's VIP sync, a batch file every other Monday
                at = at_local(day, 10, 30)
                leads = [self.individual(BANK, "prg_demo_bank_vip", "VIP-", at) for _ in range(self.count(11, day))]
                self.submit(at, BANK, leads)
            if weekday == 3 and fortnight == 1:  # the insurer's leads of the fortnight, a batch file
                at = at_local(day, 15, 10)
                program = "prg_demo_insurer_bundle"
                leads = [self.individual(INSURER, program, "POL-", at) for _ in range(self.count(9, day))]
                self.submit(at, INSURER, leads)
            if weekday == 1 and self.rng.random() < 0.8:  # a hot lead from a branch, one API call
                at = at_local(day, 11, 15)
                self.submit(at, INSURER, [self.individual(INSURER, "prg_demo_insurer_bundle", "POL-", at)], single=True)
            if day.day == 15:  # the corporate's monthly roster of consenting employees, a batch file
                at = at_local(day, 9, 45)
                program = "prg_demo_corporate_employees"
                leads = [self.individual(CORPORATE, program, "EMP-", at) for _ in range(self.count(20, day))]
                self.submit(at, CORPORATE, leads)
            if weekday == 2 and self.rng.random() < 0.5:  # now and then, one of the corporate's business partners
                at = at_local(day, 14, 20)
                self.submit(at, CORPORATE, [self.enterprise(self.people.company())], single=True)

    def duplicates(self) -> None:
        """A bank VIP is also a policyholder, or an employee of the corporate: the later partner's referral of the
        same person is a duplicate (and a conflict), as long as the bank's still holds. The last weeks get some
        too, so that a few conflicts are still open."""
        slots = {
            INSURER: [s for s in self.story.submissions if s.partner_id == INSURER],
            CORPORATE: [s for s in self.story.submissions if s.partner_id == CORPORATE and not s.single],
        }
        bank = [(at, lead) for at, lead in self.leads_at if lead.partner_id == BANK]

        open_since = self.end - timedelta(days=13)  # the manager reviews conflicts after two weeks

        def later_slot(partner: str, at: datetime, after: datetime | None = None) -> Submission | None:
            after = max(at, after or at)
            return next((s for s in slots[partner] if after < s.at <= at + timedelta(days=20)), None)

        # Which of the bank's batches is the last that another partner's submission still follows, late enough for
        # its conflict to be open, depends on the day the demo is loaded: look for it.
        kept_open = next(
            (
                at
                for at in sorted({at for at, _ in bank}, reverse=True)
                if any(later_slot(partner, at, open_since) for partner in slots)
            ),
            None,
        )
        forced = 0
        for at, lead in bank:
            force = at == kept_open and forced < 3
            if force:
                forced += 1
            elif self.rng.random() >= 0.05:
                continue
            partner = INSURER if self.rng.random() < 0.75 else CORPORATE
            if force and later_slot(partner, at, open_since) is None:
                partner = CORPORATE if partner == INSURER else INSURER
            program = "prg_demo_insurer_bundle" if partner == INSURER else "prg_demo_corporate_employees"
            later = later_slot(partner, at, open_since if force else None)
            if later is None:
                continue
            copy = self.individual(partner, program, "POL-" if partner == INSURER else "EMP-", later.at)
            copy.subject.update(name=lead.subject["name"], national_id=lead.identity)
            copy.identity = lead.identity
            later.leads.append(copy)
            lead.earliest_open = later.at + timedelta(days=1)
        for submission in self.story.submissions:  # the bank's sync sends a few clients again: the same referral
            if submission.partner_id == BANK and self.rng.random() < 0.08:
                earlier = [lead for at, lead in self.leads_at if lead.partner_id == BANK and at < submission.at]
                if earlier:
                    submission.leads.append(self.rng.choice(earlier))

    # --- the firm's side ------------------------------------------------------------------------------------------

    def fates(self) -> None:
        seen: set[str] = set()
        duplicated = {
            lead.identity
            for submission in self.story.submissions
            for lead in submission.leads
            if lead.partner_id != BANK and not lead.enterprise
        }
        for at, lead in self.leads_at:
            if lead.identity in seen:  # a duplicate or a re-sent client: the first referral has the story
                continue
            seen.add(lead.identity)
            roll = self.rng.random()
            if roll < 0.06:
                if lead.identity not in duplicated:  # the firm knew the client already
                    opened_on = business_day(self.start) - timedelta(days=self.rng.randrange(30, 2500))
                    self.registry(lead, opened_on)
            elif roll < 0.085:
                moment = self.later(at, 1, 20)
                if moment < self.end:
                    reason = self.rng.choice(("consent_revoked", "client_request", "submitted_in_error"))
                    self.story.withdrawals.append(Withdrawal(moment, lead.partner_id, lead.external_ref, reason))
            elif self.rng.random() < _OPEN_RATE[lead.program_id]:
                wait = (5, 120) if lead.enterprise else (1, 45)
                opened = self.later(max(at, lead.earliest_open or at), *wait)
                self.account(opened, lead.identity, lead.enterprise, lead.band, PRODUCT_OF[lead.program_id])

    def registry(self, lead: Lead, opened_on: date) -> None:
        key = "credit_code" if lead.enterprise else "national_id"
        self.story.registry.append({key: lead.identity, "opened_on": opened_on.isoformat()})

    def assets(self, band: int, enterprise: bool) -> int:
        if enterprise:
            return self.rng.randrange(2_000_000, 80_000_000) * CNY
        if band == 0 and self.rng.random() < 0.05:  # below the bounty's minimum
            return self.rng.randrange(2_000, 9_000) * CNY
        low, high = ((20_000, 950_000), (1_050_000, 4_800_000), (5_200_000, 30_000_000))[band]
        return self.rng.randrange(low, high) * CNY

    def account(self, opened: datetime, identity: str, enterprise: bool, band: int, product: str | None) -> None:
        self.accounts += 1
        client_ref = f"KH{self.accounts:07d}"
        events = _Events(self, client_ref)
        if enterprise:
            events.add("account_opened", opened, credit_code=identity)
        else:
            events.add("account_opened", opened, national_id=identity)
        if self.rng.random() >= 0.9:
            return
        funded = self.later(opened, 0, 10)
        assets = self.assets(band, enterprise)
        events.add("account_funded", funded, amount=assets)
        closed = self.later(funded, 40, 160) if self.rng.random() < 0.04 else None
        events.closed = closed
        if self.rng.random() < 0.6:  # the back office's monthly valuation, about a month after funding
            moment = self.later(funded, 27, 33)
            roll = self.rng.random()
            if roll < 0.1 and band < 2:  # brought more in: a tier rise inside qualification
                band += 1
                assets = self.assets(band, enterprise)
            elif roll < 0.15:  # moved nearly everything out
                assets = self.rng.randrange(1_000, 8_000) * CNY
            else:
                assets = int(assets * self.rng.uniform(0.92, 1.12))
            events.add("assets_snapshot", moment, amount=assets)
        if product is not None and self.rng.random() < 0.74:
            bought = self.later(funded, 0, 25)
            purchase = self.purchase(product)
            events.add("bundle_purchased", bought, amount=purchase, product_code=product)
            if self.rng.random() < 0.07:  # a policy surrendered in its cooling-off period
                cancelled = self.later(bought, 2, 12)
                events.add("bundle_cancelled", cancelled, amount=purchase, product_code=product)
            month = bought.astimezone(business_zone()).date().replace(day=25)
            while True:  # the firm's quarterly revenue report per client
                month = (month + timedelta(days=10)).replace(day=25)
                if month.month % 3:
                    continue
                moment = at_local(month, 20)
                if closed is not None and moment >= closed:
                    break
                revenue = max(100, int(assets * self.rng.uniform(4, 20) / 10_000))
                if not events.add("revenue_recorded", moment, amount=revenue):
                    break
        if closed is not None:
            events.add("account_closed", closed)

    def purchase(self, product: str) -> int:
        low, high = {
            "BANK_WM_PLUS_EQUITY": (50_000, 3_000_000),
            "LIFE_PLUS_FUND_SIP": (12_000, 600_000),
            "EMPLOYEE_WEALTH_PLAN": (6_000, 200_000),
            "ENTERPRISE_IB_AM": (1_000_000, 60_000_000),
        }[product]
        return self.rng.randrange(low, high) * CNY

    def organic(self) -> None:
        """Clients who came to the firm on their own: the baseline the client-structure report compares with."""
        for day in days(self.start, self.end):
            for _ in range(self.rng.choice((0, 0, 0, 0, 0, 0, 0, 1, 1, 2))):
                person = self.people.person(date(1955, 1, 1), date(2003, 12, 31))
                band = self.rng.choices((0, 1, 2), weights=(82, 15, 3))[0]
                self.account(at_local(day, self.rng.randrange(9, 18)), person.national_id, False, band, None)
        for _ in range(300):  # long-standing clients the back office lists in its registry
            person = self.people.person(date(1950, 1, 1), date(2000, 12, 31))
            opened_on = business_day(self.start) - timedelta(days=self.rng.randrange(30, 4000))
            self.story.registry.append({"national_id": person.national_id, "opened_on": opened_on.isoformat()})

    def write(self) -> Story:
        self.referrals()
        self.duplicates()
        self.fates()
        self.organic()
        _Planted(self).write()  # last, from a generator of its own: the rest of the story stays as it was
        self.story.events.sort(key=lambda event: event["occurred_at"])
        return self.story


class _Planted:
    """Two patterns the risk signals are meant to catch (``app.risk.signals``), so that the console's risk cases
    have something real to show: an insurer's agent who puts one mobile number (their own) on four clients'
    referrals, and a ring of six bank VIPs whose accounts are funded and then emptied or closed inside the hold
    period. Nothing else in the year trips a signal (``tests/risk/test_signals_demo.py``)."""

    RECYCLED_MOBILE_CLIENTS = 4
    RING_ACCOUNTS = 6

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        self.rng = random.Random(SEED * 1000 + 20)
        self.people = People(self.rng)

    def write(self) -> None:
        self.recycled_mobile()
        self.ring()

    def _lead(self, partner_id: str, program_id: str, prefix: str, at: datetime, band: int) -> Lead:
        person = self.people.person(date(1965, 1, 1), date(1990, 12, 31))
        external_ref = self.writer.ref(prefix)
        subject: dict[str, Any] = {"name": person.name, "mobile": person.mobile, "national_id": person.national_id}
        consent = self.writer.consent(program_id, at, f"CNS-{external_ref}")
        return Lead(partner_id, program_id, "vip", external_ref, subject, consent, person.national_id, False, band)

    def recycled_mobile(self) -> None:
        """Four hot leads of the insurer, a week apart, six weeks before the end: one mobile number."""
        first = business_day(self.writer.end) - timedelta(days=42)
        tuesday = first + timedelta(days=(1 - first.weekday()) % 7)
        number = self.people.mobile()
        for week in range(self.RECYCLED_MOBILE_CLIENTS):
            at = at_local(tuesday + timedelta(days=7 * week), 11, 40)
            lead = self._lead(INSURER, "prg_demo_insurer_bundle", "POL-", at, 0)
            lead.subject["mobile"] = number
            self.writer.submit(at, INSURER, [lead], single=True)

    def ring(self) -> None:
        """Six VIPs in one of the bank's syncs ten weeks before the end: each account opens, is funded with a
        few hundred thousand yuan, and is emptied (or closed) two to three weeks later, inside the 30 days' hold."""
        target = self.writer.end - timedelta(days=70)
        syncs = [s for s in self.writer.story.submissions if s.partner_id == BANK and not s.single]
        sync = min(syncs, key=lambda submission: abs(submission.at - target))
        for n in range(self.RING_ACCOUNTS):
            lead = self._lead(BANK, "prg_demo_bank_vip", "VIP-", sync.at, 0)
            sync.leads.append(lead)
            self.writer.accounts += 1
            events = _Events(self.writer, f"KH{self.writer.accounts:07d}")
            opened = at_local(business_day(sync.at) + timedelta(days=2 + n % 3), 10 + n)
            funded = opened + timedelta(days=1)
            events.add("account_opened", opened, national_id=lead.identity)
            events.add("account_funded", funded, amount=self.rng.randrange(300_000, 800_000) * CNY)
            emptied = funded + timedelta(days=14 + n)
            events.add("assets_snapshot", emptied, amount=self.rng.randrange(500, 3_000) * CNY)
            if n % 3 == 0:
                events.add("account_closed", emptied + timedelta(days=2))


class _Events:
    """One account's events, numbered by its client reference; nothing after the story's end is sent."""

    def __init__(self, writer: _Writer, client_ref: str) -> None:
        self.writer, self.client_ref, self.count = writer, client_ref, 0
        self.closed: datetime | None = None

    def add(self, kind: str, at: datetime, *, amount: int | None = None, **fields: str) -> bool:
        if at >= self.writer.end - timedelta(hours=1):
            return False
        if self.closed is not None and at >= self.closed and kind != "account_closed":
            return False
        self.count += 1
        event: dict[str, Any] = {
            "source_event_id": f"BO-{self.client_ref}-{self.count:03d}",
            "type": kind,
            "occurred_at": at,
            "client_ref": self.client_ref,
            **fields,
        }
        if amount is not None:
            event.update(amount=amount, currency="CNY")
        self.writer.story.events.append(event)
        return True


def write_story(start: datetime, end: datetime, seed: int = SEED) -> Story:
    """The year from ``start`` to ``end``: the same arguments give the same story."""
    return _Writer(start, end, seed).write()
