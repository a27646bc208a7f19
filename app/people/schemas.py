"""What the people services answer: plain values, no table rows, so that callers never hold a secret's column."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.scopes import StaffRole


@dataclass(frozen=True, slots=True)
class NewPerson:
    """A local account just created: its one-time password and TOTP enrolment, shown once and never stored."""

    person_id: str
    username: str
    display_name: str
    role: StaffRole
    password: str
    totp_secret: str
    enrolment_uri: str


@dataclass(frozen=True, slots=True)
class SessionHolder:
    """The person behind a valid session cookie."""

    person_id: str
    username: str
    display_name: str
    role: StaffRole
    session_id: str
    csrf_token: str


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """A new session: the cookie token (shown here only; the table holds its hash) and its CSRF token."""

    session_id: str
    token: str
    csrf_token: str
    person_id: str
