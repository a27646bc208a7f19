"""The file of a referral batch: its format and charset, the upload spooled to a temporary file, and its data
records read back with the ``csv`` module's own rules (or one JSON document per line).

The upload is spooled first, while no database connection is held, so that a slow client never keeps one; the
records are read from the spool afterwards, a chunk at a time. Every data record gets exactly one entry, numbered
with the file's physical line where it starts (a CSV header is line 1): a record that cannot be read (bytes that
are not text in the file's charset, quotes that do not close, the wrong number of cells, an endless line) is an
entry that says so, and never costs another line its entry.
"""

from __future__ import annotations

import csv
import hashlib
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, NamedTuple

from app.core.problems import Problem, Unprocessable

MAX_LINES = 100_000
MAX_BYTES = 64 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024  # a physical line beyond this is refused unread (a referral's row is under 2 KiB)
SPOOL_IN_MEMORY = 1024 * 1024  # an upload up to this size is spooled in memory, a larger one to a temporary file

CSV_COLUMNS = (
    "program_id",
    "external_ref",
    "kind",
    "name",
    "mobile",
    "national_id",
    "credit_code",
    "contact_mobile",
    "declared_assets_band",
    "employer",
    "consent_captured_at",
    "consent_channel",
    "consent_notice_version",
    "consent_notice_sha256",
    "consent_recipient_name",
    "consent_purpose",
    "consent_data_categories",
    "consent_retention_days",
    "consent_separate",
    "consent_evidence_ref",
)
REQUIRED_CSV_COLUMNS = ("program_id", "external_ref", "kind")
# Declared charsets we decode; GB 18030 is a superset of GBK and GB 2312. In both, a newline byte is never part of
# another character, so the file splits into lines before it is decoded.
_CODECS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gb18030", "gb2312": "gb18030", "gb18030": "gb18030"}

UNDECODABLE = "the line is not valid text in the file's charset (UTF-8, or the declared charset=gbk)"
MALFORMED = "not a well-formed CSV row (check the quotes)"
TOO_LONG = f"the line is longer than {MAX_LINE_BYTES // 1024} KiB"

# A data record: its first line and either its content (the CSV cells, or the JSON text of a JSON Lines line) or
# ``{"unreadable": why}``. This is also its staged form.
Record = str | list[str] | dict[str, str]
DataLine = tuple[int, Record]


class BatchFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


class BatchTooLarge(Problem):
    status, slug, title = 413, "batch-too-large", "Batch too large"


class UnsupportedBatchFormat(Problem):
    status, slug, title = 415, "unsupported-batch-format", "Unsupported batch format"


class BatchNotDecodable(Unprocessable):
    slug, title = "batch-not-decodable", "Batch not decodable"


class InvalidBatchHeader(Unprocessable):
    slug, title = "invalid-batch-header", "Invalid CSV header"


class EmptyBatch(Unprocessable):
    slug, title = "empty-batch", "Empty batch"


def upload_format(content_type: str | None, requested: BatchFormat | None) -> tuple[BatchFormat, str]:
    """The format (the ``format`` parameter wins over the media type) and the Python codec to decode with."""
    media_type, _, parameters = (content_type or "").partition(";")
    media_type = media_type.strip().lower()
    charset = "utf-8"
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    codec = _CODECS.get(charset)
    if codec is None:
        raise UnsupportedBatchFormat("Send the file as UTF-8 (or declare charset=gbk).")
    if requested is not None:
        return requested, codec
    if media_type in ("text/csv", "application/csv"):
        return BatchFormat.csv, codec
    if media_type in ("application/x-ndjson", "application/jsonl", "application/json-lines", "application/x-jsonl"):
        return BatchFormat.jsonl, codec
    raise UnsupportedBatchFormat("Send Content-Type text/csv or application/x-ndjson, or a `format` parameter.")


def too_large() -> BatchTooLarge:
    return BatchTooLarge(f"A batch is at most {MAX_BYTES // (1024 * 1024)} MiB.")


@dataclass(frozen=True)
class Spool:
    """The upload as received: where it is, its size and its SHA-256 (what binds an idempotency key)."""

    file: IO[bytes]
    size: int
    sha256: str


@asynccontextmanager
async def spooled(body: AsyncIterator[bytes]) -> AsyncIterator[Spool]:
    """Receive the whole body into a temporary file (removed on exit); too large a body is refused as soon as it
    passes ``MAX_BYTES``. The file holds personal data in clear: it has no name on disk and lives for the request."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, prefix="alliance-batch-") as file:
        digest, size = hashlib.sha256(), 0
        async for chunk in body:
            size += len(chunk)
            if size > MAX_BYTES:
                raise too_large()
            digest.update(chunk)
            file.write(chunk)
        file.seek(0)
        yield Spool(file, size, digest.hexdigest())


class _Line(NamedTuple):
    number: int
    text: str
    fault: str | None  # why the line cannot be read, if it cannot


class _PhysicalLines:
    """The file's lines, each decoded on its own (bad bytes spoil their line only) and numbered; lines can be
    given back, to be read again. ``taken`` collects the lines handed out (the reader of records empties it)."""

    def __init__(self, file: IO[bytes], codec: str) -> None:
        self.file, self.codec = file, codec
        self.read = 0
        self.again: deque[_Line] = deque()
        self.taken: list[_Line] = []

    def __iter__(self) -> _PhysicalLines:
        return self

    def __next__(self) -> str:
        line = self.again.popleft() if self.again else self._read()
        if line is None:
            raise StopIteration
        self.taken.append(line)
        return line.text

    def each(self) -> Iterator[_Line]:
        while (line := self._read()) is not None:
            yield line

    def _read(self) -> _Line | None:
        raw = self.file.readline(MAX_LINE_BYTES)
        if not raw:
            return None
        self.read += 1
        fault = None
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := self.file.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            raw, fault = b"\n", TOO_LONG
        try:
            text = raw.decode(self.codec)
        except UnicodeDecodeError:
            # Read anyway (its quotes and commas still delimit the record), and refused once read.
            text, fault = raw.decode(self.codec, errors="replace"), UNDECODABLE
        return _Line(self.read, text.removeprefix("\ufeff") if self.read == 1 else text, fault)


@dataclass
class BatchFile:
    """Reads the data records of a spooled upload; ``header`` (CSV) and ``lines`` (data records so far) fill in
    as it goes. More than ``MAX_LINES`` records is ``BatchTooLarge``; a file none of whose records is text in its
    charset is ``BatchNotDecodable`` (most likely a GBK file sent as UTF-8), once all of it is read."""

    format: BatchFormat
    codec: str = "utf-8"
    header: list[str] | None = None
    lines: int = 0
    _undecodable: list[int] = field(default_factory=list)

    def chunks(self, spool: Spool, size: int) -> Iterator[list[DataLine]]:
        """The data records, ``size`` at a time (the last chunk may be shorter or empty)."""
        chunk: list[DataLine] = []
        records = self._csv(spool.file) if self.format is BatchFormat.csv else self._jsonl(spool.file)
        for record in records:
            self.lines += 1
            if self.lines > MAX_LINES:
                raise BatchTooLarge(f"A batch holds at most {MAX_LINES:,} lines; split the file.")
            if record[1] == {"unreadable": UNDECODABLE}:
                self._undecodable.append(record[0])
            chunk.append(record)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if self.lines and len(self._undecodable) == self.lines:
            raise BatchNotDecodable(
                f"The file is not valid text in its charset (line {self._undecodable[0]}). Save it as UTF-8, or "
                "declare `charset=gbk` in Content-Type."
            )
        yield chunk

    def _jsonl(self, file: IO[bytes]) -> Iterator[DataLine]:
        for number, text, fault in _PhysicalLines(file, self.codec).each():
            if fault:
                yield number, {"unreadable": fault}
            elif text.strip():
                yield number, text.rstrip("\r\n")

    def _csv(self, file: IO[bytes]) -> Iterator[DataLine]:
        lines = _PhysicalLines(file, self.codec)
        # strict: a quote that closes a field must end it, so a quote opened by mistake shows up where it closes
        reader = csv.reader(lines, strict=True)
        while True:
            try:
                cells, problem = next(reader), None
            except StopIteration:
                return
            except csv.Error:
                cells, problem = [], MALFORMED
            taken, lines.taken = lines.taken, []
            fault = taken[0].fault if len(taken) == 1 else next((line.fault for line in taken if line.fault), None)
            if problem is None and fault is None and len(taken) == 1 and _blank(taken[0].text, cells):
                continue
            if self.header is None:
                self.header = self._header(taken[0].number, cells, fault or problem)
                continue
            if problem is None and len(cells) != len(self.header):
                problem = f"the row has {len(cells)} cells, the header {len(self.header)}"
            if problem and len(taken) > 1:
                # A quote opened and never properly closed took the next lines into this record: the record's
                # first line is the one at fault, the others are read again, each for itself.
                lines.again.extendleft(reversed(taken[1:]))
                yield taken[0].number, {"unreadable": taken[0].fault or MALFORMED}
            elif fault or problem:
                yield taken[0].number, {"unreadable": fault or problem or MALFORMED}
            else:
                yield taken[0].number, cells

    @staticmethod
    def _header(line: int, cells: list[str], problem: str | None) -> list[str]:
        if problem == UNDECODABLE:
            raise BatchNotDecodable(
                f"The file is not valid text in its charset (line {line}). Save it as UTF-8, or declare "
                "`charset=gbk` in Content-Type."
            )
        if problem:
            raise InvalidBatchHeader("The first line is not a CSV header.")
        return csv_header(cells)


def _blank(text: str, cells: list[str]) -> bool:
    """A blank line, or a spreadsheet's empty row (``,,,``): no data record. The text is tested first: it is
    cheaper, and nearly every line fails it."""
    return not text.strip(' \t\r\n,"') and not any(cell.strip() for cell in cells)


def csv_header(cells: list[str]) -> list[str]:
    """The validated header. Column names are never echoed: a missing header would make them personal data."""
    names = [name.strip().lower() for name in cells]
    unknown = [str(position) for position, name in enumerate(names, start=1) if name not in CSV_COLUMNS]
    if unknown:
        raise InvalidBatchHeader(
            f"The header has unknown columns (at positions {', '.join(unknown[:10])}); the first line must name "
            "the columns, see the endpoint's description."
        )
    if len(set(names)) != len(names):
        raise InvalidBatchHeader("The header names a column twice.")
    missing = [name for name in REQUIRED_CSV_COLUMNS if name not in names]
    if missing:
        raise InvalidBatchHeader(f"The header lacks the columns: {', '.join(missing)}.")
    return names
