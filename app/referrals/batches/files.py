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
import io
import itertools
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO

from app.core.problems import Problem, Unprocessable

MAX_LINES = 100_000
MAX_BYTES = 64 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024  # a physical line beyond this is refused unread (a referral's row is under 2 KiB)
SPOOL_IN_MEMORY = 1024 * 1024  # an upload up to this size is spooled in memory, a larger one to a temporary file
BLOCK_BYTES = 1024 * 1024  # read and decoded at once

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
    with ExitStack() as files:
        file: IO[bytes] = files.enter_context(io.BytesIO())
        digest, size = hashlib.sha256(), 0
        async for chunk in body:
            size += len(chunk)
            if size > MAX_BYTES:
                raise too_large()
            digest.update(chunk)
            if size > SPOOL_IN_MEMORY and isinstance(file, io.BytesIO):
                in_memory, file = file, files.enter_context(tempfile.TemporaryFile(prefix="alliance-batch-"))
                file.write(in_memory.getvalue())
                in_memory.close()
            file.write(chunk)
        file.seek(0)
        yield Spool(file, size, digest.hexdigest())


class _Lines:
    """The file's lines, read and decoded a block at a time (bad bytes spoil their own line only), numbered from 1.

    ``texts()`` yields them with their line ends, for a reader to consume (in C, through ``itertools.chain``);
    ``faults`` holds the lines that cannot be read and why (one too long comes as an empty line); the blocks a
    record may still need are kept, so that its lines can be read again (``again``).
    """

    def __init__(self, file: IO[bytes], codec: str) -> None:
        self.file, self.codec = file, codec
        self.faults: dict[int, str] = {}
        self._blocks: deque[tuple[int, list[str]]] = deque()  # (number of its first line, its lines)
        self._count = 0

    def texts(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._decoded())

    def again(self, first: int, last: int) -> list[str]:
        """Lines ``first`` to ``last``, read already."""
        found: list[str] = []
        for number, lines in self._blocks:
            found += lines[max(first - number, 0) : max(last - number + 1, 0)]
        return found

    def release(self, before: int) -> None:
        """Lines before ``before`` will not be needed again."""
        while self._blocks and self._blocks[0][0] + len(self._blocks[0][1]) <= before:
            self._blocks.popleft()

    def _decoded(self) -> Iterator[list[str]]:
        for raw in self._raw():
            first = self._count + 1
            self._count += len(raw)
            try:
                lines = b"\n".join(raw).decode(self.codec).split("\n")
            except UnicodeDecodeError:
                lines = [self._decode(first + offset, line) for offset, line in enumerate(raw)]
            if first == 1:
                lines[0] = lines[0].removeprefix("\ufeff")
            lines = [line + "\n" for line in lines]
            self._blocks.append((first, lines))
            yield lines

    def _decode(self, number: int, raw: bytes) -> str:
        try:
            return raw.decode(self.codec)
        except UnicodeDecodeError:
            # Read anyway (its quotes and commas still delimit the record), and refused once read.
            self.faults[number] = UNDECODABLE
            return raw.decode(self.codec, errors="replace")

    def _raw(self) -> Iterator[list[bytes]]:
        """The lines without their line end, a block at a time; a line longer than ``MAX_LINE_BYTES`` is never
        held whole: it comes as an empty line, recorded in ``faults``."""
        carry, overlong = b"", False
        while block := self.file.read(BLOCK_BYTES):
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            if lines:
                if overlong:  # the first line is the end of the one too long
                    lines[0], overlong = b"", False
                    self.faults[self._count + 1] = TOO_LONG
                if max(map(len, lines)) > MAX_LINE_BYTES:
                    for offset, line in enumerate(lines):
                        if len(line) > MAX_LINE_BYTES:
                            lines[offset] = b""
                            self.faults[self._count + 1 + offset] = TOO_LONG
                yield lines
            if len(carry) > MAX_LINE_BYTES:
                carry, overlong = b"", True
        if overlong:
            self.faults[self._count + 1] = TOO_LONG
        if carry or overlong:
            yield [carry]

    def fault(self, first: int, last: int) -> str | None:
        """Why lines ``first`` to ``last`` cannot be read, if one cannot."""
        return next((self.faults[n] for n in range(first, last + 1) if n in self.faults), None)


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
        lines = _Lines(file, self.codec)
        for number, text in enumerate(lines.texts(), start=1):
            if lines.faults and number in lines.faults:
                yield number, {"unreadable": lines.faults[number]}
            elif text.strip():
                yield number, text.rstrip("\r\n")
            lines.release(number)

    def _csv(self, file: IO[bytes]) -> Iterator[DataLine]:
        lines = _Lines(file, self.codec)
        source = lines.texts()
        # strict: a quote that closes a field must end it, so a quote opened by mistake shows up where it closes
        reader = csv.reader(source, strict=True)
        base = 0  # the reader's line_num counts from the line after this one
        start = 1  # where the next record starts
        read_again = 0  # the last line given back to be read again
        while True:
            try:
                cells, problem = next(reader), None
            except StopIteration:
                return
            except csv.Error:
                cells, problem = [], MALFORMED
            first, last = start, base + reader.line_num
            start = last + 1
            fault = lines.fault(first, last) if lines.faults else None
            if problem is None and fault is None and first == last and _blank(cells):
                continue
            if self.header is None:
                self.header = self._header(first, cells, fault or problem)
                continue
            if problem is None and len(cells) != len(self.header):
                problem = f"the row has {len(cells)} cells, the header {len(self.header)}"
            if problem and last > first:
                # A quote opened and never properly closed took the next lines into this record: the record's
                # first line is the one at fault, the others are read again, each for itself (from the lines
                # already read, then the rest of the file: one reader deep, however many times this happens).
                read_again = max(read_again, last)
                reader = csv.reader(itertools.chain(lines.again(first + 1, read_again), source), strict=True)
                base, start = first, first + 1
                yield first, {"unreadable": lines.faults.get(first) or MALFORMED}
            elif fault or problem:
                yield first, {"unreadable": fault or problem or MALFORMED}
            else:
                yield first, cells
            lines.release(start)

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


def _blank(cells: list[str]) -> bool:
    """A blank line, or a spreadsheet's empty row (``,,,``): no data record. The first cell is tested alone first:
    it is cheaper, and nearly every row fails it."""
    return not cells or (not cells[0].strip() and not any(cell.strip() for cell in cells))


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
