"""The standing of the tokens this process serves (client active, partner active, token not revoked, the client's
rate), kept in memory while the database tells this process what changes.

A trigger on each table the standing is read from (``oauth_clients``, ``partners``, ``revoked_tokens``) sends a
notice on ``CHANNEL`` when its transaction commits, whoever made the change; a listening connection per process
receives it within milliseconds and forgets what it names. The cache is used only while that connection listens:
before it starts, after it drops (until it listens again) and in the tests' rolled-back transactions (where no
notice is ever sent), every call reads the standing from the database.

A lookup that raced a notice (the standing read before the change committed, the notice received before the
read came back) is not kept: every notice moves ``generation``, and a standing read under an older generation is
used for that one call only.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.service import TokenStanding, token_standing

CHANNEL = "alliance_token_standing"
MAX_ENTRIES = 50_000
# A backstop only: a notice forgets a standing at once; this bounds how long one can live if a notice were lost
# on a connection that looks alive.
MAX_AGE_S = 60.0


@dataclass(frozen=True, slots=True)
class _Entry:
    client_id: str
    partner_id: str | None
    standing: TokenStanding | None
    loaded_at: float


@dataclass
class TokenStandings:
    """Standings by token id; ``listening`` is set by the process's notice listener."""

    listening: bool = False
    generation: int = 0
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)

    def known(self, client_id: str, jti: str) -> tuple[TokenStanding | None] | None:
        """The token's standing from memory, in a tuple (it may be None: no such client); None when it must be
        read from the database."""
        entry = self._entries.get(jti) if self.listening else None
        if entry is not None and entry.client_id == client_id and time.monotonic() - entry.loaded_at < MAX_AGE_S:
            return (entry.standing,)
        return None

    async def of(self, session: AsyncSession, client_id: str, partner_id: str | None, jti: str) -> TokenStanding | None:
        """The token's standing: from memory while listening, else (and the first time) from the database."""
        if (known := self.known(client_id, jti)) is not None:
            return known[0]
        generation = self.generation
        standing = await token_standing(session, client_id, jti, partner_id)
        if self.listening and generation == self.generation:
            self._entries[jti] = _Entry(client_id, partner_id, standing, time.monotonic())
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        return standing

    def changed(self, what: str) -> None:
        """A notice: ``client:<id>``, ``partner:<id>`` or ``token:<jti>``; anything else forgets everything."""
        self.generation += 1
        kind, _, key = what.partition(":")
        if kind == "token":
            self._entries.pop(key, None)
        elif kind in ("client", "partner"):
            for jti in [
                jti
                for jti, entry in self._entries.items()
                if (entry.client_id if kind == "client" else entry.partner_id) == key
            ]:
                del self._entries[jti]
        else:
            self.forget_all()

    def forget_all(self) -> None:
        self.generation += 1
        self._entries.clear()

    def listen(self, listening: bool) -> None:
        """The listener started (True) or lost its connection (False): either way, nothing known is kept."""
        self.forget_all()
        self.listening = listening
