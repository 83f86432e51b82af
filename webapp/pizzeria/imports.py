"""Pizzeria imports: nights from a nightly CSV, or from a restaurant's raw exports.

Three steps, each usable alone (the web page runs the first two as a background job, the CLI
runs all three in a row):

1. **Parse** (pure: bytes in, ``ParsedImport`` out). ``parse_nightly`` reads a CSV of nights;
   ``parse_exports`` counts reservations per date in a reservations export and sums the dough
   items' quantities per date in a point-of-sale export. A bad row becomes a ``Reject`` with its
   physical line number; every good row is kept. Only a file that cannot be used at all (no
   header, a missing column) raises ``ImportFileError``.
2. **Plan** (``plan_import``): compare the rows with the nights already stored, by date, in
   chunks: new, unchanged, updates (fill empty fields in) and conflicts (different values).
3. **Apply** (``apply_plan``): insert and update in the caller's transaction, keeping or
   overwriting the conflicting values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from webapp import jobs
from webapp.auth.models import utcnow
from webapp.csv_import import (
    SNIFF_BYTES,
    Record,
    Reject,
    binary_problem,
    column_list,
    decode,
    normalise_name,
    records,
    repeated_names,
    report_csv,
    sniff_delimiter,
)
from webapp.extensions import db
from webapp.pizzeria.forms import MAX_RESERVATIONS
from webapp.pizzeria.import_models import FILENAME_MAX, ImportBatch, ImportFile
from webapp.pizzeria.models import Night, pizzeria_settings

log = logging.getLogger(__name__)

JOB_KIND = "pizzeria-import"
#: Largest upload accepted per file.
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_DOUGHS = 100_000
#: A point-of-sale line selling more than this many of one item is a typo, not a sale.
MAX_QUANTITY = 10_000
MAX_PARTY_SIZE = 1_000
TEMPERATURE_RANGE = (-60.0, 60.0)
#: A restaurant's nights; anything outside is a typo (and keeps a file's row count bounded).
DATE_RANGE = (dt.date(1900, 1, 1), dt.date(2199, 12, 31))
EVENT_NOTE_MAX = Night.__table__.c.event_note.type.length
#: Report progress every this many records.
PROGRESS_EVERY = 2000
#: Raw rows are kept for the report up to this length.
RAW_MAX = 300
#: Rejects kept one by one; beyond this they are only counted (a wrong file can have millions).
MAX_LISTED_REJECTS = 10_000
PREVIEW_CONFLICTS_MAX = 500
PREVIEW_UPDATES_MAX = 100
PREVIEW_REJECTS_MAX = 100
#: Nights read per query when planning: well under every database's parameter limit.
PLAN_CHUNK = 500

#: The night fields an import can set, in display order.
FIELDS = ("reservations", "doughs", "temperature", "holiday", "event_note")
FIELD_LABELS = {"reservations": "reservations", "doughs": "doughs",
                "temperature": "temperature (°C)", "holiday": "holiday",
                "event_note": "event note"}
#: Columns as notes name them, where their own name would read oddly.
COLUMN_LABELS = {"datetime": "date or date-time", "party_size": "party size",
                 "event_note": "event note"}
SOURCE_LABELS = {"nightly": "the nightly CSV", "reservations": "the reservations export",
                 "pos": "the point-of-sale export"}

TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})
DATE_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})"                                  # the date we keep
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"          # an optional time
    r"(?:Z|[+-]\d{2}:?\d{2})?)?", re.ASCII)                 # and an optional offset
WHOLE_RE = re.compile(r"[+-]?([0-9]+)(?:\.0*)?", re.ASCII)
NUMBER_RE = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?", re.ASCII)


class ImportFileError(ValueError):
    """The file cannot be imported at all (no header, a missing column); nothing was kept."""


class BatchNotReady(RuntimeError):
    """The batch is not in a state that allows this (e.g. applied twice)."""


class PreviewOutdated(RuntimeError):
    """The stored nights changed since the preview; a new preview was made instead."""


# --- Parsed data --------------------------------------------------------------------------


@dataclass(frozen=True)
class NightRow:
    """One night as read from a file. None means "not given": it never erases a stored value."""

    date: dt.date
    reservations: int | None = None
    doughs: int | None = None
    temperature: float | None = None
    holiday: bool | None = None
    event_note: str | None = None

    def given(self) -> dict[str, object]:
        """The fields this row sets (those that are not None)."""
        return {name: getattr(self, name) for name in FIELDS if getattr(self, name) is not None}

    def to_json(self) -> dict:
        """A JSON-ready dict (the date as ISO text, fields left out when not given)."""
        return {"date": self.date.isoformat(), **self.given()}

    @classmethod
    def from_json(cls, data: dict) -> NightRow:
        """The row ``to_json`` wrote."""
        return cls(date=dt.date.fromisoformat(data["date"]),
                   **{name: data[name] for name in FIELDS if name in data})


@dataclass
class ParsedImport:
    """What a file held: good rows (one per date), bad rows, and notes about the whole file."""

    rows: list[NightRow] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: Bad rows beyond ``MAX_LISTED_REJECTS``: counted, not listed.
    unlisted_rejects: int = 0

    @property
    def reject_count(self) -> int:
        """Every bad row, listed or not."""
        return len(self.rejects) + self.unlisted_rejects


@dataclass(frozen=True)
class Column:
    """A column we look for, under its own name or a synonym (header names are normalised)."""

    name: str
    synonyms: tuple[str, ...]
    required: bool = True


# Synonyms are tried in order, so the most specific comes first. For the exports only the date
# matters, so a date column wins over a date-time one, and a bare "time" comes last.
NIGHTLY_COLUMNS = (
    Column("date", ("date", "night", "day")),
    Column("reservations", ("reservations", "reservation_count", "bookings")),
    Column("doughs", ("doughs", "dough", "dough_count", "pizzas")),
    Column("temperature", ("temperature", "temp", "temperature_c"), required=False),
    Column("holiday", ("holiday", "is_holiday", "public_holiday"), required=False),
    Column("event_note", ("event_note", "event", "note", "notes"), required=False),
)
RESERVATION_COLUMNS = (
    Column("datetime", ("date", "datetime", "date_time", "reservation_date",
                        "reservation_datetime", "reservation_time", "reserved_for",
                        "reserved_at", "start", "start_time", "time")),
    Column("party_size", ("party_size", "guests", "covers", "party", "people", "pax"),
           required=False),
    Column("name", ("name", "guest", "guest_name", "customer"), required=False),
)
POS_COLUMNS = (
    Column("datetime", ("date", "datetime", "date_time", "timestamp", "created_at",
                        "ordered_at", "order_date", "order_time", "time")),
    Column("item", ("item", "item_name", "product", "product_name", "menu_item")),
    Column("quantity", ("quantity", "qty", "count", "units")),
)

ProgressCallback = Callable[[int, int], None]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def resolve_columns(header: list[str], spec: tuple[Column, ...],
                    source: str) -> tuple[dict[str, int], list[str]]:
    """Map each wanted column to its position in ``header``.

    Returns ``(positions, problems)``. Raises ImportFileError naming every missing required
    column, its accepted names, and the columns the file has.
    """
    names = [normalise_name(name) for name in header]
    positions: dict[str, int] = {}
    for column in spec:
        found = next((names.index(s) for s in column.synonyms if s in names), None)
        if found is not None:
            positions[column.name] = found
    missing = [column for column in spec if column.required and column.name not in positions]
    if missing:
        wanted = "; ".join(
            column.name + (f" (or {', '.join(column.synonyms[1:])})"
                           if len(column.synonyms) > 1 else "")
            for column in missing)
        found_names = ", ".join(repr(_shorten(name.strip(), 40)) for name in header[:30])
        more = f" and {len(header) - 30} more" if len(header) > 30 else ""
        raise ImportFileError(
            f"{_capital(SOURCE_LABELS[source])} is missing the column(s) {wanted}. "
            f"Columns found in its header: {found_names or 'none'}{more}."
        )
    problems, explained = _header_notes(header, names, spec, positions, source)
    used = set(positions.values())
    unused = [name.strip() for i, name in enumerate(header)
              if i not in used and i not in explained and name.strip()]
    if unused:
        listed = ", ".join(_shorten(name, 40) for name in unused[:20])
        problems.append(f"Columns not used from {SOURCE_LABELS[source]}: {listed}"
                        f"{' …' if len(unused) > 20 else ''}.")
    return positions, problems


def _header_notes(header: list[str], names: list[str], spec: tuple[Column, ...],
                  positions: dict[str, int], source: str) -> tuple[list[str], set[int]]:
    """Notes on the columns a used column was chosen over, and the positions they explain.

    A header given twice keeps its first column ("first wins"); a column named by two
    synonyms keeps the one earlier in the synonym list (a date before a date-time). Either way
    the preview says which column was used, so no column is mapped silently.
    """
    label = SOURCE_LABELS[source]
    repeated = repeated_names(names)
    notes, explained = [], set()
    for column in spec:
        if column.name not in positions:
            continue
        position = positions[column.name]
        chosen = _shorten(header[position].strip(), 40)
        found = repeated.get(names[position])
        if found:
            times = "twice" if len(found) == 2 else f"{len(found)} times"
            notes.append(f"Line 1 of {label} names {chosen!r} {times} (columns "
                         f"{column_list(found)}): the first, column {found[0]}, was used and "
                         "the others were left out.")
            explained.update(i - 1 for i in found)
        others = [i for i, name in enumerate(names)
                  if name in column.synonyms and name != names[position]]
        if others:
            listed = ", ".join(f"{_shorten(header[i].strip(), 40)!r} (column {i + 1})"
                               for i in others)
            notes.append(f"Line 1 of {label}: {listed} also name{'s' if len(others) == 1 else ''}"
                         f" the {COLUMN_LABELS.get(column.name, column.name)}; {chosen!r} (column "
                         f"{position + 1}) was used.")
            explained.update(others)
    return notes, explained


@dataclass
class _Table:
    """A decoded file's header and the position of each wanted column."""

    positions: dict[str, int]
    #: Each wanted column's name as the file writes it, so reasons use the user's words.
    labels: dict[str, str]
    width: int
    rows: Iterator[Record]
    total_lines: int
    problems: list[str]


def open_table(data: bytes, spec: tuple[Column, ...], source: str) -> _Table:
    """Decode ``data``, find its header and columns; ImportFileError when it cannot be used."""
    problem = binary_problem(data[:SNIFF_BYTES], _capital(SOURCE_LABELS[source]))
    if problem:
        raise ImportFileError(problem)
    text, problems = decode(data)
    if not text.strip():
        raise ImportFileError(f"{_capital(SOURCE_LABELS[source])} is empty.")
    rows = records(text, sniff_delimiter(text))
    header = next((record for record in rows if _has_content(record)), None)
    if header is None:
        raise ImportFileError(f"{_capital(SOURCE_LABELS[source])} has no header row.")
    if header.fields is None:
        raise ImportFileError(f"The header of {SOURCE_LABELS[source]} (line {header.line}) "
                              f"cannot be read: {header.error}.")
    positions, column_problems = resolve_columns(header.fields, spec, source)
    total = text.count("\n") + text.count("\r") - text.count("\r\n") + 1
    labels = {column.name: column.name for column in spec}
    labels.update({name: _shorten(header.fields[i].strip(), 40) or name
                   for name, i in positions.items()})
    return _Table(positions, labels, len(header.fields), rows, total,
                  problems + column_problems)


def _has_content(record: Record) -> bool:
    """False for a blank line, or one made only of delimiters and spaces (skipped silently)."""
    return record.fields is None or any(cell.strip() for cell in record.fields)


def _cells(record: Record, table: _Table) -> tuple[dict[str, str], list[str]]:
    """The wanted cells of a record, stripped ("" when the row is short), and shape errors."""
    fields = record.fields or []
    cells = {name: fields[i].strip() if i < len(fields) else ""
             for name, i in table.positions.items()}
    errors = []
    extra = [cell for cell in fields[table.width:] if cell.strip()]
    if extra:
        errors.append(f"the row has {len(fields)} values but the header has {table.width} "
                      "columns")
    return cells, errors


class _Rejects:
    """Collects rejects, keeping the first ``MAX_LISTED_REJECTS`` and counting the rest."""

    def __init__(self, parsed: ParsedImport, source: str):
        self._parsed, self._source = parsed, source

    def add(self, record: Record, reasons: list[str]) -> None:
        if len(self._parsed.rejects) >= MAX_LISTED_REJECTS:
            self._parsed.unlisted_rejects += 1
            return
        self._parsed.rejects.append(
            Reject(record.line, "; ".join(reasons), _shorten(record.raw, RAW_MAX), self._source)
        )


def _each_row(table: _Table, on_progress: ProgressCallback | None,
              offset: int = 0, total: int | None = None) -> Iterator[Record]:
    """The data records with content, calling ``on_progress(done, total)`` now and then."""
    for count, record in enumerate(table.rows, start=1):
        if on_progress is not None and count % PROGRESS_EVERY == 0:
            on_progress(offset + record.line, total or table.total_lines)
        if _has_content(record):
            yield record


# --- Cell parsers: each returns a value or raises ValueError with the reason ---------------


def parse_date(name: str, text: str) -> dt.date:
    """An ISO date, or the date part of an ISO date-time (``2023-05-29 19:30``, ``…T19:30:00``)."""
    if not text:
        raise ValueError(f"{name} is empty")
    match = DATE_RE.fullmatch(text)
    try:
        if match is None:
            raise ValueError
        if match.group(0) != match.group(1):
            dt.datetime.fromisoformat(text)  # the time must be a real time, too
        date = dt.date.fromisoformat(match.group(1))
    except ValueError:
        raise ValueError(f"{name} is not a date (use YYYY-MM-DD, optionally with a time such "
                         f"as 2023-05-29 19:30): {_shorten(text)!r}") from None
    if not DATE_RANGE[0] <= date <= DATE_RANGE[1]:
        raise ValueError(f"{name} is out of range (years {DATE_RANGE[0].year}–"
                         f"{DATE_RANGE[1].year}): {text!r}")
    return date


def parse_whole(name: str, text: str, low: int, high: int) -> int | None:
    """A whole number between ``low`` and ``high``; None for an empty cell. ``12.0`` is 12."""
    if not text:
        return None
    match = WHOLE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{name} is not a whole number: {_shorten(text)!r}")
    # Bounded before int(): Python refuses to convert very long digit strings.
    value = int(text.split(".")[0]) if len(match.group(1)) <= 9 else high + 1
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}: {_shorten(text)!r}")
    return value


def parse_number(name: str, text: str, low: float, high: float) -> float | None:
    """A decimal number (``21.5`` or ``21,5``) between ``low`` and ``high``; None when empty."""
    if not text:
        return None
    if NUMBER_RE.fullmatch(text) is None:
        raise ValueError(f"{name} is not a number: {_shorten(text)!r}")
    value = float(text.replace(",", "."))
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}: {text!r}")
    return value


def parse_holiday(name: str, text: str) -> bool | None:
    """true/false, yes/no or 1/0 (any case); None for an empty cell."""
    word = text.lower()
    if not word:
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{name} must be true/false, yes/no or 1/0: {_shorten(text)!r}")


def parse_note(name: str, text: str) -> str | None:
    """Free text up to the column's length; None for an empty cell."""
    if len(text) > EVENT_NOTE_MAX:
        raise ValueError(f"{name} is longer than {EVENT_NOTE_MAX} characters")
    return text or None


class _Checks:
    """Runs cell parsers and gathers their reasons, so a bad row lists all its problems."""

    def __init__(self, errors: list[str]):
        self.errors = errors

    def __call__(self, parse: Callable[..., object], *args) -> object:
        try:
            return parse(*args)
        except ValueError as error:
            self.errors.append(str(error))
            return None


def _required_text(name: str, text: str) -> str:
    if not text:
        raise ValueError(f"{name} is empty")
    return text


# --- Parsing whole files --------------------------------------------------------------------


def parse_nightly(data: bytes, on_progress: ProgressCallback | None = None) -> ParsedImport:
    """Nights from a CSV with ``date,reservations,doughs`` and optional columns.

    Optional columns: ``temperature`` (°C), ``holiday`` (true/false, yes/no, 1/0 or empty),
    ``event_note``. An empty reservations or doughs cell means "not known yet"; a row needs at
    least one of the two. A date seen again is a bad row (the first good one counts).
    Raises ImportFileError only when the file cannot be used at all.
    """
    table = open_table(data, NIGHTLY_COLUMNS, "nightly")
    parsed = ParsedImport(problems=table.problems)
    rejects = _Rejects(parsed, "nightly")
    seen: dict[dt.date, int] = {}
    for record in _each_row(table, on_progress):
        if record.fields is None:
            rejects.add(record, [record.error])
            continue
        cells, errors = _cells(record, table)
        values = _nightly_values(cells, table.labels, _Checks(errors))
        if not errors and values["reservations"] is None and values["doughs"] is None:
            errors.append("neither reservations nor doughs is given")
        if not errors and values["date"] in seen:
            errors.append(f"date {values['date']} already appears on line "
                          f"{seen[values['date']]}")
        if errors:
            rejects.add(record, errors)
            continue
        seen[values["date"]] = record.line
        parsed.rows.append(NightRow(**values))
    _note_unlisted(parsed)
    return parsed


def _nightly_values(cells: dict[str, str], labels: dict[str, str],
                    check: _Checks) -> dict[str, object]:
    return {
        "date": check(parse_date, labels["date"], cells["date"]),
        "reservations": check(parse_whole, labels["reservations"], cells["reservations"], 0,
                              MAX_RESERVATIONS),
        "doughs": check(parse_whole, labels["doughs"], cells["doughs"], 0, MAX_DOUGHS),
        "temperature": check(parse_number, labels["temperature"],
                             cells.get("temperature", ""), *TEMPERATURE_RANGE),
        "holiday": check(parse_holiday, labels["holiday"], cells.get("holiday", "")),
        "event_note": check(parse_note, labels["event_note"], cells.get("event_note", "")),
    }


def count_reservations(data: bytes, parsed: ParsedImport,
                       on_progress: ProgressCallback | None = None,
                       offset: int = 0, total: int | None = None) -> Counter:
    """Reservations per date in a reservations export (one row per reservation).

    Bad rows go to ``parsed.rejects``; file notes to ``parsed.problems``.
    """
    table = open_table(data, RESERVATION_COLUMNS, "reservations")
    parsed.problems.extend(table.problems)
    rejects, counts = _Rejects(parsed, "reservations"), Counter()
    for record in _each_row(table, on_progress, offset, total):
        if record.fields is None:
            rejects.add(record, [record.error])
            continue
        cells, errors = _cells(record, table)
        check = _Checks(errors)
        date = check(parse_date, table.labels["datetime"], cells["datetime"])
        check(parse_whole, table.labels["party_size"], cells.get("party_size", ""), 1,
              MAX_PARTY_SIZE)
        if errors:
            rejects.add(record, errors)
            continue
        counts[date] += 1
    return counts


def sum_doughs(data: bytes, dough_items: frozenset[str], parsed: ParsedImport,
               on_progress: ProgressCallback | None = None,
               offset: int = 0, total: int | None = None) -> dict[dt.date, int | None]:
    """Doughs per date in a point-of-sale export: the summed quantity of the dough items.

    Items match ``dough_items`` case-insensitively, trimmed. A date with sales but no dough
    item has 0 doughs. Negative quantities (refunds, voids) count against the total; a date
    whose total ends outside 0..MAX_DOUGHS gets None and a note in ``parsed.problems``.
    """
    table = open_table(data, POS_COLUMNS, "pos")
    parsed.problems.extend(table.problems)
    rejects, totals = _Rejects(parsed, "pos"), Counter()
    for record in _each_row(table, on_progress, offset, total):
        if record.fields is None:
            rejects.add(record, [record.error])
            continue
        cells, errors = _cells(record, table)
        is_dough = cells["item"].lower() in dough_items
        check = _Checks(errors)
        date = check(parse_date, table.labels["datetime"], cells["datetime"])
        check(_required_text, table.labels["item"], cells["item"])
        quantity = check(_quantity, table.labels["quantity"], cells["quantity"], is_dough)
        if errors:
            rejects.add(record, errors)
            continue
        totals[date] += quantity if is_dough else 0
    doughs: dict[dt.date, int | None] = {}
    for date, value in totals.items():
        doughs[date] = value if 0 <= value <= MAX_DOUGHS else None
        if doughs[date] is None:
            parsed.problems.append(f"{date}: the dough items add up to {value}, outside 0 to "
                                   f"{MAX_DOUGHS}; the doughs of that night were left out.")
    return doughs


def _quantity(name: str, text: str, is_dough: bool) -> int | float:
    """A point-of-sale quantity: any number for other items, a whole number for dough items."""
    if not text:
        raise ValueError(f"{name} is empty")
    if is_dough:
        return parse_whole(name, text, -MAX_QUANTITY, MAX_QUANTITY)
    return parse_number(name, text, -MAX_QUANTITY, MAX_QUANTITY)


def parse_exports(reservations: bytes | None, pos: bytes | None,
                  dough_items: Iterable[str],
                  on_progress: ProgressCallback | None = None) -> ParsedImport:
    """Nights from a reservations export and/or a point-of-sale export, aligned by date.

    A date found in only one export gets None for the other field (tonight's reservations
    before the point of sale has closed: doughs None). Raises ImportFileError when neither file
    is given or when either cannot be used at all.
    """
    if reservations is None and pos is None:
        raise ImportFileError("Give a reservations export, a point-of-sale export, or both.")
    items = frozenset(item.strip().lower() for item in dough_items if item.strip())
    parsed = ParsedImport()
    # Progress counts lines across both files, the reservations export first.
    first_lines = (reservations or b"").count(b"\n") + 1 if reservations else 0
    total = first_lines + ((pos or b"").count(b"\n") + 1 if pos else 0)
    counts, doughs = Counter(), {}
    if reservations is not None:
        counts = count_reservations(reservations, parsed, on_progress, 0, total)
    if pos is not None:
        doughs = sum_doughs(pos, items, parsed, on_progress, first_lines, total)
    reservations_by_date: dict[dt.date, int | None] = {}
    for date, count in counts.items():
        # The same bound as a night typed in by hand.
        reservations_by_date[date] = count if count <= MAX_RESERVATIONS else None
        if reservations_by_date[date] is None:
            parsed.problems.append(f"{date}: {count} reservations is more than "
                                   f"{MAX_RESERVATIONS}; the reservations of that night were "
                                   "left out.")
    dates = sorted(set(counts) | set(doughs))
    rows = [NightRow(date, reservations_by_date.get(date), doughs.get(date)) for date in dates]
    # A date whose only total was left out has nothing left to import.
    parsed.rows = [row for row in rows if row.reservations is not None or row.doughs is not None]
    _note_unlisted(parsed)
    return parsed


def _note_unlisted(parsed: ParsedImport) -> None:
    if parsed.unlisted_rejects:
        parsed.problems.append(f"{parsed.reject_count} bad rows: only the first "
                               f"{len(parsed.rejects)} are listed in the report.")


# --- Planning against the stored nights -----------------------------------------------------


@dataclass(frozen=True)
class NightChange:
    """How a row changes an existing night: fields it fills in, and fields that differ."""

    row: NightRow
    night_id: int
    fills: dict[str, object]
    differences: dict[str, tuple[object, object]]  # field -> (stored, imported)


@dataclass
class ImportPlan:
    """Rows sorted by what applying them would do."""

    new: list[NightRow] = field(default_factory=list)
    unchanged: list[NightRow] = field(default_factory=list)
    updates: list[NightChange] = field(default_factory=list)
    conflicts: list[NightChange] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many rows fall in each group."""
        return {"new": len(self.new), "unchanged": len(self.unchanged),
                "updates": len(self.updates), "conflicts": len(self.conflicts)}

    def fingerprint(self) -> str:
        """A digest of the whole plan: equal digests mean applying would do the same thing."""
        digest = hashlib.sha256()
        parts = [("new", self.new), ("unchanged", self.unchanged)]
        for name, rows in parts:
            digest.update(json.dumps([name, [r.to_json() for r in rows]]).encode())
        for name, changes in (("updates", self.updates), ("conflicts", self.conflicts)):
            digest.update(json.dumps(
                [name, [[c.row.to_json(), c.night_id, c.fills, sorted(c.differences.items())]
                        for c in changes]]).encode())
        return digest.hexdigest()


def compare(row: NightRow, stored: dict[str, object]) -> tuple[dict, dict]:
    """``(fills, differences)`` of ``row`` against a stored night's values.

    A field the night does not have yet (None) is filled in; a different value is a conflict.
    """
    fills, differences = {}, {}
    for name, new in row.given().items():
        old = stored[name]
        if old is None:
            fills[name] = new
        elif old != new:
            differences[name] = (old, new)
    return fills, differences


def plan_import(rows: list[NightRow],
                on_progress: ProgressCallback | None = None) -> ImportPlan:
    """Compare ``rows`` (one per date) with the stored nights, ``PLAN_CHUNK`` dates per query."""
    plan = ImportPlan()
    columns = [getattr(Night, name) for name in FIELDS]
    for start in range(0, len(rows), PLAN_CHUNK):
        chunk = rows[start:start + PLAN_CHUNK]
        query = select(Night.id, Night.date, *columns).where(
            Night.date.in_([row.date for row in chunk]))
        stored = {found.date: found for found in db.session.execute(query)}
        for row in chunk:
            night = stored.get(row.date)
            if night is None:
                plan.new.append(row)
                continue
            fills, differences = compare(row, {name: getattr(night, name) for name in FIELDS})
            if differences:
                plan.conflicts.append(NightChange(row, night.id, fills, differences))
            elif fills:
                plan.updates.append(NightChange(row, night.id, fills, {}))
            else:
                plan.unchanged.append(row)
        if on_progress is not None:
            on_progress(start + len(chunk), len(rows))
    return plan


@dataclass(frozen=True)
class ApplyResult:
    """What applying wrote."""

    inserted: int
    filled: int
    overwritten: int
    kept: int
    overwrite: bool

    def as_dict(self) -> dict:
        """JSON-ready."""
        return {"inserted": self.inserted, "filled": self.filled,
                "overwritten": self.overwritten, "kept": self.kept, "overwrite": self.overwrite}

    def summary(self) -> str:
        """One sentence for people."""
        text = (f"{plural(self.inserted, 'night')} added, {self.filled} filled in, "
                f"{plural(self.overwritten, 'conflict')} overwritten")
        return text + (f", {plural(self.kept, 'conflict')} kept as stored." if self.kept else ".")


def plural(count: int, noun: str) -> str:
    """``1 night``, ``2 nights``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def apply_plan(plan: ImportPlan, overwrite: bool) -> ApplyResult:
    """Write ``plan`` in the current transaction; the caller commits (or rolls back).

    New nights are inserted; empty fields are filled in; conflicting fields take the imported
    value when ``overwrite``, else keep the stored one. Raises IntegrityError if another writer
    added one of the "new" dates meanwhile.
    """
    now = utcnow()
    if plan.new:
        db.session.execute(insert(Night), [
            {**row.given(), "date": row.date, "holiday": bool(row.holiday), "updated_at": now}
            for row in plan.new])
    changes = [dict(change.fills) for change in plan.updates]
    ids = [change.night_id for change in plan.updates]
    for change in plan.conflicts:
        values = dict(change.fills)
        if overwrite:
            values.update({name: new for name, (_, new) in change.differences.items()})
        if values:
            changes.append(values)
            ids.append(change.night_id)
    # A bulk UPDATE needs the same columns in every row: group rows by them. Core, not the ORM's
    # bulk UPDATE by primary key, which would demand each row's loaded version (version_id_col);
    # bumping the version tells an inline editor who loaded the night before that it changed.
    table = Night.__table__
    statement = (update(table).where(table.c.id == bindparam("night_id"))
                 .values(version=table.c.version + 1))
    groups: dict[tuple[str, ...], list[dict]] = {}
    for night_id, values in zip(ids, changes, strict=True):
        groups.setdefault(tuple(sorted(values)), []).append(
            {"night_id": night_id, **values, "updated_at": now})
    for group in groups.values():
        db.session.execute(statement, group)
    return ApplyResult(
        inserted=len(plan.new), filled=len(plan.updates),
        overwritten=len(plan.conflicts) if overwrite else 0,
        kept=0 if overwrite else len(plan.conflicts), overwrite=overwrite,
    )


# --- Batches: the web flow (upload -> job: parse + plan -> preview -> apply) ----------------


def start_import(kind: str, files: list[tuple[str, str, bytes]],
                 created_by: str | None) -> ImportBatch:
    """Store an upload as a batch and start the job that parses and previews it.

    ``files`` holds ``(role, filename, bytes)``. If the job queue is unavailable the batch is
    returned failed, with the reason.
    """
    batch = ImportBatch(kind=kind, created_by=created_by, files=[
        ImportFile(role=role, filename=_basename(name)[:FILENAME_MAX], size=len(data),
                   payload=data)
        for role, name, data in files])
    db.session.add(batch)
    db.session.commit()
    try:
        job, _ = jobs.enqueue(JOB_KIND, {"batch_id": batch.id}, dedupe_key=f"{JOB_KIND}:{batch.id}",
                              created_by=created_by, subject=batch.id)
    except jobs.QueueUnavailable as error:
        _fail_batch(batch.id, str(error))
        db.session.refresh(batch)
        return batch
    batch.job_id = job.id
    db.session.commit()
    return batch


def _basename(name: str) -> str:
    """The file's own name: some browsers send a whole path (``C:\\fakepath\\nights.csv``)."""
    return name.replace("\\", "/").rsplit("/", 1)[-1] or "upload.csv"


def parse_batch(batch: ImportBatch, on_progress: ProgressCallback | None = None) -> tuple[
        ParsedImport, list[str]]:
    """Parse a batch's files; returns the result and the dough items used (exports only)."""
    if batch.kind == "nightly":
        return parse_nightly(batch.payload("nightly") or b"", on_progress), []
    items = sorted(pizzeria_settings().dough_item_set)
    return parse_exports(batch.payload("reservations"), batch.payload("pos"), items,
                         on_progress), items


def import_task(progress, batch_id: str) -> dict:
    """Job task: parse and plan batch ``batch_id``, and store its preview and reject report.

    A file that cannot be used marks the batch failed with the reason (the job itself
    succeeds: it did its work). Any other error marks the batch failed and fails the job.
    """
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None:
        raise LookupError(f"There is no import batch {batch_id!r}.")
    batch.status = "parsing"
    db.session.commit()
    try:
        parsed, items = parse_batch(batch, _scaled(progress, 0, 80, "Reading line"))
        plan = plan_import(parsed.rows, _scaled(progress, 80, 98, "Comparing night"))
    except ImportFileError as error:
        db.session.rollback()
        _fail_batch(batch_id, str(error))
        return {"status": "failed", "error": str(error)}
    except Exception as error:
        db.session.rollback()
        _fail_batch(batch_id, f"The import stopped on an unexpected error "
                              f"({type(error).__name__}: {error}). Nothing was changed.")
        raise
    record_preview(batch, parsed, plan, items)
    db.session.commit()
    return {"status": "previewed", **plan.counts(), "rejects": parsed.reject_count}


def _scaled(progress, low: int, high: int, what: str) -> ProgressCallback:
    """A (done, total) callback that reports low..high percent to the job."""
    def report(done: int, total: int) -> None:
        progress(low + (high - low) * min(done, total) // max(total, 1),
                 f"{what} {done:,} of {total:,}")
    return report


def sync_with_job(batch: ImportBatch) -> None:
    """Mark an unfinished batch failed when its job failed without saying so (a dead worker)."""
    if batch.status not in ("uploaded", "parsing") or batch.job_id is None:
        return
    job = jobs.get_job(batch.job_id)
    if job is not None and job.status == "failed":
        _fail_batch(batch.id, job.error or "The import job failed.")
        db.session.refresh(batch)


def _fail_batch(batch_id: str, error: str) -> None:
    """Mark the batch failed with ``error`` and drop its files' bytes: a failed batch is never
    read again, and what was uploaded (an export naming guests, or not a CSV at all) is not
    kept."""
    db.session.execute(update(ImportBatch).where(ImportBatch.id == batch_id)
                       .values(status="failed", error=error, updated_at=utcnow()))
    db.session.execute(update(ImportFile).where(ImportFile.batch_id == batch_id)
                       .values(payload=None))
    db.session.commit()


def preview_json(parsed: ParsedImport, plan: ImportPlan, dough_items: list[str]) -> dict:
    """What the preview card shows, capped so a huge file still gives a small preview."""

    def change_json(change: NightChange) -> dict:
        return {"date": change.row.date.isoformat(), "fills": change.fills,
                "differences": [{"field": name, "old": old, "new": new}
                                for name, (old, new) in change.differences.items()]}

    return {
        "counts": {**plan.counts(), "rejects": parsed.reject_count, "rows": len(parsed.rows)},
        "conflicts": [change_json(c) for c in plan.conflicts[:PREVIEW_CONFLICTS_MAX]],
        "updates": [change_json(c) for c in plan.updates[:PREVIEW_UPDATES_MAX]],
        "rejects": [{"source": r.source, "line": r.line, "reason": r.reason}
                    for r in parsed.rejects[:PREVIEW_REJECTS_MAX]],
        "problems": parsed.problems,
        "dough_items": dough_items,
        "fingerprint": plan.fingerprint(),
    }


def record_preview(batch: ImportBatch, parsed: ParsedImport, plan: ImportPlan,
                   dough_items: list[str]) -> None:
    """Store the preview, counts, rows and reject report on ``batch`` (the caller commits)."""
    counts = plan.counts()
    batch.status = "previewed"
    batch.new_count, batch.unchanged_count = counts["new"], counts["unchanged"]
    batch.update_count, batch.conflict_count = counts["updates"], counts["conflicts"]
    batch.reject_count = parsed.reject_count
    batch.preview = preview_json(parsed, plan, dough_items)
    batch.parsed_rows = [row.to_json() for row in parsed.rows]
    names = {file.role: file.filename for file in batch.files}
    batch.report = report_csv(parsed.rejects, names)


def _replan(batch: ImportBatch, plan: ImportPlan) -> None:
    """Refresh a batch's preview for a new plan, keeping its rejects and notes."""
    counts = plan.counts()
    batch.new_count, batch.unchanged_count = counts["new"], counts["unchanged"]
    batch.update_count, batch.conflict_count = counts["updates"], counts["conflicts"]
    old = batch.preview or {}
    parsed = ParsedImport(problems=old.get("problems", []))
    preview = preview_json(parsed, plan, old.get("dough_items", []))
    preview["rejects"] = old.get("rejects", [])
    preview["counts"].update(rejects=batch.reject_count,
                             rows=old.get("counts", {}).get("rows", 0))
    batch.preview = preview


def apply_batch(batch: ImportBatch, overwrite: bool, applied_by: str | None) -> ApplyResult:
    """Apply a previewed batch in one transaction, and record what was written.

    The plan is made again first: if the stored nights changed since the preview, nothing is
    written, the preview is refreshed and PreviewOutdated says so. Raises BatchNotReady when
    the batch is not previewed (still parsing, failed, or already applied).
    """
    if batch.status != "previewed":
        raise BatchNotReady(f"This import is {batch.status}; only a previewed import can be "
                            "applied.")
    plan = plan_import([NightRow.from_json(row) for row in batch.parsed_rows or []])
    if plan.fingerprint() != (batch.preview or {}).get("fingerprint"):
        _replan(batch, plan)
        db.session.commit()
        raise PreviewOutdated("The nights changed since this preview was made, so nothing was "
                              "applied. Check the new preview below and apply again.")
    # Claim the batch in this transaction: a second, concurrent apply finds it taken.
    claimed = db.session.execute(
        update(ImportBatch).where(ImportBatch.id == batch.id, ImportBatch.status == "previewed")
        .values(status="applied").execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        db.session.rollback()
        raise BatchNotReady("This import has already been applied.")
    try:
        result = apply_plan(plan, overwrite)
        batch.status, batch.outcome = "applied", result.as_dict()
        batch.applied_by, batch.applied_at = applied_by, utcnow()
        for file in batch.files:
            file.payload = None  # the nights hold the data now; an export may name guests
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        log.info("Import %s raced another writer; previewing again", batch.id)
        db.session.refresh(batch)
        _replan(batch, plan_import([NightRow.from_json(r) for r in batch.parsed_rows or []]))
        db.session.commit()
        raise PreviewOutdated("Other nights were saved while applying, so nothing was applied. "
                              "Check the new preview below and apply again.") from None
    return result
