"""Property tests of the import parsers (hypothesis): they never crash, and never lose a good row.

The parsers are pure (bytes in, ``ParsedImport`` out), so these need no app or database.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections import Counter

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from webapp.pizzeria.imports import (
    DATE_RANGE,
    DATE_RE,
    MAX_DOUGHS,
    MAX_RESERVATIONS,
    ImportFileError,
    NightRow,
    ParsedImport,
    parse_exports,
    parse_nightly,
)

BOUNDED = settings(max_examples=200, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow])

DELIMITERS = st.sampled_from([",", ";", "\t", "|"])
LINE_ENDS = st.sampled_from(["\n", "\r\n"])
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16"])
DATES = st.dates(min_value=DATE_RANGE[0], max_value=DATE_RANGE[1])
#: Header spellings each column may have in a real file.
NIGHTLY_NAMES = {
    "date": ["date", "Date", " DATE ", "night"],
    "reservations": ["reservations", "Bookings", "Reservation Count"],
    "doughs": ["doughs", "Pizzas", "dough"],
    "temperature": ["temperature", "Temp"],
    "holiday": ["holiday", "Is Holiday"],
    "event_note": ["event_note", "Event Note", "notes"],
}
HOLIDAYS = [("", None), ("yes", True), ("No", False), ("TRUE", True), ("0", False),
            ("1", True), ("false", False)]
#: Text that stays on one physical line and cannot open a quoted field.
LINE_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters='\r\n"\x00')
NOTE_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00")


def write_record(cells: list[str], delimiter: str, line_end: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=line_end).writerow(cells)
    return out.getvalue()


def date_text(date: dt.date, style: int) -> str:
    return [date.isoformat(), f"{date} 19:30", f"{date}T19:30:00"][style]


@st.composite
def nightly_rows(draw, dates: list[dt.date], columns: list[str]):
    """(cells by column, the NightRow the parser must return) for each date."""
    rows = []
    for date in dates:
        reservations = draw(st.none() | st.integers(0, MAX_RESERVATIONS))
        doughs = draw(st.integers(0, MAX_DOUGHS) if reservations is None
                      else st.none() | st.integers(0, MAX_DOUGHS))
        cells = {"date": date_text(date, draw(st.integers(0, 2))),
                 "reservations": "" if reservations is None else str(reservations),
                 "doughs": "" if doughs is None else draw(st.sampled_from(
                     [str(doughs), f" {doughs} ", f"{doughs}.0"]))}
        expected = {"reservations": reservations, "doughs": doughs}
        if "temperature" in columns:
            tenths = draw(st.none() | st.integers(-600, 600))
            text = "" if tenths is None else f"{tenths / 10:.1f}"
            if draw(st.booleans()):
                text = text.replace(".", ",")
            cells["temperature"] = text
            expected["temperature"] = None if tenths is None else float(text.replace(",", "."))
        if "holiday" in columns:
            cells["holiday"], expected["holiday"] = draw(st.sampled_from(HOLIDAYS))
        if "event_note" in columns:
            note = draw(st.none() | st.text(NOTE_TEXT, min_size=1, max_size=200)
                        .filter(lambda s: s == s.strip()))
            cells["event_note"], expected["event_note"] = note or "", note
        rows.append((cells, NightRow(date, **expected)))
    return rows


@st.composite
def garbage_line(draw, delimiter: str, columns: list[str]) -> str:
    """One physical line the parser must reject: its date cell is not a date, or its
    reservations cell is not a number."""
    position = columns.index("date")
    if draw(st.booleans()):
        cells = [""] * len(columns)
        cells[position] = draw(DATES).isoformat()
        cells[columns.index("reservations")] = draw(st.text("abcxyz", min_size=1, max_size=8))
        return delimiter.join(cells)
    line = draw(st.text(LINE_TEXT, min_size=1, max_size=40))
    cells = line.split(delimiter)  # without '"' a split is exactly what csv reads
    date_cell = cells[position].strip() if position < len(cells) else ""
    assume(any(cell.strip() for cell in cells) and not DATE_RE.fullmatch(date_cell))
    return line


@st.composite
def nightly_files(draw):
    """A nightly CSV with good rows, garbage lines and blank lines mixed, and the truth."""
    delimiter, line_end = draw(DELIMITERS), draw(LINE_ENDS)
    optional = draw(st.lists(st.sampled_from(["temperature", "holiday", "event_note"]),
                             unique=True))
    columns = draw(st.permutations(["date", "reservations", "doughs", *optional]))
    header = [draw(st.sampled_from(NIGHTLY_NAMES[name])) for name in columns]
    dates = draw(st.lists(DATES, unique=True, max_size=25))
    good = draw(nightly_rows(dates, columns))
    bad = draw(st.lists(garbage_line(delimiter, columns), max_size=10))
    blank = draw(st.lists(st.sampled_from(["", delimiter * (len(columns) - 1), "  "]),
                          max_size=3))
    items = [("good", i) for i in range(len(good))] + [("bad", i) for i in range(len(bad))]
    items += [("blank", i) for i in range(len(blank))]
    # A repeat of the latest good row's date is a bad row too (before any good row: blank).
    items += [("repeat", i) for i in range(draw(st.integers(0, 3)))]
    order = draw(st.permutations(items))

    text = write_record(header, delimiter, line_end)
    line = 1 + text.count("\n")  # the next record's physical line
    expected_rows, expected_lines = [], []
    for kind, index in order:
        if kind == "good":
            cells, row = good[index]
            record = write_record([cells[name] for name in columns], delimiter, line_end)
            expected_rows.append(row)
        elif kind == "repeat":
            repeated = ({"date": str(expected_rows[-1].date), "reservations": "1"}
                        if expected_rows else {})
            record = write_record([repeated.get(name, "") for name in columns], delimiter,
                                  line_end)
            if expected_rows:
                expected_lines.append(line)
        else:
            record = (bad if kind == "bad" else blank)[index] + line_end
            if kind == "bad":
                expected_lines.append(line)
        text += record
        line += record.count("\n")
    return text.encode(draw(ENCODINGS)), expected_rows, expected_lines


@BOUNDED
@given(nightly_files())
def test_every_good_row_comes_out_and_every_garbage_line_is_reported(case):
    data, expected_rows, expected_lines = case
    parsed = parse_nightly(data)
    assert parsed.rows == expected_rows
    assert [reject.line for reject in parsed.rejects] == expected_lines
    assert all(reject.reason for reject in parsed.rejects)


def check_parsed(parsed: ParsedImport) -> None:
    """Invariants of any result: dates unique, lines positive, every count consistent."""
    dates = [row.date for row in parsed.rows]
    assert len(dates) == len(set(dates))
    assert all(reject.line >= 1 and reject.reason for reject in parsed.rejects)
    assert parsed.reject_count == len(parsed.rejects) + parsed.unlisted_rejects
    assert all(row.reservations is not None or row.doughs is not None for row in parsed.rows)


def parse_or_refuse(parse, *args) -> ParsedImport | None:
    """Parse; a whole-file refusal is allowed, any other exception fails the test."""
    try:
        return parse(*args)
    except ImportFileError as error:
        assert str(error)
        return None


HEADERS = st.sampled_from([b"", b"date,reservations,doughs,temperature,holiday,event_note\n",
                           b"date;reservations;doughs\r\n", codecs.BOM_UTF8 + b"Date\tBookings\tPizzas\n",
                           b"datetime,item,qty,guests\n"])


@BOUNDED
@given(HEADERS, st.binary(max_size=600))
def test_arbitrary_bytes_never_raise_anything_but_a_whole_file_error(header, tail):
    data = header + tail
    parsed = parse_or_refuse(parse_nightly, data)
    if parsed is not None:
        check_parsed(parsed)
    parsed = parse_or_refuse(parse_exports, data, data, ["pizza"])
    if parsed is not None:
        check_parsed(parsed)


@BOUNDED
@given(HEADERS, st.text(max_size=300), ENCODINGS)
def test_arbitrary_text_never_raises_anything_but_a_whole_file_error(header, tail, encoding):
    data = header + tail.encode(encoding, errors="surrogatepass")
    parsed = parse_or_refuse(parse_nightly, data)
    if parsed is not None:
        check_parsed(parsed)


DOUGH_SPELLINGS = ["pizza", "Pizza", " PIZZA ", "calzone", "Calzone "]
OTHER_ITEMS = ["Salad", "Soda", "pizza slice", "Tiramisu"]


@st.composite
def export_files(draw):
    """A reservations export and a point-of-sale export with garbage, and the truth."""
    delimiter, line_end = draw(DELIMITERS), draw(LINE_ENDS)
    dates = draw(st.lists(st.dates(dt.date(2023, 1, 1), dt.date(2023, 1, 20)), max_size=30))
    reservations = [write_record(["reserved_at", "guests", "name"], delimiter, line_end)]
    counts, bad_reservations = Counter(), []
    for date in dates:
        if draw(st.integers(0, 5)) == 0:
            bad_reservations.append(1 + sum(r.count("\n") for r in reservations))
            reservations.append(write_record([f"{date} 7pm", "2", "x"], delimiter, line_end))
        reservations.append(write_record(
            [date_text(date, draw(st.integers(0, 2))), str(draw(st.integers(1, 12))),
             draw(st.text(LINE_TEXT, max_size=10))], delimiter, line_end))
        counts[date] += 1
    pos = [write_record(["order", "created_at", "item", "qty"], delimiter, line_end)]
    totals: dict[dt.date, int] = {}
    bad_pos = []
    for _ in range(draw(st.integers(0, 30))):
        date = draw(st.dates(dt.date(2023, 1, 1), dt.date(2023, 1, 20)))
        dough = draw(st.booleans())
        item = draw(st.sampled_from(DOUGH_SPELLINGS if dough else OTHER_ITEMS))
        quantity = draw(st.integers(0, 20))
        if draw(st.integers(0, 5)) == 0:
            bad_pos.append(1 + sum(r.count("\n") for r in pos))
            pos.append(write_record(["1", f"{date}T12:00:00", item, "lots"], delimiter, line_end))
        pos.append(write_record(["1", f"{date}T12:00:00", item, str(quantity)],
                                delimiter, line_end))
        totals[date] = totals.get(date, 0) + (quantity if dough else 0)
    expected = [NightRow(date, counts.get(date), totals.get(date))
                for date in sorted(set(counts) | set(totals))]
    return ("".join(reservations).encode(), "".join(pos).encode(), expected,
            [("reservations", line) for line in bad_reservations]
            + [("pos", line) for line in bad_pos])


@BOUNDED
@given(export_files())
def test_exports_count_and_sum_every_good_row_and_report_every_bad_one(case):
    reservations, pos, expected_rows, expected_rejects = case
    parsed = parse_exports(reservations, pos, ["Pizza", "calzone"])
    assert parsed.rows == expected_rows
    assert [(reject.source, reject.line) for reject in parsed.rejects] == expected_rejects
