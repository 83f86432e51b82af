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

from wtforms.validators import ValidationError

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


# --- Telling text from other files ----------------------------------------------------------

#: The first bytes of files people upload by mistake, with what to call them. Only signatures
#: no CSV header plausibly starts with; any other binary file holds a NUL byte.
XLSX_SIGNATURE = b"PK\x03\x04"
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
SIGNATURES = (
    (XLSX_SIGNATURE, "a zip archive or an XLSX workbook"),
    (OLE_SIGNATURE, "an old Excel (.xls) workbook"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"%PDF-", "a PDF document"),
    (b"\x7fELF", "a program"),
    (b"\x1f\x8b", "a gzip archive"),
)


def binary_kind(head: bytes) -> str | None:
    """What a file starting with ``head`` (its first ``SNIFF_BYTES``) holds if it is not text
    ("a PNG image", "binary data"), or None for text.

    A known signature names the kind of file; otherwise a NUL byte outside UTF-16 means binary
    data.
    """
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    kind = next((name for signature, name in SIGNATURES if head.startswith(signature)), None)
    if kind is None and b"\x00" in head[:SNIFF_BYTES]:
        kind = "binary data"
    return kind


def binary_problem(head: bytes, what: str = "The file") -> str | None:
    """Why a file starting with ``head`` is not CSV text, or None; ``what`` names the file
    ("The reservations export").

    Checked before any row is read, so an image or a program is refused with a reason instead
    of being read as a CSV file of garbage.
    """
    kind = binary_kind(head)
    if kind is None:
        return None
    return (f"{what} is not a CSV file: it holds {kind}. Save it as CSV (comma-separated "
            "values) and upload that.")


def text_upload(form, field) -> None:
    """A WTForms validator for a CSV file field: refuse an image, a workbook or a program (422)
    before anything is stored, instead of reading it as rows of garbage later."""
    if field.data:
        head = field.data.stream.read(SNIFF_BYTES)
        field.data.stream.seek(0)
        problem = binary_problem(head)
        if problem:
            raise ValidationError(problem)


# --- Reading CSV text -----------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, list[str]]:
    """Text from bytes: UTF-16 with a BOM, UTF-8 (with or without BOM), else Latin-1.

    Latin-1 maps every byte, so decoding never fails; a note says when it was needed. A file
    cut off in the middle of a character keeps its encoding, with the broken end replaced by
    U+FFFD: reading a whole UTF-8 file as Latin-1 for its last byte would garble every accented
    letter. NUL characters (no database text column accepts them) become U+FFFD.
    """
    problems = []
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # A UTF-16 BOM does not begin any plausible Latin-1 or UTF-8 text: the file is UTF-16.
        text = data.decode("utf-16", errors="replace")
        if "\ufffd" in text and "\ufffd" not in data.decode("utf-16", errors="ignore"):
            problems.append("Some bytes could not be read as UTF-16 (was the file cut off?); "
                            "they were replaced by \ufffd.")
    else:
        text = _utf8_or_latin1(data, problems)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
        problems.append("The file contains NUL characters (is it really a CSV file?); they "
                        "were replaced by \ufffd.")
    return text, problems


def _utf8_or_latin1(data: bytes, problems: list[str]) -> str:
    """UTF-8 (BOM dropped), a UTF-8 file cut off mid-character, or else Latin-1; notes added."""
    body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        # Cut off mid-character: only the end fails, after other multi-byte characters that
        # read well (a lone accented byte at the end of ASCII text is more likely Latin-1).
        cut = error.end == len(body) and error.reason == "unexpected end of data"
        if cut and not body[:error.start].isascii():
            problems.append("The file ends in the middle of a character (was it cut off?); "
                            "its last character was replaced by \ufffd.")
            return body[:error.start].decode("utf-8") + "\ufffd"
    problems.append("The file is not UTF-8, so it was read as Latin-1 (Western European); "
                    "check accented letters in the preview.")
    return body.decode("latin-1")


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


def repeated_names(names: list[str]) -> dict[str, list[int]]:
    """Each non-empty name that appears more than once in ``names``, with its columns (1-based).

    Importers use it on normalised header names: a header given twice must never be mapped
    silently to one of its columns.
    """
    columns: dict[str, list[int]] = {}
    for position, name in enumerate(names, start=1):
        if name:
            columns.setdefault(name, []).append(position)
    return {name: found for name, found in columns.items() if len(found) > 1}


def column_list(positions: list[int]) -> str:
    """``2, 5 and 7``: columns for a message."""
    text = [str(position) for position in positions]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " and " + text[-1]


# --- The reject report ----------------------------------------------------------------------

#: A cell starting with one of these is run as a formula by spreadsheets (CSV injection): the
#: OWASP list, and NUL as OWASP ASVS 5 (1.2.10) adds.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\x00")


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
