"""Pizzeria imports: parsing, planning, the upload → preview → apply flow, the report and the CLI."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from datetime import timedelta

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.support import wait_for_job
from webapp import PROJECT_ROOT, create_app
from webapp.auth.models import utcnow
from webapp.csv_import import neutralise, report_csv, sniff_delimiter
from webapp.extensions import db
from webapp.jobs.models import Job
from webapp.pizzeria.import_models import ImportBatch, ImportFile, get_batch
from webapp.pizzeria.imports import (
    MAX_FILE_BYTES,
    ImportFileError,
    NightRow,
    apply_plan,
    parse_exports,
    parse_nightly,
    plan_import,
)
from webapp.pizzeria.models import Night, PizzeriaSettings

DATA = PROJECT_ROOT / "webapp" / "demo" / "data"
D = dt.date

NIGHTLY = (
    b"date,reservations,doughs,temperature,holiday,event_note\n"
    b"2023-05-01,12,36,18.5,no,\n"
    b"2023-05-02,20,72,,,\n"
    b"2023-05-03,twelve,68,,,\n"          # line 4: bad
    b"2023-05-04,30,82,21,yes,Bank holiday\n"
    b"\n"                                  # line 6: blank, skipped
    b"2023-05-32,1,2,,,\n"                 # line 7: bad
    b"=HYPERLINK(\"http://evil\"),1,2\n"    # line 8: bad, and a formula
    b"2023-05-05,24,,,,\n"
)


def upload(client, files: dict[str, tuple[bytes, str]], mode: str = "nightly", **kwargs):
    """POST the upload form with ``files`` = {field: (content, filename)}.

    The body is encoded here, in memory: for a large file the test client would spool it to a
    temporary file that it never closes (a ResourceWarning, so an error here).
    """
    fields = {"mode": mode, **kwargs.pop("extra", {}),
              **{field: FileStorage(io.BytesIO(content), name)
                 for field, (content, name) in files.items()}}
    boundary, body = encode_multipart(fields)
    return client.post("/pizzeria/import", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}", **kwargs)


def batch_id_from(response) -> str:
    return re.search(r"/pizzeria/import/([0-9a-f]{32})", response.headers["Location"]
                     if response.status_code == 303 else response.headers["HX-Push-Url"]).group(1)


def read(app, batch_id: str) -> ImportBatch:
    """Wait for the batch's job, then return the batch (detached: read its columns only)."""
    with app.app_context():
        wait_for_job(get_batch(batch_id).job_id)
        batch = get_batch(batch_id)
        db.session.expunge(batch)
        return batch


def import_file(app, client, content: bytes, name: str = "nights.csv") -> str:
    """Upload a nightly CSV, wait until it is previewed, return the batch id."""
    response = upload(client, {"nightly": (content, name)})
    assert response.status_code == 303, response.data
    batch_id = batch_id_from(response)
    read(app, batch_id)
    return batch_id


def stored_nights(app) -> dict[dt.date, tuple]:
    with app.app_context():
        return {n.date: (n.reservations, n.doughs, n.temperature, n.holiday, n.event_note)
                for n in db.session.query(Night)}


def add_night(app, **values) -> None:
    with app.app_context():
        db.session.add(Night(**values))
        db.session.commit()


# --- Parsing (pure functions) ---------------------------------------------------------------


def test_nightly_keeps_good_rows_and_reports_bad_ones_by_physical_line():
    parsed = parse_nightly(NIGHTLY)
    assert parsed.rows == [
        NightRow(D(2023, 5, 1), 12, 36, 18.5, False, None),
        NightRow(D(2023, 5, 2), 20, 72),
        NightRow(D(2023, 5, 4), 30, 82, 21.0, True, "Bank holiday"),
        NightRow(D(2023, 5, 5), 24, None),
    ]
    assert [r.line for r in parsed.rejects] == [4, 7, 8]
    assert str(parsed.rejects[0]) == "line 4: reservations is not a whole number: 'twelve'"
    assert "date is not a date" in parsed.rejects[1].reason
    assert parsed.rejects[0].raw == "2023-05-03,twelve,68,,,"


def test_a_row_lists_all_its_problems_and_a_repeated_date_is_a_bad_row():
    parsed = parse_nightly(b"date,reservations,doughs,holiday\n"
                           b"2023-05-01,-3,lots,maybe\n"
                           b"2023-05-02,1,2,no\n"
                           b"2023-05-02,1,2,no\n"
                           b"2023-05-03,,,\n"
                           b"2023-05-04,1,2,no,surprise\n")
    reasons = {r.line: r.reason for r in parsed.rejects}
    assert reasons[2] == ("reservations must be between 0 and 10000: '-3'; doughs is not a whole "
                          "number: 'lots'; holiday must be true/false, yes/no or 1/0: 'maybe'")
    assert reasons[4] == "date 2023-05-02 already appears on line 3"
    assert reasons[5] == "neither reservations nor doughs is given"
    assert reasons[6] == "the row has 5 values but the header has 4 columns"
    assert [row.date for row in parsed.rows] == [D(2023, 5, 2)]


def test_quoted_fields_spanning_lines_keep_later_line_numbers_physical():
    parsed = parse_nightly(b'date,reservations,doughs,event_note\n'
                           b'2023-05-01,1,2,"two\nlines"\n'
                           b'2023-05-02,x,2,\n')
    assert parsed.rows[0].event_note == "two\nlines"
    assert [r.line for r in parsed.rejects] == [4]


def test_missing_columns_fail_the_whole_file_naming_them_and_the_columns_found():
    with pytest.raises(ImportFileError) as caught:
        parse_nightly(b"Date,Guests,Pizza count\n2023-05-01,1,2\n")
    message = str(caught.value)
    assert "missing the column(s) reservations" in message
    assert "doughs (or dough, dough_count, pizzas)" in message
    assert "'Date', 'Guests', 'Pizza count'" in message
    for empty in (b"", b"\n\n  \n", b"\xef\xbb\xbf"):
        with pytest.raises(ImportFileError, match="empty"):
            parse_nightly(empty)


def test_headers_match_synonyms_in_any_case_and_spacing():
    parsed = parse_nightly(b" DATE ; Bookings ;Pizzas;Event Note\n2023-05-01;3;9;Quiz night\n")
    assert parsed.rows == [NightRow(D(2023, 5, 1), 3, 9, event_note="Quiz night")]


@pytest.mark.parametrize("encoded", [
    "date,reservations,doughs,event_note\n2023-05-01,1,2,Fête\n".encode(),
    codecs.BOM_UTF8 + "date,reservations,doughs,event_note\n2023-05-01,1,2,Fête\n".encode(),
    "date,reservations,doughs,event_note\n2023-05-01,1,2,Fête\n".encode("latin-1"),
    "date\treservations\tdoughs\tevent_note\r\n2023-05-01\t1\t2\tFête\r\n".encode("utf-16"),
])
def test_encodings_utf8_bom_latin1_and_utf16(encoded):
    parsed = parse_nightly(encoded)
    assert parsed.rows == [NightRow(D(2023, 5, 1), 1, 2, event_note="Fête")]
    assert not parsed.rejects


def test_latin1_fallback_is_noted():
    parsed = parse_nightly(b"date,reservations,doughs\n2023-05-01,1,2\n" + b"\xff,1,2\n")
    assert any("Latin-1" in problem for problem in parsed.problems)
    assert [r.line for r in parsed.rejects] == [3]


@pytest.mark.parametrize(("header", "delimiter"), [
    ("date,reservations,doughs", ","), ("date;reservations;doughs", ";"),
    ("date\treservations\tdoughs", "\t"), ("date|reservations|doughs", "|"),
    ("date;event, note;doughs", ";"), ("date", ","), ("", ","),
])
def test_sniffing_the_delimiter_from_the_header(header, delimiter):
    assert sniff_delimiter(header + "\n1,2,3\n") == delimiter


@pytest.mark.parametrize(("text", "expected"), [
    ("2023-05-29", D(2023, 5, 29)), ("2023-05-29 19:30", D(2023, 5, 29)),
    ("2023-05-29T19:30:00", D(2023, 5, 29)), ("2023-05-29T19:30:00.250+02:00", D(2023, 5, 29)),
    ("2023-05-29T23:30:00Z", D(2023, 5, 29)),
])
def test_reservation_dates_in_iso_forms(text, expected):
    parsed = parse_exports(f"reserved_at\n{text}\n".encode(), None, ["pizza"])
    assert parsed.rows == [NightRow(expected, reservations=1)]


@pytest.mark.parametrize("text", ["29/05/2023", "2023-05-29 25:00", "2023-02-30", "20230529",
                                  "1850-01-01", "2023-05-29 7pm"])
def test_dates_that_are_not_iso_or_not_real_are_bad_rows(text):
    parsed = parse_exports(f"date\n{text}\n".encode(), None, ["pizza"])
    assert parsed.rows == [] and [r.line for r in parsed.rejects] == [2]


def test_exports_are_counted_summed_and_aligned_by_date():
    reservations = (b"Reserved At,Party Size,Name\n"
                    b"2023-05-01 19:30,4,Ann\n"
                    b"2023-05-01T20:00:00,2,Bob\n"
                    b"2023-05-02 19:00,x,Cy\n"         # line 4: bad party size
                    b"2023-05-03 18:00,,Di\n")
    pos = (b"timestamp;product;qty;price\n"
           b"2023-05-01 19:40; Pizza ;2;12\n"
           b"2023-05-01 19:41;Wine;0,5;4\n"
           b"2023-05-01 19:42;CALZONE;1;11\n"
           b"2023-05-02 12:00;Salad;1;7\n"
           b"2023-05-02 12:01;pizza;1.5;12\n"          # line 6: half a dough
           b"2023-05-04 12:00;Pizza;3;12\n"
           b"2023-05-04 12:10;pizza;-1;-12\n")         # a refund counts against the total
    parsed = parse_exports(reservations, pos, [" Pizza", "calzone "])
    assert parsed.rows == [
        NightRow(D(2023, 5, 1), reservations=2, doughs=3),
        NightRow(D(2023, 5, 2), reservations=None, doughs=0),
        NightRow(D(2023, 5, 3), reservations=1, doughs=None),
        NightRow(D(2023, 5, 4), reservations=None, doughs=2),
    ]
    assert [(r.source, r.line) for r in parsed.rejects] == [("reservations", 4), ("pos", 6)]
    assert parsed.rejects[0].reason == "Party Size is not a whole number: 'x'"
    assert parsed.rejects[1].reason == "qty is not a whole number: '1.5'"
    assert "Columns not used from the point-of-sale export: price." in parsed.problems


def test_an_implausible_total_leaves_that_field_out_and_says_so():
    parsed = parse_exports(b"date\n" + b"2023-01-01\n" * 10_001 + b"2023-01-02\n",
                           b"date,item,qty\n2023-01-02,pizza,-3\n2023-01-03,pizza,2\n",
                           ["pizza"])
    assert parsed.rows == [NightRow(D(2023, 1, 2), 1, None), NightRow(D(2023, 1, 3), None, 2)]
    assert parsed.problems == [
        "2023-01-02: the dough items add up to -3, outside 0 to 100000; the doughs of that "
        "night were left out.",
        "2023-01-01: 10001 reservations is more than 10000; the reservations of that night were "
        "left out.",
    ]


def test_exports_need_their_columns_and_at_least_one_file():
    with pytest.raises(ImportFileError, match="point-of-sale export is missing the column"):
        parse_exports(None, b"datetime,item\n2023-05-01,pizza\n", ["pizza"])
    with pytest.raises(ImportFileError, match="Give a reservations export"):
        parse_exports(None, None, ["pizza"])


def test_progress_is_reported_while_parsing():
    rows = "".join(f"{D(2000, 1, 1) + timedelta(days=i)},1,2\n" for i in range(5000))
    calls = []
    parsed = parse_nightly(f"date,reservations,doughs\n{rows}".encode(),
                           on_progress=lambda done, total: calls.append((done, total)))
    assert len(parsed.rows) == 5000
    assert len(calls) == 2 and calls[-1][0] < calls[-1][1] and calls[0][0] < calls[1][0]


def test_the_report_neutralises_formulas_and_keeps_line_numbers():
    parsed = parse_nightly(NIGHTLY)
    rows = list(csv.reader(io.StringIO(report_csv(parsed.rejects, {"nightly": "=x.csv"}))))
    assert rows[0] == ["file", "line", "reason", "raw_row"]
    assert [row[1] for row in rows[1:]] == ["4", "7", "8"]
    assert rows[3][0] == "'=x.csv"
    assert rows[3][3] == "'=HYPERLINK(\"http://evil\"),1,2"
    for cell in ("=1", "+1", "-1", "@a", "\tx", "\rx"):
        assert neutralise(cell) == "'" + cell
    assert neutralise("plain") == "plain"


def test_the_sample_files_parse_with_their_deliberate_bad_rows():
    nightly = parse_nightly((DATA / "pizzeria_nightly.csv").read_bytes())
    assert len(nightly.rows) == 13 and [r.line for r in nightly.rejects] == [8, 13]
    exports = parse_exports((DATA / "pizzeria_reservations_export.csv").read_bytes(),
                            (DATA / "pizzeria_pos_export.csv").read_bytes(), ["pizza"])
    assert exports.rows == [NightRow(D(2024, 6, 14), 12, 35), NightRow(D(2024, 6, 15), 18, 53),
                            NightRow(D(2024, 6, 16), 9, None)]
    assert [(r.source, r.line) for r in exports.rejects] == [
        ("reservations", 17), ("reservations", 26), ("pos", 13), ("pos", 41)]


# --- Planning and applying ------------------------------------------------------------------


def test_plan_sorts_rows_into_new_unchanged_fill_ins_and_conflicts(app):
    add_night(app, date=D(2023, 5, 1), reservations=12, doughs=36)
    add_night(app, date=D(2023, 5, 2), reservations=20, doughs=None)
    add_night(app, date=D(2023, 5, 3), reservations=18, doughs=68)
    rows = [NightRow(D(2023, 5, 1), 12, 36), NightRow(D(2023, 5, 2), 20, 72),
            NightRow(D(2023, 5, 3), 19, 68, temperature=20.5), NightRow(D(2023, 5, 4), 5, None)]
    with app.app_context():
        plan = plan_import(rows)
        assert plan.counts() == {"new": 1, "unchanged": 1, "updates": 1, "conflicts": 1}
        assert plan.updates[0].fills == {"doughs": 72}
        assert plan.conflicts[0].differences == {"reservations": (18, 19)}
        assert plan.conflicts[0].fills == {"temperature": 20.5}
        apply_plan(plan, overwrite=False)
        db.session.commit()
    nights = stored_nights(app)
    assert nights[D(2023, 5, 2)][:2] == (20, 72)
    assert nights[D(2023, 5, 3)][:3] == (18, 68, 20.5)  # kept the conflict, filled the rest
    assert nights[D(2023, 5, 4)] == (5, None, None, False, None)


def test_plan_reads_the_nights_in_chunks_not_row_by_row(app):
    from sqlalchemy import event

    rows = [NightRow(D(2020, 1, 1) + timedelta(days=i), 1, 2) for i in range(1200)]
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", record)
        plan_import(rows)
        event.remove(db.engine, "before_cursor_execute", record)
    assert len([s for s in statements if "pizzeria_night" in s]) == 3


# --- Pages and fragments --------------------------------------------------------------------


def test_import_page_has_both_forms_and_the_list(client, auth):
    auth.login("host")
    response = client.get("/pizzeria/import")
    assert response.status_code == 200
    for marker in (b'id="nightly-form"', b'id="exports-form"', b'id="import-batches"',
                   b'id="import-batch"', b'enctype="multipart/form-data"', b"No imports yet."):
        assert marker in response.data
    assert b"<strong>pizza</strong>" in response.data  # the dough items from the settings


def test_the_list_fragment_for_htmx(htmx_client, auth):
    auth.login("staff")
    response = htmx_client.get("/pizzeria/import")
    assert b"<html" not in response.data
    assert response.data.lstrip().startswith(b'<section id="import-batches"')
    assert b'hx-trigger="imports-changed from:body"' in response.data
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.parametrize(("files", "message"), [
    ({}, b"Choose a file to upload."),
    ({"nightly": (b"date,reservations,doughs\n", "nights.xlsx")},
     b"Only .csv and .txt files can be imported."),
    ({"nightly": (b"", "nights.csv")}, b"The file is empty."),
    ({"nightly": (b"x" * (MAX_FILE_BYTES + 1), "nights.csv")}, b"larger than 10 MB"),
])
def test_invalid_nightly_upload_is_422_with_the_form_block(app, htmx_client, auth, files, message):
    auth.login("host")
    response = upload(htmx_client, files)
    assert response.status_code == 422
    assert b"<html" not in response.data
    assert response.data.lstrip().startswith(b'<section id="nightly-form"')
    assert message in response.data
    assert response.headers["HX-Retarget"] == "#nightly-form"
    with app.app_context():
        assert db.session.query(ImportBatch).count() == 0


def test_exports_upload_needs_at_least_one_file(client, auth):
    auth.login("host")
    response = upload(client, {}, mode="exports")
    assert response.status_code == 422
    assert b"<html" in response.data  # a plain post gets the whole page, with the message
    assert b"Choose a reservations export, a point-of-sale export, or both." in response.data


def test_plain_upload_redirects_to_the_batch_then_shows_the_preview(app, client, auth):
    auth.login("host")
    response = upload(client, {"nightly": (NIGHTLY, "may.csv")})
    assert response.status_code == 303
    batch_id = batch_id_from(response)
    batch = read(app, batch_id)
    assert batch.status == "previewed" and batch.created_by == "test-host"
    assert (batch.new_count, batch.unchanged_count, batch.reject_count) == (4, 0, 3)
    page = client.get(f"/pizzeria/import/{batch_id}")
    assert page.status_code == 200 and b"<html" in page.data
    assert b'data-count="new">4<' in page.data
    assert b"line 4: reservations is not a whole number: &#39;twelve&#39;" in page.data
    assert b'hx-trigger="every 1s"' not in page.data
    assert b"may.csv" in client.get("/pizzeria/import").data  # in the recent list


def test_htmx_upload_returns_the_card_and_pushes_its_url(app, htmx_client, auth):
    auth.login("staff")
    response = upload(htmx_client, {"nightly": (NIGHTLY, "may.csv")})
    assert response.status_code == 202
    assert b"<html" not in response.data
    assert response.data.lstrip().startswith(b'<section id="import-batch"')
    assert "imports-changed" in response.headers["HX-Trigger"]
    assert "HX-Request" in response.headers["Vary"]
    # The used form comes back empty, out of band; the other form is left alone.
    assert b'<section id="nightly-form" class="card" hx-swap-oob="true">' in response.data
    assert b'id="exports-form"' not in response.data
    read(app, batch_id_from(response))


def running_batch(app, progress: int = 40) -> str:
    """A batch whose job is running, as a worker would leave it mid-way."""
    with app.app_context():
        job = Job(kind="pizzeria-import", status="running", progress=progress,
                  message="Reading line 400 of 1,000", heartbeat_at=utcnow())
        batch = ImportBatch(kind="nightly", status="parsing", files=[
            ImportFile(role="nightly", filename="big.csv", size=3, payload=b"abc")])
        db.session.add_all([job, batch])
        db.session.flush()
        batch.job_id = job.id
        db.session.commit()
        return batch.id


def test_card_polls_with_a_progress_bar_while_reading_then_stops(app, htmx_client, auth):
    auth.login("host")
    batch_id = running_batch(app)
    response = htmx_client.get(f"/pizzeria/import/{batch_id}")
    assert response.data.lstrip().startswith(b'<section id="import-batch"')
    assert b'hx-trigger="every 1s"' in response.data
    assert b'aria-valuenow="40"' in response.data and b"Reading line 400" in response.data
    assert "HX-Trigger" not in response.headers
    with app.app_context():
        batch = get_batch(batch_id)
        batch.status, batch.preview, batch.new_count = "previewed", {"counts": {}}, 7
        db.session.commit()
    response = htmx_client.get(f"/pizzeria/import/{batch_id}",
                               headers={"HX-Trigger": "import-batch"})
    assert b'hx-trigger="every 1s"' not in response.data
    assert b'data-count="new">7<' in response.data
    assert "imports-changed" in response.headers["HX-Trigger"]  # the list refreshes once


def test_a_batch_whose_worker_died_is_shown_failed(app, client, auth):
    auth.login("host")
    batch_id = running_batch(app)
    with app.app_context():
        job = db.session.get(Job, get_batch(batch_id).job_id)
        job.heartbeat_at = utcnow() - timedelta(hours=1)
        db.session.commit()
    page = client.get(f"/pizzeria/import/{batch_id}")
    assert b"This import failed: No heartbeat" in page.data
    with app.app_context():
        assert get_batch(batch_id).status == "failed"


def test_a_file_missing_a_column_fails_as_a_whole(app, client, auth):
    auth.login("host")
    response = upload(client, {"nightly": (b"date,reservations\n2023-05-01,3\n", "n.csv")})
    batch = read(app, batch_id_from(response))
    assert batch.status == "failed"
    assert batch.error.startswith("The nightly CSV is missing the column(s) doughs")
    page = client.get(response.headers["Location"])
    assert b"This import failed: The nightly CSV is missing the column(s) doughs" in page.data
    assert b"Columns found in its header: &#39;date&#39;, &#39;reservations&#39;" in page.data
    assert client.get(f"{response.headers['Location']}/report.csv").status_code == 404


def test_unknown_batches_are_404(client, htmx_client, auth):
    auth.login("host")
    missing = "0" * 32
    assert client.get(f"/pizzeria/import/{missing}").status_code == 404
    assert client.get(f"/pizzeria/import/{missing}/report.csv").status_code == 404
    response = htmx_client.post(f"/pizzeria/import/{missing}/apply", data={"conflicts": "keep"})
    assert response.status_code == 404 and response.headers["HX-Retarget"] == "#flash"


def test_the_report_download(app, client, auth):
    auth.login("host")
    batch_id = import_file(app, client, NIGHTLY, "may.csv")
    response = client.get(f"/pizzeria/import/{batch_id}/report.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="pizzeria-import-{batch_id[:8]}-rejects.csv"')
    text = response.data.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == ["file", "line", "reason", "raw_row"]
    assert rows[1] == ["may.csv", "4", "reservations is not a whole number: 'twelve'",
                       "2023-05-03,twelve,68,,,"]
    assert [row[1] for row in rows[1:]] == ["4", "7", "8"]
    assert rows[3][3].startswith("'=HYPERLINK")


def test_reimporting_the_same_file_changes_nothing(app, client, auth):
    auth.login("host")
    first = import_file(app, client, NIGHTLY)
    assert client.post(f"/pizzeria/import/{first}/apply", data={"conflicts": "keep"}
                       ).status_code == 303
    before = stored_nights(app)
    assert len(before) == 4
    again = import_file(app, client, NIGHTLY)
    batch = read(app, again)
    assert (batch.new_count, batch.unchanged_count, batch.update_count,
            batch.conflict_count) == (0, 4, 0, 0)
    page = client.get(f"/pizzeria/import/{again}").data
    assert b"Nothing to change" in page and b"apply-form" not in page
    assert stored_nights(app) == before


def test_fill_in_is_an_update_not_a_conflict(app, client, auth):
    auth.login("host")
    add_night(app, date=D(2023, 5, 5), reservations=24, doughs=None)
    batch_id = import_file(app, client, b"date,reservations,doughs\n2023-05-05,24,80\n")
    batch = read(app, batch_id)
    assert (batch.update_count, batch.conflict_count) == (1, 0)
    page = client.get(f"/pizzeria/import/{batch_id}").data
    assert b"2023-05-05: doughs 80" in page
    assert b">Apply</button>" in page and b"overwrite conflicts" not in page
    client.post(f"/pizzeria/import/{batch_id}/apply", data={"conflicts": "keep"})
    assert stored_nights(app)[D(2023, 5, 5)][:2] == (24, 80)


@pytest.fixture
def conflicting(app, client, auth):
    """Two stored nights, and a previewed import that disagrees with one and adds one."""
    auth.login("host")
    add_night(app, date=D(2023, 5, 1), reservations=12, doughs=36, holiday=False)
    add_night(app, date=D(2023, 5, 2), reservations=20, doughs=None)
    return import_file(app, client, b"date,reservations,doughs,holiday\n"
                                    b"2023-05-01,12,40,yes\n"
                                    b"2023-05-02,20,72,\n"
                                    b"2023-05-03,7,21,\n")


def test_conflicts_are_previewed_with_old_and_new_values(app, client, conflicting):
    batch = read(app, conflicting)
    assert (batch.new_count, batch.update_count, batch.conflict_count) == (1, 1, 1)
    page = client.get(f"/pizzeria/import/{conflicting}").data.decode()
    row = re.search(r'<tr data-date="2023-05-01">.*?</tr>', page, re.S).group(0)
    assert "doughs" in row and ">36<" in row and ">40<" in row
    assert "holiday" in page and ">no<" in page and ">yes<" in page
    assert "Apply, keep existing values for conflicts" in page
    assert "Apply, overwrite conflicts" in page
    assert stored_nights(app)[D(2023, 5, 1)][:2] == (12, 36)  # nothing applied yet


def test_apply_keeping_existing_values(app, htmx_client, conflicting):
    response = htmx_client.post(f"/pizzeria/import/{conflicting}/apply",
                                data={"conflicts": "keep"})
    assert response.status_code == 200
    assert response.data.lstrip().startswith(b'<section id="import-batch"')
    outcome = re.search(rb'<p class="flash flash-success outcome".*?</p>', response.data, re.S)
    assert b"by test-host" in outcome.group(0)
    assert re.sub(rb"\s+", b" ", outcome.group(0)).endswith(
        b"1 night added, 1 filled in, 1 conflict kept as stored.</p>")
    assert "imports-changed" in response.headers["HX-Trigger"]
    nights = stored_nights(app)
    assert nights[D(2023, 5, 1)] == (12, 36, None, False, None)
    assert nights[D(2023, 5, 2)][:2] == (20, 72)
    assert nights[D(2023, 5, 3)][:2] == (7, 21)
    with app.app_context():
        batch = get_batch(conflicting)
        assert batch.status == "applied" and batch.applied_by == "test-host"
        assert batch.outcome == {"inserted": 1, "filled": 1, "overwritten": 0, "kept": 1,
                                 "overwrite": False}
        assert all(file.payload is None for file in batch.files)


def test_apply_overwriting_conflicts(app, client, conflicting):
    response = client.post(f"/pizzeria/import/{conflicting}/apply",
                           data={"conflicts": "overwrite"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/pizzeria/import/{conflicting}")
    page = client.get(response.headers["Location"]).data
    assert b"1 conflict overwritten" in page and b"kept as stored" not in page
    assert stored_nights(app)[D(2023, 5, 1)] == (12, 40, None, True, None)


def test_applying_twice_is_refused(app, htmx_client, conflicting):
    htmx_client.post(f"/pizzeria/import/{conflicting}/apply", data={"conflicts": "keep"})
    response = htmx_client.post(f"/pizzeria/import/{conflicting}/apply",
                                data={"conflicts": "overwrite"})
    assert response.status_code == 409
    assert b"only a previewed import can be applied" in response.data
    assert stored_nights(app)[D(2023, 5, 1)][:2] == (12, 36)


def test_apply_without_a_choice_is_422(app, htmx_client, conflicting):
    for data in ({}, {"conflicts": "whatever"}):
        response = htmx_client.post(f"/pizzeria/import/{conflicting}/apply", data=data)
        assert response.status_code == 422
        assert response.data.lstrip().startswith(b'<section id="import-batch"')
    assert D(2023, 5, 3) not in stored_nights(app)


def test_nights_changed_since_the_preview_are_previewed_again(app, htmx_client, conflicting):
    with app.app_context():
        night = db.session.query(Night).filter_by(date=D(2023, 5, 2)).one()
        night.doughs = 70  # someone typed it in meanwhile: the fill-in became a conflict
        db.session.commit()
    response = htmx_client.post(f"/pizzeria/import/{conflicting}/apply",
                                data={"conflicts": "overwrite"})
    assert response.status_code == 409
    assert b"The nights changed since this preview was made" in response.data
    assert b'data-count="conflicts">2<' in response.data
    assert stored_nights(app)[D(2023, 5, 2)][1] == 70 and D(2023, 5, 3) not in stored_nights(app)
    response = htmx_client.post(f"/pizzeria/import/{conflicting}/apply",
                                data={"conflicts": "overwrite"})
    assert response.status_code == 200
    assert stored_nights(app)[D(2023, 5, 2)][1] == 72


def test_a_night_saved_while_applying_rolls_everything_back(app, htmx_client, conflicting):
    """Another writer adds a "new" date between the last check and the insert: nothing is
    written, and the preview is made again."""
    from sqlalchemy import event, insert

    raced = []

    def race(conn, cursor, statement, *args):
        if raced or not statement.lstrip().upper().startswith("UPDATE PIZZERIA_IMPORT_BATCH"):
            return
        raced.append(True)
        with db.engine.begin() as other:  # another worker, committing first
            other.execute(insert(Night), {"date": D(2023, 5, 3), "reservations": 9,
                                          "doughs": 30, "holiday": False,
                                          "updated_at": utcnow()})

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", race)
    try:
        response = htmx_client.post(f"/pizzeria/import/{conflicting}/apply",
                                    data={"conflicts": "overwrite"})
    finally:
        with app.app_context():
            event.remove(db.engine, "before_cursor_execute", race)
    assert raced and response.status_code == 409
    assert b"Other nights were saved while applying" in response.data
    assert b'data-count="conflicts">2<' in response.data and b'data-count="new">0<' in response.data
    nights = stored_nights(app)
    assert nights[D(2023, 5, 1)][:2] == (12, 36) and nights[D(2023, 5, 2)][1] is None
    with app.app_context():
        assert get_batch(conflicting).status == "previewed"


def test_exports_aligned_by_date_with_dough_items_from_the_settings(app, client, auth):
    auth.login("staff")
    with app.app_context():
        db.session.add(PizzeriaSettings(id=1, excluded_weekdays="4,5", dough_items="Pizza, Calzone"))
        db.session.commit()
    add_night(app, date=D(2023, 5, 1), reservations=2, doughs=None)
    reservations = b"date,time,covers\n2023-05-01,19:00,2\n2023-05-01,20:00,4\n2023-05-02,19:00,3\n"
    pos = (b"created_at,item_name,quantity\n2023-05-01T19:10:00,pizza,2\n"
           b"2023-05-01T19:11:00,calzone ,1\n2023-05-01T19:12:00,Beer,2\n"
           b"2023-04-30T21:00:00,Pizza,5\n")
    response = upload(client, {"reservations": (reservations, "book.csv"),
                               "pos": (pos, "till.txt")}, mode="exports")
    batch_id = batch_id_from(response)
    batch = read(app, batch_id)
    assert (batch.new_count, batch.update_count, batch.conflict_count) == (2, 1, 0)
    assert batch.preview["dough_items"] == ["calzone", "pizza"]
    page = client.get(f"/pizzeria/import/{batch_id}").data
    assert b"book.csv, till.txt" in page and b"calzone, pizza" in page
    client.post(f"/pizzeria/import/{batch_id}/apply", data={"conflicts": "keep"})
    nights = stored_nights(app)
    assert nights[D(2023, 5, 1)][:2] == (2, 3)
    assert nights[D(2023, 5, 2)][:2] == (1, None)   # tonight: no point-of-sale total yet
    assert nights[D(2023, 4, 30)][:2] == (None, 5)


def test_an_upload_when_the_job_queue_is_down_says_so(app_config, auth):
    app_config.update(JOBS_BACKEND="rq", REDIS_URL="redis://127.0.0.1:1/0")
    rq_app = create_app(app_config)
    try:
        client = rq_app.test_client()
        from tests.web.conftest import AuthActions

        AuthActions(rq_app, client).login("host")
        response = upload(client, {"nightly": (NIGHTLY, "n.csv")},
                          headers={"HX-Request": "true"})
        assert response.status_code == 503
        assert b"This import failed: The job queue" in response.data
        with rq_app.app_context():
            assert db.session.query(ImportBatch).one().status == "failed"
    finally:
        with rq_app.app_context():
            from tests.support import clear_tables

            db.session.remove()
            clear_tables(db)
            db.engine.dispose()


class TestWithCsrf:
    """With CSRF on, as in production, the forms carry the token and a bare POST is refused."""

    @pytest.fixture
    def app_config(self, app_config):
        app_config["WTF_CSRF_ENABLED"] = True
        return app_config

    def test_upload_and_apply_need_the_token(self, app, client, auth):
        from tests.support import TEST_PASSWORD

        username = auth.ensure_user("host")
        token = re.search(rb'"X-CSRFToken": "([^"]+)"', client.get("/login").data)
        client.post("/login", data={"username": username, "password": TEST_PASSWORD,
                                    "csrf_token": token.group(1).decode()})
        page = client.get("/pizzeria/import").data
        assert page.count(b'name="csrf_token"') >= 3  # both upload forms and log-out
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
        assert upload(client, {"nightly": (NIGHTLY, "n.csv")}).status_code == 400
        response = upload(client, {"nightly": (NIGHTLY, "n.csv")}, extra={"csrf_token": token})
        assert response.status_code == 303
        batch_id = batch_id_from(response)
        read(app, batch_id)
        assert client.post(f"/pizzeria/import/{batch_id}/apply",
                           data={"conflicts": "keep"}).status_code == 400
        assert client.post(f"/pizzeria/import/{batch_id}/apply",
                           data={"conflicts": "keep", "csrf_token": token}).status_code == 303


# --- CLI ------------------------------------------------------------------------------------


def test_cli_imports_a_nightly_csv_and_reports_bad_lines(app, runner, tmp_path):
    path = tmp_path / "may.csv"
    path.write_bytes(NIGHTLY)
    result = runner.invoke(args=["pizzeria", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: 4 nights read, 3 bad rows." in result.output
    assert "new 4, unchanged 0, filled in 0, conflicts 0" in result.output
    assert "line 4: reservations is not a whole number: 'twelve'" in result.output
    assert "line 7: date is not a date" in result.output
    assert "applied: 4 nights added" in result.output
    assert len(stored_nights(app)) == 4
    again = runner.invoke(args=["pizzeria", "import", "--mode", "nightly", str(path)])
    assert "new 0, unchanged 4, filled in 0, conflicts 0" in again.output


def test_cli_shows_conflicts_and_overwrites_only_when_asked(app, runner, tmp_path):
    add_night(app, date=D(2023, 5, 1), reservations=12, doughs=30)
    path = tmp_path / "n.csv"
    path.write_bytes(b"date,reservations,doughs\n2023-05-01,12,36\n")
    dry = runner.invoke(args=["pizzeria", "import", "--dry-run", "--overwrite", str(path)])
    assert "conflict 2023-05-01: doughs 30 -> 36" in dry.output and "nothing was written" in dry.output
    assert stored_nights(app)[D(2023, 5, 1)][1] == 30
    kept = runner.invoke(args=["pizzeria", "import", str(path)])
    assert "applied: 0 nights added, 0 filled in, 0 conflicts overwritten, 1 conflict kept as " \
           "stored." in kept.output
    assert stored_nights(app)[D(2023, 5, 1)][1] == 30
    runner.invoke(args=["pizzeria", "import", "--overwrite", str(path)])
    assert stored_nights(app)[D(2023, 5, 1)][1] == 36


def test_cli_fails_only_for_a_whole_file_and_goes_on_with_the_others(app, runner, tmp_path):
    bad, good = tmp_path / "bad.csv", tmp_path / "good.csv"
    bad.write_bytes(b"when,reservations,doughs\n2023-05-01,1,2\n")
    good.write_bytes(b"date,reservations,doughs\n2023-05-02,1,2\nnonsense\n")
    result = runner.invoke(args=["pizzeria", "import", str(bad), str(good)])
    assert result.exit_code == 1
    assert "bad.csv: FAILED: The nightly CSV is missing the column(s) date" in result.output
    assert "'when', 'reservations', 'doughs'" in result.output
    assert "line 3: date is not a date" in result.output
    assert list(stored_nights(app)) == [D(2023, 5, 2)]


def test_cli_imports_exports(app, runner):
    result = runner.invoke(args=[
        "pizzeria", "import", "--reservations", str(DATA / "pizzeria_reservations_export.csv"),
        "--pos", str(DATA / "pizzeria_pos_export.csv")])
    assert result.exit_code == 0, result.output
    assert "3 nights read, 4 bad rows." in result.output
    assert "reservations line 17: reserved_at is not a date" in result.output
    assert "pos line 13: qty is not a whole number: 'two'" in result.output
    assert stored_nights(app)[D(2024, 6, 15)][:2] == (18, 53)


@pytest.mark.parametrize(("args", "message"), [
    (["pizzeria", "import"], "Give at least one nightly CSV"),
    (["pizzeria", "import", "--mode", "exports"], "Give --reservations PATH, --pos PATH"),
    (["pizzeria", "import", "--mode", "exports", "PATH"], "In exports mode"),
    (["pizzeria", "import", "--mode", "nightly", "--pos", "PATH"], "belong to --mode exports"),
])
def test_cli_usage_errors(runner, args, message):
    path = str(DATA / "pizzeria_pos_export.csv")
    result = runner.invoke(args=[path if arg == "PATH" else arg for arg in args])
    assert result.exit_code == 2 and message in result.output
