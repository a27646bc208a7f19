"""Reading a batch file: every data record of the file gets exactly one result, numbered with the file's line where
it starts, whatever the file holds (stray or unclosed quotes, quoted line breaks, blank lines, a byte-order mark,
CRLF, ragged rows, bytes that are not text, endless lines); a record that cannot be read is an error of its own.

The expectations are written by hand (the table) or derived from how the test itself built the file (the property):
the line where each record starts is counted from the bytes the test wrote before it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.referrals.batches import files as batch_files
from app.referrals.batches.files import BatchFile, BatchFormat, Spool
from tests.referrals.conftest import PartnerDesk
from tests.referrals.test_batches import BATCHES, CSV, JSONL, _results, csv_row, individual, jsonl_file

HEADER = ",".join(batch_files.CSV_COLUMNS)


def raw_row(desk: PartnerDesk, ref: str, **subject: Any) -> str:
    """A valid referral as a CSV row written by hand: no cell quoted, whatever it holds (as a person types it)."""
    row = csv_row(individual(desk.program.id, ref, **subject))
    return ",".join(row.get(column, "") for column in batch_files.CSV_COLUMNS)


def quoted_row(desk: PartnerDesk, ref: str, name: str) -> str:
    """A valid referral as a CSV row with its name in quotes (the name may hold line breaks and quotes)."""
    row = csv_row(individual(desk.program.id, ref))
    cells = [row.get(column, "") for column in batch_files.CSV_COLUMNS]
    cells[batch_files.CSV_COLUMNS.index("name")] = '"' + name.replace('"', '""') + '"'
    return ",".join(cells)


async def _post(
    client: httpx.AsyncClient, desk: PartnerDesk, content: bytes | AsyncIterator[bytes], headers: dict[str, str]
) -> httpx.Response:
    return await client.post(BATCHES, content=content, headers={**desk.headers(), **headers})


# --- the reproduction of the issue ----------------------------------------------------------------------------------


async def test_a_stray_quote_in_an_unquoted_field_costs_no_line(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    names = ['O"Brien', '龙江"农业', "张三", '"', "李四", 'a"b"c', "王五"]
    lines = [raw_row(bank, f"STRAY-{number}", name=name) for number, name in enumerate(names)]
    # a name that is only a quote starts a quoted field: written as a person would type it, that line alone is bad
    content = "\n".join([HEADER, *lines]) + "\n"
    response = await _post(client, bank, content.encode(), CSV)
    assert response.status_code == 202, response.text
    assert response.json()["counts"]["total"] == 7
    results = {result["line"]: result for result in await _results(client, bank, response.json()["id"])}
    assert sorted(results) == [2, 3, 4, 5, 6, 7, 8]
    assert [results[line]["outcome"] for line in range(2, 9)] == ["eligible"] * 3 + ["error"] + ["eligible"] * 3
    assert results[5]["errors"] == [{"field": None, "message": batch_files.MALFORMED}]
    assert [results[line]["external_ref"] for line in (2, 3, 7, 8)] == ["STRAY-0", "STRAY-1", "STRAY-5", "STRAY-6"]


# --- a table of nasty files, end to end -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NastyFile:
    name: str
    build: Callable[[PartnerDesk], bytes]
    expected: dict[int, str]  # line → "eligible", or "error: <message>" for a record that cannot be read
    format: BatchFormat = BatchFormat.csv


def _lines(*lines: str | bytes, end: str = "\n", final: bool = True) -> bytes:
    encoded = [line.encode() if isinstance(line, str) else line for line in lines]
    return end.encode().join(encoded) + (end.encode() if final else b"")


ROW_IS_SHORT = f"the row has {len(batch_files.CSV_COLUMNS) - 1} cells, the header {len(batch_files.CSV_COLUMNS)}"
ROW_IS_LONG = f"the row has {len(batch_files.CSV_COLUMNS) + 1} cells, the header {len(batch_files.CSV_COLUMNS)}"

NASTY_FILES = [
    NastyFile(
        "a quoted name over two lines, CRLF",
        lambda d: _lines(HEADER, quoted_row(d, "Q-1", "欧阳\r\n娜娜"), raw_row(d, "Q-2"), end="\r\n"),
        {2: "eligible", 4: "eligible"},
    ),
    NastyFile(
        "quoted names with doubled quotes and commas",
        lambda d: _lines(HEADER, quoted_row(d, "Q-3", '黑土地 "农业", 有限'), raw_row(d, "Q-4")),
        {2: "eligible", 3: "eligible"},
    ),
    NastyFile(
        "blank lines, spaces and a spreadsheet's empty rows",
        lambda d: _lines(
            "", HEADER, "", raw_row(d, "B-1"), "   ", "," * (len(batch_files.CSV_COLUMNS) - 1), raw_row(d, "B-2"), ""
        ),
        {4: "eligible", 7: "eligible"},
    ),
    NastyFile(
        "a byte-order mark, CRLF and no final line break",
        lambda d: b"\xef\xbb\xbf" + _lines(HEADER, raw_row(d, "BOM-1"), raw_row(d, "BOM-2"), end="\r\n", final=False),
        {2: "eligible", 3: "eligible"},
    ),
    NastyFile(
        "ragged rows",
        lambda d: _lines(
            HEADER,
            raw_row(d, "R-1"),
            raw_row(d, "R-2") + ",extra",
            raw_row(d, "R-3").rsplit(",", 1)[0],
            raw_row(d, "R-4"),
        ),
        {2: "eligible", 3: f"error: {ROW_IS_LONG}", 4: f"error: {ROW_IS_SHORT}", 5: "eligible"},
    ),
    NastyFile(
        "a quote that never closes, then rows with quotes of their own",
        lambda d: _lines(
            HEADER,
            raw_row(d, "U-1"),
            raw_row(d, "U-2", name='"张三'),
            raw_row(d, "U-3"),
            quoted_row(d, "U-4", "李四"),
            raw_row(d, "U-5", name='O"Brien'),
        ),
        {2: "eligible", 3: f"error: {batch_files.MALFORMED}", 4: "eligible", 5: "eligible", 6: "eligible"},
    ),
    NastyFile(
        "a quote that never closes on the last line",
        lambda d: _lines(HEADER, raw_row(d, "E-1"), raw_row(d, "E-2", name='"张三'), final=False),
        {2: "eligible", 3: f"error: {batch_files.MALFORMED}"},
    ),
    NastyFile(
        # One record by the quotes, but a broken one: which lines are its own cannot be told, so each gets a result.
        "a record over two lines with a cell missing",
        lambda d: _lines(
            HEADER, quoted_row(d, "M-1", "欧阳\n娜娜").rsplit(",", 1)[0], raw_row(d, "M-2"), raw_row(d, "M-3")
        ),
        {
            2: f"error: {batch_files.MALFORMED}",
            3: "error: the row has 16 cells, the header 20",
            4: "eligible",
            5: "eligible",
        },
    ),
    NastyFile(
        "a quoted field followed by more text",
        lambda d: _lines(HEADER, raw_row(d, "T-1", name='"张"三'), raw_row(d, "T-2")),
        {2: f"error: {batch_files.MALFORMED}", 3: "eligible"},
    ),
    NastyFile(
        "a line that is not UTF-8",
        lambda d: _lines(HEADER, raw_row(d, "X-1"), raw_row(d, "X-2").encode("gbk"), raw_row(d, "X-3", name="\u00e9")),
        {2: "eligible", 3: f"error: {batch_files.UNDECODABLE}", 4: "eligible"},
    ),
    NastyFile(
        "a truncated character inside a record over two lines",
        lambda d: _lines(
            HEADER, quoted_row(d, "X-4", "欧阳\n娜").encode().replace("娜".encode(), b"\xe5\xa8"), raw_row(d, "X-5")
        ),
        {2: f"error: {batch_files.UNDECODABLE}", 4: "eligible"},
    ),
    NastyFile(
        "an endless line",
        lambda d: _lines(HEADER, raw_row(d, "L-1"), "x" * (batch_files.MAX_LINE_BYTES + 10), raw_row(d, "L-2")),
        {2: "eligible", 3: f"error: {batch_files.TOO_LONG}", 4: "eligible"},
    ),
    NastyFile(
        "JSON Lines: blank, broken, not UTF-8, a lone surrogate, CRLF",
        lambda d: b"".join(
            [
                jsonl_file([individual(d.program.id, "J-1")]).encode(),
                b"\n   \n",
                b'{"program_id": \n',
                b'{"external_ref": "\xff"}\n',
                json.dumps({**individual(d.program.id, "J-2"), "note": "a\ud800b"}).encode() + b"\n",
                jsonl_file([individual(d.program.id, "J-3")]).replace("\n", "\r\n").encode(),
            ]
        ),
        {1: "eligible", 4: "error", 5: f"error: {batch_files.UNDECODABLE}", 6: "error", 7: "eligible"},
        BatchFormat.jsonl,
    ),
]


@pytest.mark.parametrize("nasty", NASTY_FILES, ids=[nasty.name for nasty in NASTY_FILES])
async def test_every_record_of_a_nasty_file_gets_one_result_on_its_line(
    client: httpx.AsyncClient, bank: PartnerDesk, nasty: NastyFile
) -> None:
    content = nasty.build(bank)
    response = await _post(client, bank, content, CSV if nasty.format is BatchFormat.csv else JSONL)
    assert response.status_code == 202, response.text
    assert response.json()["counts"]["total"] == response.json()["counts"]["processed"] == len(nasty.expected)
    results = {result["line"]: result for result in await _results(client, bank, response.json()["id"])}
    assert sorted(results) == sorted(nasty.expected)
    for line, expected in nasty.expected.items():
        outcome, _, message = expected.partition(": ")
        assert results[line]["outcome"] == outcome, (line, results[line])
        if message:
            assert results[line]["errors"] == [{"field": None, "message": message}], line


async def test_a_file_streamed_a_few_bytes_at_a_time_reads_the_same(
    client: httpx.AsyncClient, bank: PartnerDesk
) -> None:
    content = _lines(
        HEADER, quoted_row(bank, "S-1", "欧阳\r\n娜娜"), "", raw_row(bank, "S-2", name='O"Brien'), end="\r\n"
    )

    async def trickle() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 7):  # pieces split characters, CRLF pairs and quotes
            yield content[start : start + 7]

    response = await _post(client, bank, trickle(), CSV)
    assert response.status_code == 202 and response.json()["counts"]["eligible"] == 2, response.text
    assert [result["line"] for result in await _results(client, bank, response.json()["id"])] == [2, 5]


async def test_a_file_none_of_whose_lines_is_text_is_refused_whole(
    client: httpx.AsyncClient, bank: PartnerDesk
) -> None:
    content = _lines(HEADER, raw_row(bank, "G-1").encode("gbk"), raw_row(bank, "G-2", name="李四").encode("gbk"))
    refused = await _post(client, bank, content, CSV)
    assert refused.status_code == 422 and refused.json()["type"].endswith("/batch-not-decodable")
    assert "line 2" in refused.json()["detail"]
    header = _lines(HEADER.replace("kind", "类别"), raw_row(bank, "G-3")).replace("类别".encode(), "类别".encode("gbk"))
    refused = await _post(client, bank, header, CSV)
    assert refused.status_code == 422 and "line 1" in refused.json()["detail"]
    assert (await _post(client, bank, content, {"Content-Type": "text/csv; charset=gbk"})).status_code == 202


# --- the property: any file built of such pieces --------------------------------------------------------------------

COLUMNS = ("program_id", "external_ref", "kind", "name")
_TEXT = st.text(alphabet=st.sampled_from('ab张三 ,"\n\r\t'), max_size=8)
_PLAIN = st.text(alphabet=st.sampled_from("ab龙江 \t"), min_size=1, max_size=6)  # no delimiter, quote or break
_WORD = st.text(alphabet=st.sampled_from("ab龙江"), min_size=1, max_size=6)


@st.composite
def _good_record(draw: st.DrawFn) -> tuple[list[str], str]:
    """Cells and their CSV text, written by the csv module (quoting as needed, or everything)."""
    cells = [draw(_WORD), *(draw(_TEXT) for _ in COLUMNS[1:])]
    buffer = io.StringIO()
    quote_all = draw(st.booleans())
    # A line terminator of its own makes the writer quote the line breaks in cells; it is removed after.
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(cells)
    return cells, buffer.getvalue().removesuffix("\r\n")


@st.composite
def _stray_quotes(draw: st.DrawFn) -> tuple[list[str], str]:
    """Unquoted cells with quotes inside them (never first in a cell): taken literally."""
    cells = [draw(_PLAIN) + draw(st.sampled_from(['"', '""', '"x"'])) + draw(_PLAIN) for _ in COLUMNS]
    return cells, ",".join(cells)


# The file is read in blocks, a line at most so long: small ones, so that records, lines too long and bytes that
# are not text meet the blocks' edges.
SMALL_LINE_LIMIT = 300
_BLOCKS = st.sampled_from([1, 2, 5, 16, 97, 1024 * 1024])

_PIECES = st.one_of(
    st.tuples(st.just("good"), _good_record()),
    st.tuples(st.just("good"), _stray_quotes()),
    st.tuples(st.just("blank"), st.sampled_from(["", "  ", ",,,", '""', " , ,\t"])),
    st.tuples(st.just("ragged"), st.builds(lambda *cells: ",".join(cells), _WORD, _PLAIN, _PLAIN)),
    st.tuples(st.just("ragged"), st.builds(lambda *cells: ",".join(cells), _WORD, _PLAIN, _PLAIN, _PLAIN, _PLAIN)),
    st.tuples(st.just("unclosed"), st.builds(lambda a, b: f'{a},"{b},x', _PLAIN, _PLAIN)),
    st.tuples(st.just("undecodable"), st.sampled_from([b"a,\xff,b,c", b"a,b,\xe4\xb8,c", b"\xc3"])),
    st.tuples(st.just("overlong"), st.builds(lambda extra: "y" * (SMALL_LINE_LIMIT + extra), st.integers(1, 700))),
)


def _read(content: bytes, batch_format: BatchFormat = BatchFormat.csv, block: int = 1024) -> list[tuple[int, Any]]:
    file = BatchFile(batch_format)
    spool = Spool(io.BytesIO(content), len(content), "")
    with (
        patch.object(batch_files, "BLOCK_BYTES", block),
        patch.object(batch_files, "MAX_LINE_BYTES", SMALL_LINE_LIMIT),
    ):
        return [record for chunk in file.chunks(spool, 3) for record in chunk]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(_PIECES, max_size=12),
    end=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    final_break=st.booleans(),
    block=_BLOCKS,
)
def test_property_every_record_gets_one_entry_on_the_line_it_starts(
    pieces: list[tuple[str, Any]], end: str, bom: bool, final_break: bool, block: int
) -> None:
    content = bytearray(b"\xef\xbb\xbf" if bom else b"")
    content += ",".join(COLUMNS).encode() + end.encode()
    expected: list[tuple[int, Any]] = []
    for position, (kind, piece) in enumerate(pieces):
        line = content.count(b"\n") + 1
        text, cells = (piece[1], piece[0]) if kind == "good" else (piece, None)
        if kind == "good":
            expected.append((line, cells))
        elif kind != "blank":
            expected.append((line, kind if kind == "undecodable" else "error"))
        content += text if isinstance(text, bytes) else text.encode()
        if position < len(pieces) - 1 or final_break:
            content += end.encode()
    # A quote left open is closed, in the csv module's reading, by the next quote of the file: when a delimiter
    # follows it, the records in between may read as one well-formed record, a reading no rule can tell from
    # a real one. Such files are left out; any other next quote shows the record as broken.
    text = content.decode("utf-8", errors="replace")
    for start in _unclosed_starts(pieces, text):
        closing = text.find('"', start)
        assume(closing == -1 or text[closing + 1 : closing + 2] not in (",", '"', "\r", "\n", ""))
    if expected and all(wanted == "undecodable" for _, wanted in expected):
        with pytest.raises(batch_files.BatchNotDecodable):
            _read(bytes(content), block=block)
        return
    found = _read(bytes(content), block=block)
    assert [line for line, _ in found] == [line for line, _ in expected]
    for (line, record), (_, wanted) in zip(found, expected, strict=True):
        if wanted == "undecodable":
            assert record == {"unreadable": batch_files.UNDECODABLE}, line
        elif wanted == "error":
            assert isinstance(record, dict) and record["unreadable"] != batch_files.UNDECODABLE, line
        else:
            assert record == wanted, line


def _unclosed_starts(pieces: list[tuple[str, Any]], text: str) -> list[int]:
    """Where, in ``text``, the quote of each unclosed piece opens (just after it)."""
    starts, searched = [], 0
    for kind, piece in pieces:
        if kind == "unclosed":
            at = text.index(piece, searched)
            starts.append(at + piece.index('"') + 1)
            searched = at + len(piece)
    return starts


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.one_of(
            st.builds(json.dumps, st.dictionaries(st.sampled_from(["a", "名"]), st.text(max_size=5), max_size=2)),
            st.sampled_from(["", "  ", "\t", "{broken", "[1,", '"\\ud800"']),
            st.sampled_from([b"\xff", b'{"a": "\xe4\xb8"}']),
            st.builds(lambda extra: "z" * (SMALL_LINE_LIMIT + extra), st.integers(1, 700)),
        ),
        max_size=12,
    ),
    end=st.sampled_from(["\n", "\r\n"]),
    block=_BLOCKS,
)
def test_property_every_json_line_gets_one_entry(lines: list[str | bytes], end: str, block: int) -> None:
    content, expected = b"", []
    for written in lines:
        raw = written if isinstance(written, bytes) else written.encode()
        if raw.strip():
            fault = batch_files.UNDECODABLE if isinstance(written, bytes) else None
            if len(raw) > SMALL_LINE_LIMIT:
                fault = batch_files.TOO_LONG
            expected.append((content.count(b"\n") + 1, fault))
        content += raw + end.encode()
    if expected and all(fault == batch_files.UNDECODABLE for _, fault in expected):
        with pytest.raises(batch_files.BatchNotDecodable):
            _read(content, BatchFormat.jsonl, block)
        return
    found = _read(content, BatchFormat.jsonl, block)
    assert [line for line, _ in found] == [line for line, _ in expected]
    for (line, record), (_, fault) in zip(found, expected, strict=True):
        if fault:
            assert record == {"unreadable": fault}, line
        else:
            assert isinstance(record, str), line
            assert content.splitlines()[line - 1].decode().strip() == record.strip(), line


async def test_a_large_upload_is_spooled_to_a_temporary_file_and_read_back_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch_files, "SPOOL_IN_MEMORY", 100)
    content = _lines(",".join(COLUMNS), *(f"p,r{number},vip,龙江{number}" for number in range(50)))

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 33):
            yield content[start : start + 33]

    async with batch_files.spooled(pieces()) as spool:
        assert not isinstance(spool.file, io.BytesIO)
        assert (spool.size, spool.sha256) == (len(content), hashlib.sha256(content).hexdigest())
        assert spool.file.read() == content
    monkeypatch.setattr(batch_files, "MAX_BYTES", len(content) - 1)
    with pytest.raises(batch_files.BatchTooLarge):
        async with batch_files.spooled(pieces()):
            pass


def test_too_many_records_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_files, "MAX_LINES", 2)
    content = _lines(",".join(COLUMNS), "p,r1,vip,a", "", "p,r2,vip,b")
    assert [line for line, _ in _read(content)] == [2, 4]
    with pytest.raises(batch_files.BatchTooLarge):
        _read(content + b"p,r3,vip,c\n")
