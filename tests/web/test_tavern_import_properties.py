"""Property tests (hypothesis) of the tavern's games importer: it never crashes, never loses a
good row, and reports every bad one with its line and a reason.

``parse_catalogue`` is pure (bytes in, ``ParsedCatalogue`` out), so these need no app or
database. Files come in both formats (the Gamedrop reference CSV and the plain one), with any
delimiter and line end, in UTF-8 (with or without BOM), UTF-16 and Latin-1, truncated anywhere,
or as arbitrary bytes.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from webapp.tavern.imports import CatalogueFileError, GameRow, parse_catalogue
from webapp.tavern.models import PRICE_MAX, UNKNOWN_CONSOLE, name_key
from webapp.tavern.service import clean_name

BOUNDED = settings(max_examples=200, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow])

DELIMITERS = st.sampled_from([",", ";", "\t", "|"])
LINE_ENDS = st.sampled_from(["\n", "\r\n"])
#: Text that stays on one physical line (CSV quoting handles every delimiter and quote).
LINE_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00")
LATIN1_TEXT = st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                            blacklist_characters="\x7f")
STYLE_TEXT = st.characters(whitelist_categories=("L", "Nd"), whitelist_characters=" -'&")
LATIN1_STYLE_TEXT = st.characters(whitelist_categories=("L", "Nd"), max_codepoint=0xFF,
                                  whitelist_characters=" -'&")
PRICES = st.decimals(min_value=0, max_value=PRICE_MAX, places=2)
#: Header spellings each plain column may have.
PLAIN_NAMES = {"name": ["name", "Name", " GAME ", "Title"],
               "price": ["price", "Price per hour", "COST"],
               "console": ["console", "Platform"],
               "gameplay": ["gameplay", "Gameplay Styles", "style"]}
REFERENCE_HEADER = ["game_name", "release_year", "console_name", "rating", "rental_cost",
                    "genres", "gameplay_types"]


def write_record(cells: list[str], delimiter: str, line_end: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=line_end).writerow(cells)
    return out.getvalue()


def expected_styles(names: list[str]) -> tuple[str, ...]:
    """Styles as the importer keeps them: trimmed, empty ones dropped, first of each key."""
    kept: dict[str, str] = {}
    for raw in names:
        name = clean_name(raw)
        if name:
            kept.setdefault(name_key(name), name)
    return tuple(kept.values())


@st.composite
def good_game(draw, n: int, file_format: str, columns: list[str], text=LINE_TEXT,
              style_text=STYLE_TEXT):
    """(cells by column, the GameRow the parser must return but its line) for game ``n``.

    Names start with ``G<n>:`` so that no two collide in any case.
    """
    name = f"G{n}:" + draw(st.text(text, max_size=30))
    price = draw(PRICES)
    price_text = draw(st.sampled_from([str(price), str(price).replace(".", ","),
                                       f" {price} "]))
    console = draw(st.text(text, max_size=20))
    styles = draw(st.lists(st.text(style_text, max_size=15), max_size=4))
    if file_format == "reference":
        gameplay = repr(styles)
    else:
        gameplay = draw(st.sampled_from(["|", ";", " | "])).join(styles)
    cells = {"name": name, "price": price_text, "console": console, "gameplay": gameplay}
    expected = {"name": clean_name(name), "price": price}
    if "console" in columns:
        expected["console"] = clean_name(console) or UNKNOWN_CONSOLE
    if "gameplay" in columns:
        expected["styles"] = expected_styles(styles)
    return cells, expected


@st.composite
def bad_game(draw, columns: list[str], text=LINE_TEXT):
    """Cells the parser must reject (the reason it must give is not pinned down here)."""
    kind = draw(st.sampled_from(["price", "negative", "no name", "list", "too many"]))
    cells = {"name": "Z" + draw(st.text(text, max_size=20)), "price": "1",
             "console": "", "gameplay": ""}
    if kind == "price":
        cells["price"] = draw(st.text("abcxyz$% ", min_size=1, max_size=8))
    elif kind == "negative":
        cells["price"] = f"-{draw(st.decimals(min_value='0.01', max_value=100, places=2))}"
    elif kind == "no name":
        cells["name"] = draw(st.sampled_from(["", "   "]))
    elif kind == "list":
        if "gameplay" not in columns:
            cells["price"] = "free"
        cells["gameplay"] = "[" + draw(st.sampled_from(["'RPG'", "1, 2", "'open"]))
    return cells, kind == "too many"


def row_cells(file_format: str, columns: list[str], cells: dict[str, str]) -> list[str]:
    """A record's cells in the file's column order."""
    if file_format == "reference":
        return [cells["name"], "2001", cells["console"], "4.5", cells["price"], "[]",
                cells["gameplay"]]
    return [cells[column] for column in columns]


@st.composite
def catalogue_files(draw, text=LINE_TEXT, style_text=STYLE_TEXT):
    """A games file with good rows, bad rows and blank lines mixed, and what it must give.

    Returns ``(text, format, expected rows, lines of the bad rows)``.
    """
    file_format = draw(st.sampled_from(["reference", "plain"]))
    delimiter, line_end = draw(DELIMITERS), draw(LINE_ENDS)
    if file_format == "reference":
        columns = ["name", "console", "price", "gameplay"]
        header = [draw(st.sampled_from([name, name.upper()])) for name in REFERENCE_HEADER]
    else:
        optional = draw(st.lists(st.sampled_from(["console", "gameplay"]), unique=True))
        columns = draw(st.permutations(["name", "price", *optional]))
        header = [draw(st.sampled_from(PLAIN_NAMES[column])) for column in columns]
    lines, expected, bad = [write_record(header, delimiter, line_end)], [], []
    kinds = draw(st.lists(st.sampled_from(["good", "bad", "blank"]), max_size=30))
    for n, kind in enumerate(kinds):
        line = len(lines) + 1
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", delimiter * 2, "  "])) + line_end)
        elif kind == "good":
            cells, values = draw(good_game(n, file_format, columns, text, style_text))
            lines.append(write_record(row_cells(file_format, columns, cells), delimiter,
                                      line_end))
            expected.append(GameRow(line=line, **values))
        else:
            cells, extra = draw(bad_game(columns, text))
            record = row_cells(file_format, columns, cells) + (["spare"] if extra else [])
            lines.append(write_record(record, delimiter, line_end))
            bad.append(line)
    return "".join(lines), file_format, expected, bad


def check_parsed(parsed, file_format: str, expected: list[GameRow], bad: list[int]) -> None:
    assert parsed.file_format == file_format
    assert parsed.rows == expected
    assert [reject.line for reject in parsed.rejects] == bad
    assert all(reject.reason and reject.raw for reject in parsed.rejects)


@BOUNDED
@given(catalogue_files(), st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
def test_every_good_row_comes_out_and_every_bad_one_is_reported(case, encoding):
    text, file_format, expected, bad = case
    check_parsed(parse_catalogue(text.encode(encoding)), file_format, expected, bad)


@BOUNDED
@given(catalogue_files(text=LATIN1_TEXT, style_text=LATIN1_STYLE_TEXT))
def test_a_latin1_file_keeps_its_accented_names(case):
    text, file_format, expected, bad = case
    data = text.encode("latin-1")
    if not text.isascii():  # Latin-1 that happens to be valid UTF-8 ("Ã©") reads as UTF-8
        try:
            data.decode("utf-8")
            assume(False)
        except UnicodeDecodeError:
            pass
    parsed = parse_catalogue(data)
    check_parsed(parsed, file_format, expected, bad)
    if not text.isascii():
        assert any("read as Latin-1" in problem for problem in parsed.problems)


@BOUNDED
@given(catalogue_files(), st.data())
def test_a_truncated_file_keeps_every_row_before_the_cut(case, data):
    """Cut anywhere, even inside a character: no crash, and every row that ended before the
    cut comes out exactly as it would from the whole file."""
    text, file_format, expected, _ = case
    encoded = text.encode("utf-8")
    cut = data.draw(st.integers(0, len(encoded)))
    try:
        parsed = parse_catalogue(encoded[:cut])
    except CatalogueFileError:
        return  # the header itself was cut: the whole file is refused, with the reason
    complete = encoded[:cut].decode("utf-8", errors="ignore").count("\n")
    kept = {row.line: row for row in parsed.rows}
    for row in expected:
        if row.line <= complete:
            assert kept.get(row.line) == row


HEADERS = st.sampled_from([b"", b"name,price\n", b"Name;Price;Console;Gameplay\r\n",
                           b"game_name,release_year,console_name,rating,rental_cost,genres,"
                           b"gameplay_types\n"])


@BOUNDED
@given(HEADERS, st.binary(max_size=600))
def test_arbitrary_bytes_never_raise_anything_but_a_whole_file_error(header, tail):
    try:
        parsed = parse_catalogue(header + tail)
    except CatalogueFileError as error:
        assert str(error)
        return
    lines = [row.line for row in parsed.rows] + [reject.line for reject in parsed.rejects]
    assert len(lines) == len(set(lines)) and all(line >= 2 for line in lines)
    assert all(reject.reason for reject in parsed.rejects)
    assert all(row.price <= PRICE_MAX and row.price >= Decimal(0) for row in parsed.rows)


@BOUNDED
@given(HEADERS, st.text(max_size=300), st.sampled_from(["utf-8", "utf-16", "utf-16-le",
                                                        "latin-1", "cp1252", "utf-32"]))
def test_arbitrary_text_in_any_encoding_never_raises_anything_but_a_whole_file_error(
        header, tail, encoding):
    try:
        data = header.decode().encode(encoding) + tail.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    try:
        parse_catalogue(data)
    except CatalogueFileError as error:
        assert str(error)


def test_utf16_without_a_bom_is_refused_as_binary():
    """Without its BOM, UTF-16 text is full of NUL bytes: refused, with the reason."""
    try:
        parse_catalogue("name,price\nTetris,2\n".encode("utf-16-le"))
    except CatalogueFileError as error:
        assert "is not a CSV file: it holds binary data" in str(error)
    else:
        raise AssertionError("UTF-16 without a BOM was read as CSV")
