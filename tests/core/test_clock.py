"""One clock (DESIGN.md, "Time"): rules read ``app.core.clock``; production's is the real one and nothing moves it."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from app.core import clock
from app.core.config import Settings, get_settings
from app.main import create_app

APP = Path(__file__).resolve().parents[2] / "app"
READS = {
    "system time": re.compile(r"\b(?:datetime\.(?:now|utcnow|today)|date\.today|time\.time)\("),
    "the real time": re.compile(r"\breal_now\("),
    "the database's time": re.compile(r"(?<![\w.])(?<!def )now\(\)|func\.now\(|current_timestamp|current_date", re.I),
}
# Modules that read another time than the clock's, and why.
ALLOWED = {
    ("core/clock.py", "system time"): "the clock itself",
    ("core/clock.py", "the real time"): "the clock itself",
    ("core/models.py", "the real time"): "ids are ordered by the wall clock's milliseconds: unique and ordered "
    "whatever a test's clock says",
    ("core/models.py", "the database's time"): "server_default only: every insert through the models sets the "
    "column from the clock; the default serves rows written by migrations",
    ("auth/tokens.py", "system time"): "access token iat/exp: verified against real time by every JWT library",
    ("auth/verified.py", "system time"): "a verified token is reused only until its exp, which is real time",
    ("auth/server.py", "system time"): "client assertion lifetime: the partner signs it with its real clock",
    ("auth/service.py", "the real time"): "client secrets, revoked tokens and used assertions live in real time",
    ("auth/keys.py", "the real time"): "signing keys are published and retired in real time",
    ("auth/inventory.py", "the real time"): "whether a retired signing key still verifies is real time (auth/keys.py)",
    ("privacy/service.py", "the real time"): "data key bookkeeping, not a business rule",
    ("people/sessions.py", "the real time"): "console sessions are credentials: idle timeout and lifetime in real "
    "time, never lengthened nor cut by a test clock",
    ("people/oidc.py", "system time"): "the single sign-on's login state lives ten minutes of real time, a "
    "credential between two legs of one sign-in",
    ("people/service.py", "the real time"): "one-time codes (TOTP) come from the person's phone, on its real clock",
    ("webhooks/delivery.py", "system time"): "the signature timestamp: receivers check it against their real clock",
}
PRODUCTION = {
    "environment": "production",
    "master_key": base64.b64encode(b"a real production key: 32 bytes!").decode(),
    "public_url": "https://alliance.example",
    "database_url": "postgresql://db/alliance",
}


def _reads() -> set[tuple[str, str]]:
    found = set()
    for path in APP.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        for kind, pattern in READS.items():
            if pattern.search(source):
                found.add((path.relative_to(APP).as_posix(), kind))
    return found


def test_rules_read_time_only_from_the_clock() -> None:
    assert _reads() - set(ALLOWED) == set()


def test_the_scan_sees_every_kind_of_read() -> None:
    samples = {"system time": "datetime.now(UTC)", "the real time": "clock.real_now()", "the database's time": "now()"}
    assert {kind for kind, pattern in READS.items() if pattern.search(samples[kind])} == set(READS)
    assert not READS["the database's time"].search("clock.now()")
    assert set(ALLOWED) <= _reads(), "an allowance no module needs any more"


def test_a_manual_clock_moves_only_while_installed(settings: Settings) -> None:
    start = datetime(2027, 3, 1, tzinfo=UTC)
    with clock.install(clock.ManualClock(start), settings) as manual:
        assert clock.now() == start
        manual.advance(timedelta(days=31))
        assert clock.now() == start + timedelta(days=31)
        with pytest.raises(ValueError, match="only advances"):
            manual.advance(timedelta(seconds=-1))
    assert isinstance(clock.current(), clock.SystemClock)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_production_refuses_another_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    production = Settings(_env_file=None, **PRODUCTION)  # type: ignore[call-arg, arg-type]
    with (
        pytest.raises(clock.ClockLocked),
        clock.install(clock.ManualClock(datetime(2030, 1, 1, tzinfo=UTC)), production),
    ):
        pass
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(f"ALLIANCE_{name.upper()}", value)
    monkeypatch.setenv("DATABASE_URL", PRODUCTION["database_url"])
    get_settings.cache_clear()
    try:
        assert get_settings().environment == "production"
        with pytest.raises(clock.ClockLocked), clock.install(clock.ManualClock(datetime(2030, 1, 1, tzinfo=UTC))):
            pass
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert isinstance(clock.current(), clock.SystemClock)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_no_setting_nor_route_moves_the_production_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    timely = re.compile(r"clock|now|time_?travel|offset|frozen|fake", re.I)
    skews = {name for name in Settings.model_fields if name.endswith("clock_skew_s")}  # how far ahead is accepted
    assert [name for name in set(Settings.model_fields) - skews if timely.search(name)] == []
    for name in ("ALLIANCE_CLOCK", "ALLIANCE_NOW", "ALLIANCE_CLOCK_OFFSET_S", "ALLIANCE_FAKE_TIME"):
        monkeypatch.setenv(name, "2030-01-01T00:00:00+00:00")
    production = Settings(_env_file=None, **PRODUCTION, log_json=True)  # type: ignore[call-arg, arg-type]
    app = create_app(production.model_copy(update={"log_level": get_settings().log_level}))
    paths = [route.path for route in app.routes if isinstance(route, APIRoute)]
    assert paths, "the production app has routes"
    assert [path for path in paths if timely.search(path)] == []
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_tests_name_days_in_the_business_timezone() -> None:
    """``date.today()`` is the server's date: from 16:00 UTC it is a day behind Beijing, and a test using it as
    "today" fails every evening. Tests take the business day (``app.core.business_time.today``)."""
    tests = Path(__file__).resolve().parents[1]
    offenders = [
        f"{path.relative_to(tests)}:{number}"
        for path in sorted(tests.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if "date.today()" in line and "test_tests_name_days" not in line and '"""' not in line
    ]
    assert not offenders, offenders
