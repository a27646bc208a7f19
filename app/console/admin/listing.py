"""What the administration lists share: the URL that holds their state, page numbers checked on the server, text
from the URL or a form checked before it reaches the database."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

PAGE_SIZE = 50
_MAX_PAGE = 1_000_000
# Neither PostgreSQL text (NUL) nor UTF-8 (a lone surrogate) can hold these; other control characters are noise.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def url_of(path: str, query: Mapping[str, str | None]) -> str:
    """``path`` with the query parameters that have a value, in a stable order."""
    present = [(name, value) for name, value in query.items() if value]
    return f"{path}?{urlencode(present)}" if present else path


def has_empty_parameters(query: Mapping[str, str]) -> bool:
    """A filter form sends its empty fields too (``?actor=&action=x``); the URL to keep has only the set ones."""
    return any(value == "" for value in query.values())


def clean_text(value: object, *, max_length: int) -> str | None:
    """The trimmed text, or ``None`` when it is missing, too long or holds what cannot be stored."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > max_length or _UNSTORABLE.search(value):
        return None
    return value


def page_number(raw: str | None) -> int | None:
    """``None`` for no page (the first); ``0`` for a value that is not a page number."""
    if raw is None or raw == "":
        return None
    return int(raw) if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= _MAX_PAGE else 0


@dataclass(frozen=True, slots=True)
class PageWindow:
    page: int
    total: int
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def beyond_the_end(self) -> bool:
        return self.page > self.pages
