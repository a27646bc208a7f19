"""Local accounts: creating a person, checking a password and a one-time code, people of the firm's single
sign-on created or updated on sign-in.

Passwords are hashed with argon2id (OWASP's recommended profile for passwords: people choose guessable ones, unlike
client secrets); TOTP secrets are sealed with the master key and opened only to check a code.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from functools import cache

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.auth.scopes import ROLE_SCOPES, StaffRole
from app.core import clock
from app.core.config import Settings
from app.core.crypto import SealedBox, decode_master_key
from app.core.problems import Conflict, Unprocessable
from app.people.models import Person
from app.people.schemas import NewPerson

PASSWORD_HASHER = PasswordHasher(time_cost=3, memory_cost=65_536, parallelism=1)
TOTP_ISSUER = "Alliance"
TOTP_STEP_S = 30
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


class InvalidPerson(Unprocessable):
    slug, title = "invalid-person", "Invalid person"


class UsernameTaken(Conflict):
    slug, title = "username-taken", "Username taken"


def normalise_username(username: str) -> str:
    return username.strip().lower()


async def person_may(session: AsyncSession, username: str, scope: str) -> bool:
    """Whether ``username`` names a person, not disabled, whose role grants ``scope`` (e.g. whom a risk case may
    be given to). Exact: a username is stored normalised, and anything that is not one is no person."""
    if not USERNAME.fullmatch(username):
        return False
    role = await session.scalar(
        select(col(Person.role)).where(col(Person.username) == username, col(Person.disabled_at).is_(None))
    )
    return role is not None and scope in ROLE_SCOPES[role]


def _box(settings: Settings) -> SealedBox:
    return SealedBox(decode_master_key(settings.master_key_value), "totp-secrets")


def new_password() -> str:
    """A one-time password for a new account: 20 random characters, easy to type, never stored in clear."""
    return secrets.token_urlsafe(15)


def enrolment_uri(username: str, totp_secret: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (as a QR code or pasted)."""
    return pyotp.TOTP(totp_secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


async def create_person(
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    *,
    username: str,
    role: StaffRole,
    display_name: str | None = None,
    password: str | None = None,
    totp_secret: str | None = None,
) -> NewPerson:
    """Create a local account; its password and TOTP secret are returned here once (chosen by the caller only for
    tests and the demo)."""
    username = normalise_username(username)
    if not USERNAME.match(username):
        raise InvalidPerson("A username is 2-64 characters: lowercase letters, digits, '.', '_' or '-'.")
    if await session.scalar(select(col(Person.id)).where(col(Person.username) == username)) is not None:
        raise UsernameTaken(f"The username {username!r} is taken.")
    password = password or new_password()
    totp_secret = totp_secret or pyotp.random_base32()
    person = Person(
        username=username,
        display_name=(display_name or username).strip()[:200] or username,
        role=role,
        password_hash=PASSWORD_HASHER.hash(password),
        sealed_totp_secret=_box(settings).seal(totp_secret.encode()),
    )
    session.add(person)
    await session.flush()
    await audit.record(
        session, actor, "person.created", object_type="person", object_id=person.id, username=username, role=role
    )
    return NewPerson(
        person.id, username, person.display_name, role, password, totp_secret, enrolment_uri(username, totp_secret)
    )


async def reset_credentials(session: AsyncSession, actor: Actor, settings: Settings, username: str) -> NewPerson:
    """A new one-time password and TOTP secret for a local account (the old ones stop working at once)."""
    person = await session.scalar(select(Person).where(col(Person.username) == normalise_username(username)))
    if person is None:
        raise InvalidPerson(f"No person {username!r}.")
    password, totp_secret = new_password(), pyotp.random_base32()
    person.password_hash = PASSWORD_HASHER.hash(password)
    person.sealed_totp_secret = _box(settings).seal(totp_secret.encode())
    person.totp_last_step = None
    await session.flush()
    await audit.record(session, actor, "person.credentials_reset", object_type="person", object_id=person.id)
    return NewPerson(
        person.id,
        person.username,
        person.display_name,
        person.role,
        password,
        totp_secret,
        enrolment_uri(person.username, totp_secret),
    )


@cache
def _dummy_hash() -> str:
    return PASSWORD_HASHER.hash(new_password())


def _password_matches(password_hash: str | None, password: str) -> bool:
    try:
        return PASSWORD_HASHER.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _matching_step(totp_secret: str, code: str, after: int | None) -> int | None:
    """The time step (now, or one either side for clock drift) whose code is ``code`` and is later than ``after``."""
    code = code.strip().replace(" ", "")
    totp = pyotp.TOTP(totp_secret)
    current = int(clock.real_now().timestamp()) // TOTP_STEP_S
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP_S), code) and (after is None or step > after):
            return step
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a password-and-code check; ``reason`` is for the audit log only, never for the page."""

    person: Person | None
    reason: str | None


async def check_local_credentials(
    session: AsyncSession, settings: Settings, username: str, password: str, code: str
) -> Verdict:
    """Whether ``username`` signs in with ``password`` and the one-time ``code``; a good code is used up.

    An unknown username costs the same argon2 work as a wrong password, so that timing does not tell them apart.
    """
    person = await session.scalar(
        select(Person).where(col(Person.username) == normalise_username(username)).with_for_update()
    )
    if not _password_matches(person.password_hash if person else None, password) or person is None:
        return Verdict(person, "unknown_username" if person is None else "wrong_password")
    if person.disabled_at is not None:
        return Verdict(person, "disabled")
    if person.sealed_totp_secret is None:
        return Verdict(person, "no_second_factor")
    secret = _box(settings).open(person.sealed_totp_secret).decode()
    step = _matching_step(secret, code, person.totp_last_step)
    if step is None:
        return Verdict(person, "wrong_code")
    await session.execute(update(Person).where(col(Person.id) == person.id).values(totp_last_step=step))
    return Verdict(person, None)


async def sign_in_with_sso(
    session: AsyncSession, actor: Actor, *, subject: str, username: str, display_name: str, role: StaffRole
) -> Person:
    """The person of the identity provider's ``subject``: created on first sign-in, name and role kept current."""
    person = await session.scalar(select(Person).where(col(Person.sso_subject) == subject).with_for_update())
    if person is None:
        username = normalise_username(username)[:64] or "sso"
        taken = await session.scalar(select(func.count()).where(col(Person.username) == username))
        if taken or not USERNAME.match(username):
            username = f"sso-{secrets.token_hex(4)}"
        person = Person(username=username, display_name=display_name[:200] or username, role=role, sso_subject=subject)
        session.add(person)
        await session.flush()
        await audit.record(
            session, actor, "person.created", object_type="person", object_id=person.id, username=username, role=role
        )
    elif (person.role, person.display_name) != (role, display_name[:200]):
        before = {"role": person.role.value, "display_name": person.display_name}
        person.role, person.display_name = role, display_name[:200] or person.display_name
        await session.flush()
        after = {"role": person.role.value, "display_name": person.display_name}
        await audit.record(
            session,
            actor,
            "person.updated",
            object_type="person",
            object_id=person.id,
            changes=audit.changes(before, after),
        )
    return person
