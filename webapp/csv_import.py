"""Reading CSV files from the outside world, and writing reject reports: shared by every importer.

Files arrive from spreadsheets and point-of-sale systems in any common encoding and delimiter;
every row keeps its physical line number so a bad one can be reported where staff will find it.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

#: Delimiters the sniffer may choose; anything else falls back to a comma.
DELIMITERS = ",;\t|"
#: A header longer than this is not a header; the sniffer only needs its start.
SNIFF_BYTES = 4096


@dataclass(frozen=True)
class Reject:
    """A bad row: which file, its physical line (1-based, header = 1), why, and its text."""

    line: int
    reason: str
    raw: str = ""
    source: str = "nightly"

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


# --- Reading CSV text -----------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, list[str]]:
    """Text from bytes: UTF-16 with a BOM, UTF-8 (with or without BOM), else Latin-1.

    Latin-1 maps every byte, so decoding never fails; a note says when it was needed. NUL
    characters (no database text column accepts them) become U+FFFD.
    """
    problems = []
    text = None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            text = None  # not UTF-16 after all: try the usual encodings
    if text is None:
        body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = body.decode("latin-1")
            problems.append("The file is not UTF-8, so it was read as Latin-1 (Western "
                            "European); check accented letters in the preview.")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
        problems.append("The file contains NUL characters (is it really a CSV file?); they "
                        "were replaced by \ufffd.")
    return text, problems


def sniff_delimiter(text: str) -> str:
    """The delimiter of the header line (comma, semicolon, tab or bar); comma when unsure.

    Only the header is sniffed: data rows can be garbage, and a header names its columns with
    the delimiter between them.
    """
    header = re.split(r"[\r\n]", text.lstrip("\r\n")[:SNIFF_BYTES], maxsplit=1)[0]
    try:
        guess = csv.Sniffer().sniff(header, delimiters=DELIMITERS).delimiter
    except csv.Error:
        guess = ","
    # On one line the sniffer cannot weigh frequencies, and it prefers a comma even in
    # "date;event, note;doughs". The delimiter that names the most columns wins instead.
    widths = {d: len(next(csv.reader([header], delimiter=d), [])) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (widths[d], d == guess))
    return best if widths[best] > 1 else ","


class _LineTap:
    """Iterates over physical lines and remembers those taken since the last ``raw()``."""

    def __init__(self, lines: Iterable[str]):
        self._lines = iter(lines)
        self._taken: list[str] = []

    def __iter__(self) -> _LineTap:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._taken.append(line)
        return line

    def raw(self) -> str:
        """The text of the lines taken since the last call, without the final line break."""
        text = "".join(self._taken).rstrip("\r\n")
        self._taken.clear()
        return text


@dataclass(frozen=True)
class Record:
    """One CSV record: the physical line it starts on, its fields (None if unreadable), text."""

    line: int
    fields: list[str] | None
    raw: str
    error: str | None = None


def records(text: str, delimiter: str) -> Iterator[Record]:
    """Every CSV record of ``text`` with its physical starting line (quoted fields may span lines).

    A record the csv module cannot read (e.g. a field over its size limit) comes back with
    ``fields=None`` and the error, and reading goes on at the next line.
    """
    tap = _LineTap(io.StringIO(text, newline=""))
    reader = csv.reader(tap, delimiter=delimiter)
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Record(line, None, tap.raw(), f"the row cannot be read as CSV ({error})")
            continue
        yield Record(line, fields, tap.raw())


def normalise_name(name: str) -> str:
    """A header name for matching: lower case, runs of other characters as one underscore."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


# --- The reject report ----------------------------------------------------------------------

#: A cell starting with one of these is run as a formula by spreadsheets (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """``cell`` made inert for spreadsheets: a leading ``'`` before a formula character."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def report_csv(rejects: Iterable[Reject], filenames: dict[str, str] | None = None) -> str:
    """The reject report as CSV text: file, line, reason, raw row (spreadsheet-safe)."""
    filenames = filenames or {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["file", "line", "reason", "raw_row"])
    for reject in rejects:
        name = filenames.get(reject.source, reject.source)
        writer.writerow([neutralise(name), reject.line, neutralise(reject.reason),
                         neutralise(reject.raw)])
    return out.getvalue()
