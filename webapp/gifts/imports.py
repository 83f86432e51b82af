"""Importing gift items from messy sources: CSV and XLSX price lists, exports and sheets.

The flow (the web page and ``flask gifts import`` share every step):

1. **Store and look** (``store_upload``, ``read_preview``): the upload is saved under the
   instance folder (``instance/gift-imports/<id>.csv|xlsx``), its type is told by its content
   (an XLSX workbook is a zip; anything else must be text), and its header and first rows are
   read for the mapping step. A workbook whose parts unpack to far more than a price list
   (a zip bomb) is refused before openpyxl opens it.
2. **Map** (``auto_mapping``, ``mapping_from_profile``, ``mapping_errors``): each source column
   goes to an item field or is ignored. Headers match fields case-insensitively, trimmed, with
   synonyms (Product/Item/Title -> name, Cost/Price -> unit price, Supplier/Vendor -> vendor...).
   A header that appears twice keeps its first column under its own name and the later ones
   as "Price (2)", "Price (3)": they can be mapped by hand, and are otherwise reported unmapped.
   A profile that maps a repeated header does not import in one click: the mapping step opens
   and says why.
   An empty header becomes "Column N" (N counted from 1).
3. **Import** (``import_task``, the job ``gifts-import``; ``execute_import`` for the CLI): the
   rows are read as a stream (never the whole file in memory), parsed, checked for duplicates
   and written in batches of ``BATCH_SIZE`` with bulk inserts, one commit per batch, so memory
   stays flat at 100k rows. (XLSX: rows stream too, but openpyxl keeps a workbook's table of
   distinct texts, its shared strings, in memory; that grows with the distinct text, not rows.)

Rows and lines: line numbers are those the user sees in the file (the header is line 1; a CSV
record with a quoted line break is reported at its first line; an XLSX row is its row number).
A blank row is not an item and is passed over. Every other row becomes an item, a merge, a
skipped duplicate, or an ``ImportReject`` with its line, the reason and its cells; nothing is
dropped silently, and ``total_rows == added + merged + skipped_duplicates + rejected``.

Duplicates: a row is the same item as another when their SKUs are equal, or when their
normalised name and vendor (``models.name_key``) are equal and at least one of the two has no
SKU (two SKUs that differ are two products, e.g. two sizes). Rows are compared with the items
already stored and with the earlier rows of the same file. Policy per import: ``skip`` leaves
the earlier item as it is; ``merge`` copies the row's non-empty fields onto it.

Failure: a file that cannot be used at all (no header, name or price not mapped, not a
workbook) fails before anything is written. A file that breaks part-way (a damaged workbook)
or an unexpected error keeps every batch already committed: those rows are complete items,
the counts say how many, and the import is marked failed with the line where it stopped.
Importing the same file again with ``skip`` then adds only the rows that are still missing.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import math
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import func, insert, or_, select, update

from webapp import jobs
from webapp.auth.models import utcnow
from webapp.csv_import import (
    OLE_SIGNATURE,
    SNIFF_BYTES,
    XLSX_SIGNATURE,
    binary_kind,
    neutralise,
    sniff_delimiter,
)
from webapp.extensions import db
from webapp.gifts.cli import gifts_cli
from webapp.gifts.models import (
    CATEGORY_MAX,
    NAME_MAX,
    SKU_MAX,
    URL_MAX,
    VENDOR_MAX,
    ImportProfile,
    ImportReject,
    Item,
    ItemImport,
    name_key,
    new_public_id,
)
from webapp.gifts.prices import parse_price

log = logging.getLogger(__name__)

JOB_KIND = "gifts-import"
#: Rows written per transaction: big enough for fast bulk inserts, small enough for flat memory
#: and well under every database's limit on bound parameters in one ``IN (...)``.
BATCH_SIZE = 1000
#: Rows shown on the mapping step.
PREVIEW_ROWS = 5
#: A file with more columns than this is not a price list.
MAX_COLUMNS = 200
#: Largest upload (the app refuses any request over MAX_CONTENT_LENGTH, 32 MB, before this).
MAX_FILE_BYTES = 30 * 1024 * 1024
#: Rejects listed on the result page and by the CLI (the reject file has them all).
LISTED_REJECTS = 20
UPLOAD_FOLDER = "gift-imports"
FILENAME_MAX = 255
#: A workbook unpacking to more than this in all is refused before openpyxl opens it.
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
#: openpyxl reads parts other than worksheets whole (its shared strings take about 8 times
#: their size in memory), so each is capped; a 100k-row price list needs a fraction of this.
MAX_PART_BYTES = 64 * 1024 * 1024
#: Bytes Windows-1252 leaves undefined; a file with one of them is read as Latin-1.
CP1252_UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")
DUPLICATE_POLICIES = ("skip", "merge")
STATUSES = ("mapping", "queued", "running", "done", "failed")

#: The item fields a column can be mapped to, in the order the mapping step offers them.
FIELDS = {
    "name": "Name", "unit_price": "Unit price", "vendor": "Vendor", "sku": "SKU",
    "description": "Description", "category": "Category", "image_url": "Image URL",
    "local": "Local", "sustainable": "Sustainable", "brandable": "Brandable",
    "perishable": "Perishable",
}
REQUIRED_FIELDS = ("name", "unit_price")
FLAG_FIELDS = ("local", "sustainable", "brandable", "perishable")
TEXT_LIMITS = {"name": NAME_MAX, "vendor": VENDOR_MAX, "category": CATEGORY_MAX,
               "sku": SKU_MAX, "image_url": URL_MAX}
#: Headers (as ``header_key`` writes them) that map to each field without a profile.
SYNONYMS = {
    "name": ("name", "product", "item", "title", "product name", "item name"),
    "unit_price": ("unit price", "price", "cost", "unit cost", "amount", "price per unit"),
    "vendor": ("vendor", "supplier", "partner", "brand", "vendor name", "supplier name"),
    "sku": ("sku", "code", "item code", "product code", "ref", "reference"),
    "description": ("description", "details", "desc"),
    "category": ("category", "type", "department"),
    "image_url": ("image url", "image", "picture", "image link", "photo"),
    "local": ("local",),
    "sustainable": ("sustainable", "eco"),
    "brandable": ("brandable",),
    "perishable": ("perishable",),
}
HEADER_FIELDS = {synonym: name for name, synonyms in SYNONYMS.items() for synonym in synonyms}
TRUE_WORDS = frozenset({"yes", "y", "true", "t", "1", "x", "oui", "ja"})
FALSE_WORDS = frozenset({"no", "n", "false", "f", "0", "non", "nein"})
URL_RE = re.compile(r"https?://\S+", re.IGNORECASE)

ProgressCallback = Callable[[int, str], None]


class ImportFileError(ValueError):
    """The file cannot be imported (unreadable, no header, name or price not mapped)."""


# --- Headers and mappings -------------------------------------------------------------------


def header_key(header: str) -> str:
    """A header as it is matched: case folded, without a "(unit)" note, words single-spaced.

    "Unit_Price (EUR)", "unit price" and " UNIT-PRICE " all give "unit price".
    """
    text = re.sub(r"\([^)]*\)", " ", header.casefold())
    return " ".join(re.sub(r"[\s_\-./:#]+", " ", text).split())


def unique_headers(cells: list[str]) -> tuple[list[str], list[str]]:
    """The header row with every column named once, and notes on what was renamed.

    An empty header is "Column N"; a repeated one (any case) is suffixed " (2)", " (3)".
    """
    headers: list[str] = []
    seen: set[str] = set()
    repeated: list[str] = []
    for position, cell in enumerate(cells, start=1):
        base = " ".join(cell.split()) or f"Column {position}"
        header, count = base, 1
        while header.casefold() in seen:
            count += 1
            header = f"{base} ({count})"
        if count > 1:
            repeated.append(f"{base!r} (column {position}) is called {header!r}")
        seen.add(header.casefold())
        headers.append(header)
    notes = []
    if repeated:
        notes.append("Some headers appear more than once; the later columns were renamed: "
                     + "; ".join(repeated[:10]) + (" …" if len(repeated) > 10 else "") + ".")
    return headers, notes


def auto_mapping(headers: list[str]) -> dict[str, str]:
    """``{header: field}`` for the headers that name a field or a synonym; first one wins."""
    mapping: dict[str, str] = {}
    for header in headers:
        field_name = HEADER_FIELDS.get(header_key(header))
        if field_name is not None and field_name not in mapping.values():
            mapping[header] = field_name
    return mapping


def mapping_from_profile(profile_mapping: dict, headers: list[str]) -> tuple[dict[str, str],
                                                                             list[str]]:
    """A profile's mapping applied to this file's headers (matched case-insensitively, trimmed).

    Returns ``(mapping, missing)``: ``missing`` lists the profile's columns this file lacks.
    """
    by_key = {" ".join(header.split()).casefold(): header for header in headers}
    mapping, missing = {}, []
    for source, field_name in (profile_mapping or {}).items():
        header = by_key.get(" ".join(str(source).split()).casefold())
        if header is None:
            missing.append(str(source))
        elif field_name in FIELDS:
            mapping[header] = field_name
    return mapping, missing


def mapping_errors(mapping: dict[str, str], headers: list[str]) -> list[str]:
    """What is wrong with a mapping: unknown columns or fields, a field mapped twice, name or
    unit price not mapped. Empty when it can be used."""
    errors = [f"The file has no column {header!r}." for header in mapping if header not in headers]
    errors += [f"{field_name!r} is not an item field." for field_name in mapping.values()
               if field_name not in FIELDS]
    for field_name, label in FIELDS.items():
        columns = [header for header, target in mapping.items() if target == field_name]
        if len(columns) > 1:
            errors.append(f"{label} is mapped to {len(columns)} columns ("
                          + ", ".join(columns) + "); map it to one.")
        elif not columns and field_name in REQUIRED_FIELDS:
            errors.append(f"Map one column to {label}: every item needs it.")
    return errors


def unmapped_columns(mapping: dict[str, str], headers: list[str]) -> list[str]:
    """The headers no field is mapped to, in file order."""
    return [header for header in headers if header not in mapping]


# --- Reading files as streams of rows -------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One row: its line as the user sees it, its cells as text, and why it is unreadable."""

    line: int
    cells: list[str]
    error: str | None = None

    @property
    def blank(self) -> bool:
        """True for an empty row (or one of empty cells): not an item, passed over."""
        return self.error is None and not any(cell.strip() for cell in self.cells)


@dataclass
class Table:
    """An open file: its (unique) headers, notes, and the data rows still to read."""

    headers: list[str]
    rows: Iterator[Row]
    notes: list[str] = field(default_factory=list)
    #: Headers the file gives more than once (their later columns were renamed).
    repeated: list[str] = field(default_factory=list)
    #: How far through the file reading is, 0 to 1 (for progress).
    done: Callable[[], float] = lambda: 0.0


def sniff_kind(path: Path) -> str:
    """"xlsx" or "csv", told by the content (not the name); ImportFileError for anything else."""
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head.strip():
        raise ImportFileError("The file is empty.")
    if head.startswith(OLE_SIGNATURE):
        raise ImportFileError("This is an old Excel (.xls) workbook: save it as .xlsx or CSV "
                              "and upload that.")
    if head.startswith(XLSX_SIGNATURE):
        try:
            with zipfile.ZipFile(path) as archive:
                members = archive.infolist()
        # zipfile reports a damaged archive in many ways (BadZipFile, NotImplementedError for
        # a garbled version field, ValueError, EOFError...): each one means "damaged".
        except Exception as error:  # noqa: BLE001 - reported to the user, not ignored
            raise ImportFileError(f"The file looks like an XLSX workbook but is damaged "
                                  f"({error}); save it again and upload it.") from None
        if "xl/workbook.xml" not in {member.filename for member in members}:
            raise ImportFileError("The file is a zip archive but not an XLSX workbook.")
        check_unpacked_sizes(members)
        return "xlsx"
    kind = binary_kind(head)
    if kind:
        raise ImportFileError(f"The file is neither CSV text nor an XLSX workbook: it holds "
                              f"{kind}. Save it as CSV or XLSX and upload that.")
    return "csv"


def check_unpacked_sizes(members: list[zipfile.ZipInfo]) -> None:
    """ImportFileError for a workbook that unpacks to far more than a price list (a zip bomb).

    openpyxl streams the worksheets in read-only mode but reads every other part (shared
    strings, styles...) whole into memory, so those are capped one by one and everything
    together. The sizes are those the archive declares; zipfile never unpacks more than that.
    """
    for member in members:
        if not member.filename.startswith("xl/worksheets/") and member.file_size > MAX_PART_BYTES:
            raise ImportFileError(
                f"The workbook's part {member.filename[:80]!r} unpacks to "
                f"{member.file_size / 2**20:,.0f} MB (at most {MAX_PART_BYTES // 2**20} MB): the "
                "file is damaged or not a price list. Save it as CSV and upload that.")
    total = sum(member.file_size for member in members)
    if total > MAX_UNPACKED_BYTES:
        raise ImportFileError(
            f"The workbook unpacks to {total / 2**20:,.0f} MB (at most "
            f"{MAX_UNPACKED_BYTES // 2**20} MB): the file is damaged or not a price list. Save "
            "it as CSV, or split it, and upload that.")


def cell_text(value: object) -> str:
    """A cell of any type as text: numbers without float noise, dates in ISO form, "" for none."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")  # no database text column accepts NUL
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        # repr is the shortest text that reads back the same float: 12.5, not 12.4999999.
        return format(Decimal(repr(value)), "f") if math.isfinite(value) else repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def csv_encoding(path: Path) -> tuple[str, list[str]]:
    """The file's encoding, found by streaming it: UTF-16 (BOM), UTF-8, else Western European.

    ``webapp.csv_import.decode`` makes the same choice from bytes in memory; this reads in
    chunks so that a 100k-row file is never held whole.
    """
    with open(path, "rb") as handle:
        head = handle.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16", []
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        multibyte = False  # has a multi-byte character read well yet?
        try:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                multibyte = multibyte or not decoder.decode(chunk).isascii()
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            # Cut off mid-character: only the end fails, after good multi-byte characters
            # (the reader replaces the broken end; see csv_import.decode).
            if multibyte and error.reason == "unexpected end of data":
                return "utf-8-sig", ["The file ends in the middle of a character (was it cut "
                                     "off?); its last character was replaced by \ufffd."]
            return _western_encoding(handle), [
                "The file is not UTF-8, so it was read as Latin-1 (Western European, "
                "Windows-1252); check accented letters in the preview."]
    return "utf-8-sig", []  # utf-8-sig reads UTF-8 with or without a BOM


def _western_encoding(handle) -> str:
    """Windows-1252 when every byte is defined there, else Latin-1 (which maps every byte).

    Windows-1252 is Latin-1 with printable characters (€, ’, œ...) instead of control codes at
    0x80-0x9F; spreadsheets on Windows write it, and "12,50 €" must keep its euro sign.
    """
    handle.seek(0)
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        if any(byte in chunk for byte in CP1252_UNDEFINED):
            return "latin-1"
    return "cp1252"


def _csv_rows(handle: io.TextIOWrapper, delimiter: str) -> Iterator[Row]:
    """Every CSV record with its first physical line; an unreadable one as a Row with error."""
    taken: list[str] = []

    def lines() -> Iterator[str]:
        for line in handle:
            line = line.replace("\x00", "\ufffd")
            taken.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter)
    while True:
        line = reader.line_num + 1
        taken.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raw = "".join(taken).rstrip("\r\n")
            yield Row(line, [raw], f"the row cannot be read as CSV ({error})")
            continue
        yield Row(line, cells)


@contextmanager
def _open_csv(path: Path) -> Iterator[tuple[Iterator[Row], Callable[[], float], list[str]]]:
    encoding, notes = csv_encoding(path)
    size = max(os.path.getsize(path), 1)
    # "replace" only ever acts on what csv_encoding allowed: a UTF-16 or UTF-8 file's cut end.
    with open(path, encoding=encoding, errors="replace", newline="") as handle:
        delimiter = sniff_delimiter(handle.read(SNIFF_BYTES))
        handle.seek(0)
        yield _csv_rows(handle, delimiter), lambda: handle.buffer.tell() / size, notes


@contextmanager
def _open_xlsx(path: Path) -> Iterator[tuple[Iterator[Row], Callable[[], float], list[str]]]:
    import openpyxl

    # openpyxl reports a damaged workbook with many exception types (zipfile, zlib, XML parser,
    # KeyError, ValueError...). Each is turned into one clear ImportFileError; none is ignored.
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - reported to the user, see above
        raise ImportFileError(f"The workbook cannot be read ({type(error).__name__}: "
                              f"{error}); save it again as .xlsx or CSV.") from None
    try:
        if not workbook.worksheets:
            raise ImportFileError("The workbook has no sheet.")
        sheet = workbook.worksheets[0]
        try:
            total = max(int(sheet.max_row or 0), 1)
        except Exception:  # noqa: BLE001 - a missing or odd dimension only costs the progress
            total = 1
        position = [0]

        def rows() -> Iterator[Row]:
            values = sheet.iter_rows(values_only=True)
            while True:
                try:
                    cells = next(values)
                except StopIteration:
                    return
                except Exception as error:  # noqa: BLE001 - see above
                    raise ImportFileError(
                        f"The workbook is damaged after row {position[0]} "
                        f"({type(error).__name__}: {error}).") from None
                position[0] += 1
                yield Row(position[0], [cell_text(value) for value in cells])

        yield rows(), lambda: min(position[0] / total, 1.0), []
    finally:
        workbook.close()


@contextmanager
def open_table(path: Path) -> Iterator[Table]:
    """The file at ``path`` opened as a ``Table`` (header read); ImportFileError if unusable."""
    opener = _open_xlsx if sniff_kind(path) == "xlsx" else _open_csv
    with opener(path) as (rows, done, notes):
        header = next((row for row in rows if not row.blank), None)
        if header is None:
            raise ImportFileError("The file has no header row.")
        if header.error:
            raise ImportFileError(f"The header (line {header.line}) cannot be read: "
                                  f"{header.error}.")
        if len(header.cells) > MAX_COLUMNS:
            raise ImportFileError(f"The header has {len(header.cells)} columns (at most "
                                  f"{MAX_COLUMNS}): is this the right file and delimiter?")
        headers, header_notes = unique_headers(header.cells)
        yield Table(headers, rows, notes + header_notes, done=done,
                    repeated=repeated_headers(header.cells, headers))


def repeated_headers(cells: list[str], headers: list[str]) -> list[str]:
    """The headers ``unique_headers`` had to rename, as the file writes them (once each)."""
    renamed = {" ".join(cell.split()).casefold(): " ".join(cell.split())
               for cell, header in zip(cells, headers, strict=True)
               if cell.strip() and header != " ".join(cell.split())}
    return list(renamed.values())


@dataclass(frozen=True)
class Preview:
    """What the mapping step shows: headers, the first rows, and notes on the file."""

    headers: list[str]
    rows: list[list[str]]
    notes: list[str]
    #: Headers the file gives more than once (see ``Table.repeated``).
    repeated: list[str] = field(default_factory=list)


def read_preview(path: Path, count: int = PREVIEW_ROWS) -> Preview:
    """The header and the first ``count`` non-blank rows of a file; ImportFileError if unusable."""
    with open_table(path) as table:
        rows = []
        for row in table.rows:
            if not row.blank:
                rows.append(row.cells)
            if len(rows) >= count:
                break
        width = len(table.headers)
        return Preview(table.headers, [(cells + [""] * width)[:width] for cells in rows],
                       table.notes, table.repeated)


# --- Parsing a row --------------------------------------------------------------------------


def parse_flag(label: str, text: str) -> bool | None:
    """yes/no, true/false, 1/0 or x (any case); None when empty; ValueError otherwise."""
    word = text.strip().casefold()
    if not word:
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{label} must be yes/no, true/false, 1/0 or x, not {_short(text)!r}")


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_row(cells: list[str], columns: dict[str, int], labels: dict[str, str],
              width: int) -> tuple[dict[str, object], list[str]]:
    """The item fields a row gives (only non-empty ones), and every problem with it.

    ``columns`` is field -> position, ``labels`` field -> the file's header (reasons use the
    user's words), ``width`` the header's number of columns.
    """
    errors: list[str] = []
    extra = [cell for cell in cells[width:] if cell.strip()]
    if extra:
        errors.append(f"the row has {len(cells)} values but the header has {width} columns")
    text = {name: " ".join(cells[i].split()) if i < len(cells) else ""
            for name, i in columns.items()}
    if "description" in columns and columns["description"] < len(cells):
        text["description"] = cells[columns["description"]].strip()  # keep its line breaks
    values: dict[str, object] = {}
    for name, value in text.items():
        if not value:
            continue
        try:
            values[name] = _parse_field(name, labels[name], value)
        except ValueError as error:
            errors.append(str(error))
    if not text.get("name"):
        errors.append(f"{labels['name']} is empty")
    elif "name" in values:
        # The keys duplicates are found by, computed once per row (they are costly).
        values["name_key"] = name_key(values["name"])
        values["vendor_key"] = _vendor_key(values.get("vendor", ""))
        if not values["name_key"]:
            errors.append(f"{labels['name']} has no letters or digits")
    if not text.get("unit_price"):
        errors.append(f"{labels['unit_price']} is empty")
    return values, errors


def _parse_field(name: str, label: str, value: str) -> object:
    if name == "unit_price":
        try:
            return parse_price(value)
        except ValueError as error:
            raise ValueError(f"{label}: {error}") from None
    if name in FLAG_FIELDS:
        return parse_flag(label, value)
    if name in TEXT_LIMITS and len(value) > TEXT_LIMITS[name]:
        raise ValueError(f"{label} is longer than {TEXT_LIMITS[name]} characters")
    if name == "image_url" and not URL_RE.fullmatch(value):
        raise ValueError(f"{label} must be a web address starting with http:// or https://")
    return value


# --- Importing -------------------------------------------------------------------------------


@dataclass
class Counts:
    """What an import did so far."""

    total_rows: int = 0
    added: int = 0
    merged: int = 0
    skipped_duplicates: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts by name (the ItemImport columns of the same names)."""
        return dict(self.__dict__)


class _Batch:
    """The rows of one batch: new items, merges into stored items, rejects; then one write."""

    def __init__(self, record: ItemImport, on_duplicate: str, counts: Counts):
        self.record, self.on_duplicate, self.counts = record, on_duplicate, counts
        self.source = record.filename[:FILENAME_MAX]
        self.rows: list[tuple[int, dict]] = []
        self.rejects: list[dict] = []
        self.now = utcnow()

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejects)

    def reject(self, row: Row, reasons: list[str]) -> None:
        """Keep a bad row with its reasons."""
        self.rejects.append({"import_id": self.record.id, "line": row.line,
                             "reason": "; ".join(reasons), "cells": row.cells})
        self.counts.rejected += 1

    def add(self, line: int, values: dict) -> None:
        """Queue a good row; duplicates are settled when the batch is written."""
        self.rows.append((line, values))

    def write(self) -> None:
        """Settle duplicates against stored items and each other, write everything, commit."""
        stored, pending = self._stored_index(), _Index()
        self.now = utcnow()
        new: list[dict] = []
        merges: dict[int, dict] = {}
        for line, values in self.rows:
            keys = (values["name_key"], values["vendor_key"])
            sku = values.get("sku")
            # A SKU match first; then by name, the oldest item: a stored one (lowest id)
            # before one of this batch.
            match = next((found for found in (
                stored.find_sku(sku), pending.find_sku(sku), stored.find_name(sku, keys),
                pending.find_name(sku, keys)) if found is not None), None)
            if match is None:
                item = self._new_item(line, values, keys)
                new.append(item)
                pending.remember(item, item["sku"], keys)
                self.counts.added += 1
            elif self.on_duplicate == "skip":
                self.counts.skipped_duplicates += 1
            else:
                self.counts.merged += 1
                fields = _merged_fields(values)
                if isinstance(match, dict):
                    match.update(fields)
                    pending.remember(match, match["sku"], keys)
                else:
                    merges.setdefault(match, {}).update(fields)
                    stored.remember(match, sku, keys)
        # Core inserts (executemany): the ORM's bulk path costs more than the rows themselves.
        if new:
            db.session.execute(insert(Item.__table__), new)
        _bulk_update(merges)
        if self.rejects:
            db.session.execute(insert(ImportReject.__table__), self.rejects)
        db.session.execute(update(ItemImport).where(ItemImport.id == self.record.id)
                           .values(**self.counts.as_dict()))
        db.session.commit()
        self.rows.clear()
        self.rejects.clear()

    def _new_item(self, line: int, values: dict, keys: tuple[str, str]) -> dict:
        return {"sku": values.get("sku"), "name": values["name"], "name_key": keys[0],
                "description": values.get("description", ""), "vendor": values.get("vendor", ""),
                "vendor_key": keys[1], "category": values.get("category", ""),
                "unit_price": values["unit_price"], "image_url": values.get("image_url"),
                **{flag: bool(values.get(flag, False)) for flag in FLAG_FIELDS},
                "source": self.source, "source_row": line, "import_id": self.record.id,
                "status": "pending", "skipped": False, "uncertainty": 1.0,
                "created_at": self.now, "updated_at": self.now}

    def _stored_index(self) -> _Index:
        """The stored items this batch's rows may duplicate: three grouped queries, each
        returning at most one item (the oldest) per SKU or per name and vendor."""
        index = _Index()
        skus = {values["sku"] for _, values in self.rows if values.get("sku")}
        names = {values["name_key"] for _, values in self.rows}
        names_without_sku = {values["name_key"] for _, values in self.rows
                             if not values.get("sku")}
        first = func.min(Item.id)
        if skus:
            query = select(Item.sku, first).where(Item.sku.in_(skus)).group_by(Item.sku)
            index.by_sku.update((sku, i) for sku, i in db.session.execute(query))
        keys = (Item.name_key, Item.vendor_key)
        if names:
            query = (select(*keys, first).where(Item.name_key.in_(names),
                                                or_(Item.sku.is_(None), Item.sku == ""))
                     .group_by(*keys))
            index.first_without_sku.update(((k, v), i) for k, v, i in db.session.execute(query))
        if names_without_sku:
            query = (select(*keys, first).where(Item.name_key.in_(names_without_sku))
                     .group_by(*keys))
            index.first.update(((k, v), i) for k, v, i in db.session.execute(query))
        return index


class _Index:
    """Where to find the earlier item a row duplicates (see the module's docstring).

    An item is an id (stored) or the dict of a new item of this batch. ``first`` is the
    oldest item per (name key, vendor key), ``first_without_sku`` the oldest with no SKU.
    """

    def __init__(self) -> None:
        self.by_sku: dict[str, object] = {}
        self.first: dict[tuple[str, str], object] = {}
        self.first_without_sku: dict[tuple[str, str], object] = {}

    def find_sku(self, sku: str | None) -> object | None:
        """The item with this SKU, if any."""
        return self.by_sku.get(sku) if sku else None

    def find_name(self, sku: str | None, keys: tuple[str, str]) -> object | None:
        """The oldest item with this name and vendor that the row may duplicate: any item for
        a row without SKU, only one without SKU for a row with one."""
        return (self.first_without_sku if sku else self.first).get(keys)

    def remember(self, item: object, sku: str | None, keys: tuple[str, str]) -> None:
        """Note ``item`` (new, or just merged: it may have gained a SKU)."""
        self.first.setdefault(keys, item)
        if not sku:
            self.first_without_sku.setdefault(keys, item)
            return
        self.by_sku.setdefault(sku, item)
        without = self.first_without_sku.get(keys)
        if without is item or (not isinstance(item, dict) and without == item):
            del self.first_without_sku[keys]  # it has a SKU now


def _merged_fields(values: dict) -> dict:
    """The fields a merge writes: the row's non-empty ones (with their keys)."""
    merged = dict(values)
    if "vendor" not in values:
        del merged["vendor_key"]  # no vendor given: the stored one stays, and its key
    return merged


#: Vendors repeat on every row; their keys are cached (bounded, so memory stays flat).
_vendor_key = lru_cache(maxsize=4096)(name_key)


def _bulk_update(merges: dict[int, dict]) -> None:
    """UPDATE by primary key; rows are grouped by the columns they set (executemany needs it)."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    now = utcnow()
    for item_id, values in merges.items():
        groups.setdefault(tuple(sorted(values)), []).append(
            {"id": item_id, **values, "updated_at": now})
    for group in groups.values():
        db.session.execute(update(Item), group)


def resolve_columns(mapping: dict[str, str], headers: list[str]) -> dict[str, int]:
    """field -> column position; ImportFileError when the mapping does not fit the file."""
    errors = mapping_errors(mapping, headers)
    if errors:
        raise ImportFileError(" ".join(errors) + " Columns in the file: "
                              + ", ".join(headers[:30]) + (" …" if len(headers) > 30 else ""))
    return {field_name: headers.index(header) for header, field_name in mapping.items()}


def run_import(record: ItemImport, path: Path,
               progress: ProgressCallback | None = None) -> Counts:
    """Import the rows of ``path`` as ``record`` says (mapping, on_duplicate), batch by batch.

    Raises ImportFileError when the file cannot be used (nothing written) or breaks part-way
    (the batches before stay committed, with their counts on ``record``).
    """
    counts = Counts()
    with open_table(path) as table:
        columns = resolve_columns(record.mapping or {}, table.headers)
        labels = {name: table.headers[i] for name, i in columns.items()}
        batch = _Batch(record, record.on_duplicate, counts)
        try:
            for row in table.rows:
                if row.blank:
                    continue
                counts.total_rows += 1
                if row.error:
                    batch.reject(row, [row.error])
                else:
                    values, errors = parse_row(row.cells, columns, labels, len(table.headers))
                    if errors:
                        batch.reject(row, errors)
                    else:
                        batch.add(row.line, values)
                if len(batch) >= BATCH_SIZE:
                    batch.write()
                    if progress is not None:
                        progress(int(99 * table.done()),
                                 f"Imported {counts.total_rows:,} rows "
                                 f"({counts.added:,} new, {counts.rejected:,} rejected)")
        except ImportFileError:
            batch.write()  # the rows read before the damage are good: keep them with the rest
            raise
        batch.write()
    return counts


# --- Records, the job and the upload folder -------------------------------------------------


def upload_folder() -> Path:
    """Where uploads wait for their job (created when needed): ``GIFTS_IMPORT_FOLDER`` if set,
    else ``<instance>/gift-imports``. With RQ workers on other hosts it must be shared."""
    folder = Path(current_app.config.get("GIFTS_IMPORT_FOLDER")
                  or Path(current_app.instance_path) / UPLOAD_FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def basename(name: str | None) -> str:
    """The file's own name: some browsers send a whole path (``C:\\fakepath\\items.csv``)."""
    return (name or "").replace("\\", "/").rsplit("/", 1)[-1][:FILENAME_MAX] or "upload"


def store_upload(upload, created_by: str | None, on_duplicate: str,
                 profile: ImportProfile | None = None) -> tuple[ItemImport, Preview]:
    """Save an uploaded file (a werkzeug FileStorage) and make its import, in status "mapping".

    The mapping is the profile's, or the automatic one. Raises ImportFileError (and keeps
    nothing) when the file cannot be used.
    """
    import_id = new_public_id()
    staging = upload_folder() / f"{import_id}.upload"
    upload.save(staging)
    try:
        kind = sniff_kind(staging)
        path = staging.with_suffix(f".{kind}")
        os.replace(staging, path)
    except ImportFileError:
        staging.unlink(missing_ok=True)
        raise
    try:
        preview = read_preview(path)
    except ImportFileError:
        path.unlink(missing_ok=True)
        raise
    record = new_import(basename(upload.filename), preview.headers, created_by, on_duplicate,
                        profile, import_id=import_id)
    record.stored_path = str(path)
    db.session.commit()
    return record, preview


def new_import(filename: str, headers: list[str], created_by: str | None, on_duplicate: str,
               profile: ImportProfile | None = None, import_id: str | None = None) -> ItemImport:
    """An import in status "mapping", with the profile's or the automatic mapping (uncommitted)."""
    if profile is not None:
        mapping, _missing = mapping_from_profile(profile.mapping, headers)
    else:
        mapping = auto_mapping(headers)
    record = ItemImport(id=import_id or new_public_id(), filename=filename,
                        created_by=created_by, status="mapping", headers=headers,
                        mapping=mapping, unmapped=unmapped_columns(mapping, headers),
                        on_duplicate=on_duplicate if on_duplicate in DUPLICATE_POLICIES
                        else "skip", profile_id=profile.id if profile else None)
    db.session.add(record)
    return record


def set_mapping(record: ItemImport, mapping: dict[str, str], on_duplicate: str) -> None:
    """Record the mapping chosen for ``record`` (checked by the caller; not committed)."""
    record.mapping = dict(mapping)
    record.unmapped = unmapped_columns(mapping, record.headers or [])
    record.on_duplicate = on_duplicate


def start_import(record: ItemImport) -> ItemImport:
    """Queue the job that imports ``record``; if the queue is unavailable the import fails."""
    record.status = "queued"
    db.session.commit()
    try:
        job, _ = jobs.enqueue(JOB_KIND, {"import_id": record.id},
                              dedupe_key=f"{JOB_KIND}:{record.id}",
                              created_by=record.created_by, subject=record.id)
    except jobs.QueueUnavailable as error:
        _fail(record.id, str(error))
        discard_file(record)
        db.session.refresh(record)
        return record
    record.job_id = job.id
    db.session.commit()
    return record


def execute_import(record: ItemImport, path: Path,
                   progress: ProgressCallback | None = None) -> dict:
    """Run an import now (the job's and the CLI's path): running -> done or failed.

    Returns a summary. A file that cannot be used marks the import failed (returned, not
    raised); an unexpected error marks it failed and is raised for the job runner to record.
    """
    import_id = record.id
    record.status, record.error = "running", None
    db.session.commit()
    if progress is not None:
        progress(0, f"Reading {record.filename}")
    try:
        counts = run_import(record, path, progress)
    except ImportFileError as error:
        db.session.rollback()
        message = _failure_message(import_id, str(error))
        _fail(import_id, message)
        return {"status": "failed", "error": message}
    except Exception as error:
        db.session.rollback()
        _fail(import_id, _failure_message(
            import_id, f"the import stopped on an unexpected error ({type(error).__name__}: "
                       f"{error})"))
        raise
    db.session.execute(update(ItemImport).where(ItemImport.id == import_id)
                       .values(status="done", error=None, **counts.as_dict()))
    db.session.commit()
    if progress is not None:
        progress(100, f"Done: {counts.added:,} added, {counts.merged:,} merged, "
                      f"{counts.skipped_duplicates:,} duplicates skipped, "
                      f"{counts.rejected:,} rejected")
    return {"status": "done", **counts.as_dict()}


def _failure_message(import_id: str, reason: str) -> str:
    """The reason, and what stays: the rows committed before the failure are kept."""
    kept = db.session.execute(
        select(ItemImport.added, ItemImport.merged).where(ItemImport.id == import_id)).first()
    reason = reason[:1].upper() + reason[1:]
    if kept and (kept.added or kept.merged):
        return (f"{reason} The {kept.added + kept.merged:,} rows imported before that are "
                "kept (see the counts); fix the file and import it again with "
                "\"skip duplicates\" to add the rest.")
    return f"{reason} Nothing was imported."


def _fail(import_id: str, error: str) -> None:
    db.session.execute(update(ItemImport).where(ItemImport.id == import_id)
                       .values(status="failed", error=error))
    db.session.commit()


def discard_file(record: ItemImport) -> None:
    """Remove the upload of ``record`` (its rows are in the database, or never will be)."""
    if record.stored_path:
        Path(record.stored_path).unlink(missing_ok=True)
        db.session.execute(update(ItemImport).where(ItemImport.id == record.id)
                           .values(stored_path=None))
        db.session.commit()


def import_task(progress, import_id: str) -> dict:
    """Job task ``gifts-import``: import the stored upload of ``import_id``, then remove it."""
    record = db.session.get(ItemImport, import_id)
    if record is None:
        raise LookupError(f"There is no gift import {import_id!r}.")
    if record.status not in ("queued", "running"):
        return {"status": record.status}  # already finished (a re-run of the same job)
    if not record.stored_path or not Path(record.stored_path).exists():
        _fail(import_id, "The uploaded file is gone (was the instance folder cleaned?); "
                         "upload it again.")
        return {"status": "failed"}
    path = Path(record.stored_path)
    try:
        result = execute_import(record, path, progress)
        if result.get("added") or result.get("merged"):
            suggest_for_new_items()
        return result
    finally:
        db.session.rollback()
        finished = db.session.get(ItemImport, import_id)
        if finished is not None:
            discard_file(finished)


def suggest_for_new_items() -> None:
    """Queue the rules (and, where a group is live on it, the label model) for the items an
    import added, so they reach the queue with suggestions without anyone pressing Apply."""
    from webapp.gifts import rules, suggest
    from webapp.gifts.sources import live_sources

    try:
        jobs.enqueue(rules.JOB_KIND, {"started_by": "import"}, dedupe_key=rules.DEDUPE_KEY,
                     created_by="import", subject=rules.JOB_SUBJECT)
    except jobs.QueueUnavailable as error:
        log.error("Imported items were not queued for the rules: %s. Press Apply rules.", error)
    if any(source.source == "model" for source in live_sources().values()):
        suggest.enqueue_suggestions(by="import")


def sync_with_job(record: ItemImport) -> None:
    """Mark an unfinished import failed when its job failed without saying so (dead worker)."""
    if record.status not in ("queued", "running") or record.job_id is None:
        return
    job = jobs.get_job(record.job_id)
    if job is not None and job.status == "failed":
        _fail(record.id, job.error or "The import job failed.")
        db.session.refresh(record)


def first_rejects(import_id: str, limit: int = LISTED_REJECTS) -> list[ImportReject]:
    """The first rejects of an import, by line."""
    return list(db.session.scalars(
        select(ImportReject).where(ImportReject.import_id == import_id)
        .order_by(ImportReject.line, ImportReject.id).limit(limit)))


def reject_rows(record: ItemImport) -> Iterator[str]:
    """The reject file as CSV text, chunk by chunk: line, reason, then the row's cells.

    Read with ``yield_per`` so a file of 100k rejects streams in flat memory; every cell is
    neutralised so a spreadsheet never runs it as a formula.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["line", "reason", *(neutralise(h) for h in record.headers or [])])
    yield "\ufeff" + out.getvalue()  # the BOM tells spreadsheets the file is UTF-8
    query = (select(ImportReject.line, ImportReject.reason, ImportReject.cells)
             .where(ImportReject.import_id == record.id)
             .order_by(ImportReject.line, ImportReject.id)
             .execution_options(yield_per=BATCH_SIZE))
    for partition in db.session.execute(query).partitions():
        out.seek(0)
        out.truncate()
        for line, reason, cells in partition:
            writer.writerow([line, neutralise(reason),
                             *(neutralise(str(cell)) for cell in cells or [])])
        yield out.getvalue()


# --- flask gifts import ----------------------------------------------------------------------


@gifts_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=True,
                                        path_type=Path))
@click.option("--profile", "profile_name", default=None,
              help="A saved mapping profile (by name); without it headers map automatically.")
@click.option("--on-duplicate", type=click.Choice(DUPLICATE_POLICIES), default=None,
              help="skip (default, or the profile's choice) or merge rows that duplicate an "
                   "item.")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the reject file (CSV) to this path.")
def import_command(path: Path, profile_name: str | None, on_duplicate: str | None,
                   rejects_path: Path | None) -> None:
    """Import gift items from a CSV or XLSX file at PATH, printing progress and the counts.

    Exits with 1 when the file cannot be read or its columns cannot be mapped.
    """
    profile = None
    if profile_name is not None:
        profile = db.session.scalar(select(ImportProfile).where(
            ImportProfile.name == profile_name))
        if profile is None:
            names = ", ".join(db.session.scalars(select(ImportProfile.name)
                                                 .order_by(ImportProfile.name))) or "none"
            raise click.UsageError(f"There is no profile {profile_name!r} (profiles: {names}).")
    policy = on_duplicate or (profile.on_duplicate if profile else "skip")
    try:
        preview = read_preview(path)
    except ImportFileError as error:
        click.echo(f"{path}: cannot be read: {error}", err=True)
        raise click.exceptions.Exit(1) from None
    record = new_import(basename(str(path)), preview.headers, "cli", policy, profile)
    db.session.commit()
    for note in preview.notes:
        click.echo(f"note: {note}")
    errors = mapping_errors(record.mapping, preview.headers)
    if errors:
        _fail(record.id, " ".join(errors))
        click.echo(f"{path}: the columns cannot be mapped: " + " ".join(errors)
                   + " Columns in the file: " + ", ".join(preview.headers), err=True)
        raise click.exceptions.Exit(1)
    _echo_mapping(record)
    result = execute_import(record, path, _cli_progress())
    db.session.refresh(record)
    _echo_result(record, rejects_path)
    if result["status"] != "done":
        raise click.exceptions.Exit(1)


def _cli_progress() -> ProgressCallback:
    """Print progress at the start, about every 10% and at the end (not every batch)."""
    shown = [-10]

    def report(percent: int, message: str) -> None:
        if percent in (0, 100) or percent >= shown[0] + 10:
            shown[0] = percent
            click.echo(f"[{percent:3d}%] {message}")
    return report


def _echo_mapping(record: ItemImport) -> None:
    click.echo("Mapping: " + ", ".join(f"{header} -> {FIELDS[name]}"
                                       for header, name in record.mapping.items()))
    if record.unmapped:
        click.echo("Not imported (unmapped columns): " + ", ".join(record.unmapped))


def _echo_result(record: ItemImport, rejects_path: Path | None) -> None:
    click.echo(f"Import {record.id} {record.status}: {record.total_rows} rows, "
               f"{record.added} added, {record.merged} merged, {record.skipped_duplicates} "
               f"duplicates skipped ({record.on_duplicate}), {record.rejected} rejected.")
    if record.error:
        click.echo(f"Error: {record.error}", err=True)
    if not record.rejected:
        return
    for reject in first_rejects(record.id, 10):
        click.echo(f"  line {reject.line}: {reject.reason}")
    if record.rejected > 10:
        click.echo(f"  … and {record.rejected - 10} more.")
    if rejects_path is not None:
        with open(rejects_path, "w", encoding="utf-8", newline="") as handle:
            for chunk in reject_rows(record):
                handle.write(chunk)
        click.echo(f"Reject file written to {rejects_path}.")
    else:
        click.echo(f"Reject file: /gifts/import/{record.id}/rejects.csv (or run again with "
                   "--rejects PATH).")
