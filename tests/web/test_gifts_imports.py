"""Gift item imports: upload, mapping (automatic, by hand, profiles), the job, rejects,
duplicates, the CLI, and who may import."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from tests.support import wait_for_job
from webapp.extensions import db
from webapp.gifts.imports import header_key, unique_headers
from webapp.gifts.models import ImportProfile, ImportReject, Item, ItemImport, name_key


@pytest.fixture
def app_config(app_config, tmp_path):
    """Uploads go to this test's own folder."""
    app_config["GIFTS_IMPORT_FOLDER"] = str(tmp_path / "gift-imports")
    return app_config


@pytest.fixture
def staff(auth):
    """Logged in as staff."""
    auth.login("staff")


# --- helpers -----------------------------------------------------------------------------------


def upload(client, content: bytes, name: str = "items.csv", profile: str = "",
           on_duplicate: str = "skip", **kwargs):
    """POST a file to the upload form."""
    return client.post("/gifts/import", data={
        "upload": (io.BytesIO(content), name), "profile": profile,
        "on_duplicate": on_duplicate}, content_type="multipart/form-data", **kwargs)


def import_id_of(response) -> str:
    """The import id in a redirect (plain or htmx) after an upload or a mapping."""
    location = response.headers.get("HX-Redirect") or response.headers["Location"]
    return re.search(r"/gifts/import/([0-9a-f]{32})", location).group(1)


def record(app, import_id: str) -> ItemImport:
    """The import row, fresh, once its job (if any) has finished."""
    with app.app_context():
        row = db.session.get(ItemImport, import_id)
        if row.job_id:
            wait_for_job(row.job_id)
        db.session.expire_all()
        row = db.session.get(ItemImport, import_id)
        db.session.expunge(row)
        return row


def start(client, app, import_id: str, mapping: dict[str, str] | None = None,
          on_duplicate: str = "skip", **extra):
    """Submit the mapping step (``mapping`` by header; None keeps the proposed one)."""
    with app.app_context():
        row = db.session.get(ItemImport, import_id)
        headers, proposed = row.headers, row.mapping
    chosen = proposed if mapping is None else mapping
    data = {f"column_{i}": chosen.get(header, "") for i, header in enumerate(headers)}
    data.update(on_duplicate=on_duplicate, **extra)
    return client.post(f"/gifts/import/{import_id}/mapping", data=data)


def import_csv(client, app, content: bytes, name: str = "items.csv",
               on_duplicate: str = "skip", mapping: dict | None = None) -> ItemImport:
    """Upload, accept the (given or automatic) mapping, wait; the finished import."""
    response = upload(client, content, name)
    assert response.status_code == 303, response.get_data(as_text=True)
    import_id = import_id_of(response)
    started = start(client, app, import_id, mapping, on_duplicate)
    assert started.status_code == 303, started.get_data(as_text=True)
    return record(app, import_id)


def items(app) -> list[Item]:
    """Every item, by id (detached)."""
    with app.app_context():
        rows = list(db.session.scalars(select(Item).order_by(Item.id)))
        db.session.expunge_all()
        return rows


def rejects(app, import_id: str) -> list[tuple[int, str, list]]:
    """(line, reason, cells) of an import's rejects."""
    with app.app_context():
        return [(r.line, r.reason, r.cells) for r in db.session.scalars(
            select(ImportReject).where(ImportReject.import_id == import_id)
            .order_by(ImportReject.line))]


def add_item(app, **values) -> int:
    """Store an item directly; its id."""
    values.setdefault("unit_price", Decimal("1.00"))
    values["name_key"] = name_key(values["name"])
    values["vendor_key"] = name_key(values.get("vendor", ""))
    with app.app_context():
        item = Item(**values)
        db.session.add(item)
        db.session.commit()
        return item.id


# --- headers and automatic mapping -----------------------------------------------------------


@pytest.mark.parametrize(("header", "key"), [
    ("Unit_Price (EUR)", "unit price"), (" UNIT-PRICE ", "unit price"), ("Image URL", "image url"),
    ("Item  code", "item code")])
def test_header_keys_ignore_case_spacing_punctuation_and_units(header, key):
    assert header_key(header) == key


def test_repeated_and_empty_headers_are_named_uniquely_and_reported():
    headers, notes = unique_headers(["Price", "", "price", "Price"])
    assert headers == ["Price", "Column 2", "price (2)", "Price (3)"]
    assert "more than once" in notes[0] and "'Price (3)'" in notes[0]


def test_automatic_mapping_with_synonyms_and_unmapped_columns(app, client, staff):
    content = (b"Title,Unit Cost,Supplier ,Item code,Details,Department,Picture,Eco,Local,"
               b"Brandable,Perishable,Notes,Price\n"
               b"Mug,4.50,Potter,M1,Stoneware,Home,https://x.test/m.png,yes,x,1,no,hi,9\n")
    response = upload(client, content)
    import_id = import_id_of(response)
    assert response.headers["Location"].endswith(f"/gifts/import/{import_id}/mapping")
    row = record(app, import_id)
    assert row.status == "mapping"
    assert row.mapping == {
        "Title": "name", "Unit Cost": "unit_price", "Supplier": "vendor", "Item code": "sku",
        "Details": "description", "Department": "category", "Picture": "image_url",
        "Eco": "sustainable", "Local": "local", "Brandable": "brandable",
        "Perishable": "perishable"}
    # The second price column is not mapped twice: it is reported with the other leftovers.
    assert row.unmapped == ["Notes", "Price"]
    page = client.get(f"/gifts/import/{import_id}/mapping").get_data(as_text=True)
    assert '<option selected value="unit_price">' in page
    assert "Not imported (no field): <code>Notes</code>, <code>Price</code>" in page
    done = import_csv(client, app, content)
    assert (done.status, done.added) == ("done", 1)
    [item] = items(app)
    assert (item.name, item.unit_price, item.vendor, item.sku, item.category) == (
        "Mug", Decimal("4.50"), "Potter", "M1", "Home")
    assert (item.local, item.sustainable, item.brandable, item.perishable) == (
        True, True, True, False)
    assert (item.status, item.source, item.source_row, item.import_id) == (
        "pending", "items.csv", 2, done.id)


def test_htmx_upload_navigates_to_the_mapping_step(app, htmx_client, staff):
    response = upload(htmx_client, b"Name,Price\nA,1\n")
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == f"/gifts/import/{import_id_of(response)}/mapping"


def test_the_import_page_lists_recent_imports_a_page_at_a_time(app, client, htmx_client,
                                                               staff):
    assert "No imports yet." in client.get("/gifts/import").get_data(as_text=True)
    app.config["PAGE_SIZE"] = 2
    ids = [import_id_of(upload(client, b"Name,Price\nA,1\n", f"f{n}.csv")) for n in range(3)]
    first = client.get("/gifts/import").get_data(as_text=True)
    assert first.count('data-import="') == 2 and "Page 1 of 2" in first
    second = htmx_client.get("/gifts/import?page=2")
    text = second.get_data(as_text=True)
    assert "<html" not in text and text.lstrip().startswith('<section id="import-history"')
    assert text.count('data-import="') == 1
    assert f"/gifts/import/{ids[0]}/mapping" in first + text  # unstarted: back to its mapping


def test_mapping_step_shows_the_first_five_rows(app, client, staff):
    body = "".join(f"Item {n},{n}\n" for n in range(1, 9))
    response = upload(client, ("Name,Price\n" + body).encode())
    page = client.get(f"/gifts/import/{import_id_of(response)}/mapping").get_data(as_text=True)
    assert "Item 5" in page and "Item 6" not in page


def test_mapping_needs_one_name_and_one_price_column(app, client, htmx_client, staff):
    response = upload(client, b"Product,Vendor,Brand,Cost\nMug,A,B,3\n")
    import_id = import_id_of(response)
    bad = start(htmx_client, app, import_id, {"Product": "vendor", "Vendor": "vendor"})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "<html" not in text and 'id="mapping-form"' in text
    assert "Vendor is mapped to 2 columns (Product, Vendor)" in text
    assert "Map one column to Name" in text and "Map one column to Unit price" in text
    assert record(app, import_id).status == "mapping"  # nothing started
    plain = start(client, app, import_id, {"Product": "name"})
    assert plain.status_code == 422 and "<html" in plain.get_data(as_text=True)
    good = start(htmx_client, app, import_id, {"Product": "name", "Cost": "unit_price",
                                               "Brand": "vendor"})
    assert good.status_code == 204
    assert good.headers["HX-Redirect"] == f"/gifts/import/{import_id}"
    assert record(app, import_id).status == "done"
    assert [(i.name, i.vendor) for i in items(app)] == [("Mug", "B")]


def test_the_mapping_is_checked_live_without_starting(app, htmx_client, client, staff):
    import_id = import_id_of(upload(client, b"Artikel,Preis,Notiz\nA,1,x\n"))
    page = client.get(f"/gifts/import/{import_id}/mapping").get_data(as_text=True)
    assert "Map one column to Name" in page  # nothing maps by itself: said up front
    response = htmx_client.post(f"/gifts/import/{import_id}/mapping/check", data={
        "column_0": "name", "column_1": "unit_price", "column_2": "", "on_duplicate": "skip"})
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in text
    assert text.lstrip().startswith('<div id="mapping-status"')
    assert "Ready to import" in text and "Not imported (no field): <code>Notiz</code>" in text
    assert record(app, import_id).status == "mapping"


@pytest.mark.parametrize(("content", "name", "message"), [
    (b"", "a.csv", "The file is empty."),
    (b"\x00\x01\x02binary\x00", "a.csv", "neither CSV text nor an XLSX workbook"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "a.xls", "old Excel (.xls)"),
    (b"\n\n;;\n", "a.csv", "no header row"),
    (b"\n \n", "a.csv", "The file is empty."),
])
def test_unusable_uploads_are_422_with_the_reason(app, client, htmx_client, staff, content,
                                                  name, message):
    response = upload(htmx_client, content, name)
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert 'id="upload-form"' in text and "<html" not in text
    assert message in text.replace("&#39;", "'")
    with app.app_context():
        assert db.session.scalar(select(ItemImport)) is None


def test_a_zip_that_is_not_a_workbook_is_refused(app, client, staff):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("readme.txt", "hello")
    response = upload(client, archive.getvalue(), "items.xlsx")
    assert response.status_code == 422
    assert "not an XLSX workbook" in response.get_data(as_text=True)


def test_discarding_an_upload_removes_it_and_its_file(app, client, staff, tmp_path):
    import_id = import_id_of(upload(client, b"Name,Price\nA,1\n"))
    assert list((tmp_path / "gift-imports").iterdir())
    response = client.post(f"/gifts/import/{import_id}/discard")
    assert response.status_code == 303
    assert not list((tmp_path / "gift-imports").iterdir())
    with app.app_context():
        assert db.session.get(ItemImport, import_id) is None


# --- profiles ----------------------------------------------------------------------------------


def test_profile_round_trip_save_at_mapping_then_import_in_one_click(app, client, staff,
                                                                     tmp_path):
    first = "Artikel;Preis;Lieferant;Bemerkung\nKaffee;12,50 EUR;Rösterei;x\n".encode("latin-1")
    response = upload(client, first, "acme-may.csv")
    import_id = import_id_of(response)
    started = start(client, app, import_id,
                    {"Artikel": "name", "Preis": "unit_price", "Lieferant": "vendor"},
                    on_duplicate="merge", profile_name="Acme list", profile_source="Acme GmbH")
    assert started.status_code == 303
    assert record(app, import_id).status == "done"
    with app.app_context():
        profile = db.session.scalar(select(ImportProfile))
        assert (profile.name, profile.source, profile.on_duplicate) == (
            "Acme list", "Acme GmbH", "merge")
        assert profile.mapping == {"Artikel": "name", "Preis": "unit_price",
                                   "Lieferant": "vendor"}
        profile_id = profile.id
    # The next file from that source: header case and spacing differ, one click imports it.
    second = b"ARTIKEL ;preis;Lieferant;Bemerkung\nTee;3,20;Teehaus;\nKaffee;13,00;R\xf6sterei;\n"
    response = upload(client, second, "acme-june.csv", profile=str(profile_id),
                      on_duplicate="merge")
    assert response.status_code == 303
    next_id = import_id_of(response)
    assert response.headers["Location"] == f"/gifts/import/{next_id}"  # no mapping step
    done = record(app, next_id)
    assert (done.status, done.added, done.merged, done.profile_id) == ("done", 1, 1, profile_id)
    assert {(i.name, i.unit_price) for i in items(app)} == {
        ("Kaffee", Decimal("13.00")), ("Tee", Decimal("3.20"))}
    assert not list((tmp_path / "gift-imports").iterdir())  # the uploads were removed


def test_a_profile_that_does_not_fit_goes_to_the_mapping_step(app, client, staff):
    with app.app_context():
        profile = ImportProfile(name="Old", mapping={"Artikel": "name", "Preis": "unit_price"})
        db.session.add(profile)
        db.session.commit()
        profile_id = profile.id
    response = upload(client, b"Product,Amount\nMug,3\n", profile=str(profile_id))
    import_id = import_id_of(response)
    assert response.headers["Location"].endswith("/mapping")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "does not fit this file (it has no column &#39;Artikel&#39;, &#39;Preis&#39;)" in page
    assert record(app, import_id).status == "mapping"


def test_a_taken_profile_name_is_refused_at_mapping(app, client, staff):
    with app.app_context():
        db.session.add(ImportProfile(name="Acme", mapping={}))
        db.session.commit()
    import_id = import_id_of(upload(client, b"Name,Price\nA,1\n"))
    response = start(client, app, import_id, profile_name="acme")
    assert response.status_code == 422
    assert "A profile named &#39;Acme&#39; exists already" in response.get_data(as_text=True)


def test_profiles_rename_and_delete(app, client, htmx_client, staff):
    with app.app_context():
        db.session.add_all([ImportProfile(name="Acme", mapping={"A": "name"}),
                            ImportProfile(name="Other", mapping={})])
        db.session.commit()
        acme = db.session.scalar(select(ImportProfile).where(ImportProfile.name == "Acme")).id
    taken = htmx_client.post(f"/gifts/import/profiles/{acme}",
                             data={f"profile-{acme}-name": "other"})
    assert taken.status_code == 422
    text = taken.get_data(as_text=True)
    assert "<html" not in text and 'id="import-profiles"' in text
    assert "A profile named &#39;Other&#39; exists already." in text
    empty = htmx_client.post(f"/gifts/import/profiles/{acme}", data={f"profile-{acme}-name": ""})
    assert empty.status_code == 422 and "Give the profile a name." in empty.get_data(as_text=True)
    renamed = htmx_client.post(f"/gifts/import/profiles/{acme}", data={
        f"profile-{acme}-name": "Acme price list", f"profile-{acme}-source": "Acme GmbH"})
    assert renamed.status_code == 200 and "Acme price list" in renamed.get_data(as_text=True)
    plain = client.post(f"/gifts/import/profiles/{acme}/delete")
    assert plain.status_code == 303 and plain.headers["Location"] == "/gifts/import"
    with app.app_context():
        assert db.session.scalars(select(ImportProfile.name)).all() == ["Other"]
    assert client.post(f"/gifts/import/profiles/{acme}/delete").status_code == 404


# --- formats -----------------------------------------------------------------------------------


def test_xlsx_import_with_cells_of_any_type(app, client, staff):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["SKU", "Product", "Price", "Vendor", "Local", "Details"])
    sheet.append(["A1", "Coffee", 12.5, "Roast", True, None])
    sheet.append([1002, "Tea", 3, "Leaf", False, "green"])
    sheet.append([None, None, None, None, None, None])  # a blank row is passed over
    sheet.append(["A3", "Press", "1.299,00 €", "Brew", "x", 4.25])
    sheet.append(["A4", "Broken", "twelve", "Brew", None, None])
    buffer = io.BytesIO()
    workbook.save(buffer)
    done = import_csv(client, app, buffer.getvalue(), "items.xlsx")
    assert (done.status, done.total_rows, done.added, done.rejected) == ("done", 4, 3, 1)
    assert [(i.sku, i.name, i.unit_price, i.local, i.description, i.source_row)
            for i in items(app)] == [
        ("A1", "Coffee", Decimal("12.50"), True, "", 2),
        ("1002", "Tea", Decimal("3.00"), False, "green", 3),
        ("A3", "Press", Decimal("1299.00"), True, "4.25", 5)]
    [(line, reason, cells)] = rejects(app, done.id)
    assert (line, cells) == (6, ["A4", "Broken", "twelve", "Brew", "", ""])
    assert reason == "Price: 'twelve' is not a price"


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8-sig", "utf-8"])
def test_latin1_and_bom_csv(app, client, staff, encoding):
    content = "Name,Price,Vendor\nCafé crème,2.50,Brûlerie\n".encode(encoding)
    done = import_csv(client, app, content)
    assert done.status == "done"
    [item] = items(app)
    assert (item.name, item.vendor) == ("Café crème", "Brûlerie")


def test_windows_1252_keeps_its_euro_signs(app, client, staff):
    content = "Name;Price\nCafé;12,50 €\nThé;€3\n".encode("cp1252")
    done = import_csv(client, app, content)
    assert (done.added, done.rejected) == (2, 0)
    assert [(i.name, i.unit_price) for i in items(app)] == [
        ("Café", Decimal("12.50")), ("Thé", Decimal("3.00"))]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_any_delimiter_is_sniffed(app, client, staff, delimiter):
    content = delimiter.join(["Product", "Cost", "Supplier"]) + "\n" + delimiter.join(
        ["Mug", "12,50", "Potter, Sons"]) + "\n"
    done = import_csv(client, app, content.encode())
    assert done.added == 1
    [item] = items(app)
    assert (item.unit_price, item.vendor) == (Decimal("12.50"), "Potter, Sons")


def test_price_formats(app, client, staff):
    rows = [("$1,299.00", "1299.00"), ('"1.299,00 €"', "1299.00"), ("12,50 €", "12.50"),
            ("€12.50", "12.50"), ("12.5", "12.50"), ("USD 7", "7.00"), (" 3 ", "3.00"),
            ("1\u202f299,00", "1299.00"), ("1\u00a0299,00", "1299.00")]
    content = "Name;Price\n" + "".join(f"Item {n};{text}\n" for n, (text, _) in enumerate(rows))
    done = import_csv(client, app, content.encode())
    assert done.added == len(rows)
    assert [str(i.unit_price) for i in items(app)] == [value for _, value in rows]


def test_bad_prices_and_fields_are_rejected_with_every_reason(app, client, staff):
    content = (b"Name,Price,Local,Image\n"
               b"Neg,-5,,\n"
               b",3,,\n"
               b"Huge,100000000,,\n"
               b"Flag,3,maybe,javascript:alert(1)\n"
               b"Empty price,,,\n"
               b"Fine,3,,https://img.test/a.png\n")
    done = import_csv(client, app, content)
    assert (done.total_rows, done.added, done.rejected) == (6, 1, 5)
    reasons = {line: reason for line, reason, _ in rejects(app, done.id)}
    assert reasons[2] == "Price: the price '-5' is negative"
    assert reasons[3] == "Name is empty"
    assert "above the largest accepted" in reasons[4]
    assert reasons[5] == ("Local must be yes/no, true/false, 1/0 or x, not 'maybe'; "
                          "Image must be a web address starting with http:// or https://")
    assert reasons[6] == "Price is empty"


# --- the reject file ---------------------------------------------------------------------------


def test_the_reject_file_has_lines_reasons_cells_and_neutralised_formulas(app, client, staff):
    content = (b'Name,Price,Notes\n'
               b'"Two\nline name",abc,ok\n'           # lines 2-3: one record
               b'Good,3,x\n'
               b'=HYPERLINK("http://evil"),zz,+cmd\n'  # line 5
               b'Extra,4,a,b\n')              # line 6: one value too many
    done = import_csv(client, app, content, "list.csv")
    assert (done.added, done.rejected) == (1, 3)
    response = client.get(f"/gifts/import/{done.id}/rejects.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert table[0] == ["line", "reason", "Name", "Price", "Notes"]
    assert table[1] == ["2", "Price: 'abc' is not a price", "Two\nline name", "abc", "ok"]
    assert table[2] == ["5", "Price: 'zz' is not a price", "'=HYPERLINK(\"http://evil\")", "zz",
                        "'+cmd"]
    assert table[3] == ["6", "the row has 4 values but the header has 3 columns", "Extra", "4",
                        "a", "b"]
    page = client.get(f"/gifts/import/{done.id}").get_data(as_text=True)
    assert 'data-line="5"' in page and f"/gifts/import/{done.id}/rejects.csv" in page


# --- duplicates --------------------------------------------------------------------------------

DUPLICATES = (b"SKU,Name,Vendor,Price,Description\n"
              b"C1,Fresh Roast Coffee 250g,Roast & Co,10,first\n"
              b"C1,Coffee renamed,Roast & Co,11,\n"             # same SKU
              b",fresh roast coffee, 250g,ROAST & CO.,12,third\n"  # same name + vendor
              b"C9,Fresh Roast Coffee 250g,Roast & Co,13,\n"    # both have SKUs that differ
              b",Fresh Roast Coffee 250g,Other vendor,14,\n")   # other vendor


def test_duplicates_within_the_file_skipped(app, client, staff):
    done = import_csv(client, app, DUPLICATES.replace(b"coffee, 250g", b"coffee 250g"))
    assert (done.added, done.skipped_duplicates, done.merged) == (3, 2, 0)
    assert [(i.sku, i.unit_price, i.vendor) for i in items(app)] == [
        ("C1", Decimal("10.00"), "Roast & Co"), ("C9", Decimal("13.00"), "Roast & Co"),
        (None, Decimal("14.00"), "Other vendor")]


def test_duplicates_within_the_file_merged(app, client, staff):
    done = import_csv(client, app, DUPLICATES.replace(b"coffee, 250g", b"coffee 250g"),
                      on_duplicate="merge")
    assert (done.added, done.skipped_duplicates, done.merged) == (3, 0, 2)
    first = items(app)[0]
    # Each merge wrote its row's non-empty fields; empty cells kept the earlier values.
    assert (first.sku, first.name, first.unit_price, first.description, first.vendor) == (
        "C1", "fresh roast coffee 250g", Decimal("12.00"), "third", "ROAST & CO.")
    assert first.source_row == 2


@pytest.mark.parametrize(("policy", "expected"), [
    ("skip", ("Mug", Decimal("5.00"), "kept", "Pot", "accepted")),
    ("merge", ("Big mug", Decimal("7.50"), "kept", "Pot", "accepted"))])
def test_duplicates_of_stored_items_by_sku(app, client, staff, policy, expected):
    stored = add_item(app, sku="M-1", name="Mug", vendor="Pot", unit_price=Decimal("5"),
                      description="kept", status="accepted")
    done = import_csv(client, app, b"SKU,Name,Price,Vendor,Description\nM-1,Big mug,7.50,,\n",
                      on_duplicate=policy)
    counts = (done.added, done.merged, done.skipped_duplicates)
    assert counts == ((0, 0, 1) if policy == "skip" else (0, 1, 0))
    [item] = items(app)
    assert item.id == stored
    assert (item.name, item.unit_price, item.description, item.vendor, item.status) == expected


@pytest.mark.parametrize("policy", ["skip", "merge"])
def test_duplicates_of_stored_items_by_name_and_vendor(app, client, staff, policy):
    add_item(app, name="Fresh Roast Coffee, 250g", vendor="Roast & Co", unit_price=Decimal("9"))
    add_item(app, sku="T1", name="Green tea", vendor="Leaf", unit_price=Decimal("4"))
    content = (b"Name,Vendor,Price,SKU\n"
               b"FRESH ROAST coffee 250g,roast & co,9.50,R1\n"  # stored one has no SKU: same
               b"Green Tea,LEAF,4.50,T2\n"                     # two SKUs differ: a new item
               b"Green tea,Leaf,4.80,\n")                      # no SKU: the stored T1
    done = import_csv(client, app, content, on_duplicate=policy)
    assert done.added == 1
    assert (done.merged, done.skipped_duplicates) == ((2, 0) if policy == "merge" else (0, 2))
    coffee, tea, new_tea = items(app)
    assert new_tea.sku == "T2"
    if policy == "merge":
        assert (coffee.sku, coffee.unit_price, tea.unit_price) == (
            "R1", Decimal("9.50"), Decimal("4.80"))
    else:
        assert (coffee.sku, coffee.unit_price, tea.unit_price) == (
            None, Decimal("9.00"), Decimal("4.00"))


def test_duplicates_across_batches_are_found(app, client, staff, monkeypatch):
    monkeypatch.setattr("webapp.gifts.imports.BATCH_SIZE", 3)
    body = "".join(f"S{n},Item {n},{n}\n" for n in range(7)) + "S1,Again,9\n,item 5,9\n"
    done = import_csv(client, app, ("SKU,Name,Price\n" + body).encode())
    assert (done.total_rows, done.added, done.skipped_duplicates) == (9, 7, 2)


# --- the job -----------------------------------------------------------------------------------


def test_result_polls_while_running_then_stops(app, client, htmx_client, staff):
    import_id = import_id_of(upload(client, b"Name,Price\nA,1\n"))
    with app.app_context():
        row = db.session.get(ItemImport, import_id)
        row.status = "running"
        db.session.commit()
    polling = htmx_client.get(f"/gifts/import/{import_id}")
    text = polling.get_data(as_text=True)
    assert "<html" not in text and 'id="import-result"' in text
    assert 'hx-trigger="every 1s"' in text and 'role="progressbar"' in text
    assert "HX-Request" in polling.headers["Vary"]
    with app.app_context():
        row = db.session.get(ItemImport, import_id)
        row.status = "done"
        db.session.commit()
    assert 'hx-trigger="every 1s"' not in htmx_client.get(
        f"/gifts/import/{import_id}").get_data(as_text=True)


def test_a_file_changed_before_the_job_fails_the_import_clearly(app, client, staff, tmp_path):
    import_id = import_id_of(upload(client, b"Name,Price\nA,1\n"))
    with app.app_context():
        Path(db.session.get(ItemImport, import_id).stored_path).write_bytes(b"Other,Cols\n1,2\n")
    start(client, app, import_id)
    done = record(app, import_id)
    assert done.status == "failed"
    assert "The file has no column 'Name'" in done.error and "Nothing was imported" in done.error
    assert "This import failed" in client.get(f"/gifts/import/{import_id}").get_data(
        as_text=True)
    assert not list((tmp_path / "gift-imports").iterdir())


def test_a_workbook_damaged_part_way_keeps_the_rows_before(app, monkeypatch):
    from webapp.gifts import imports

    def damaged_rows(path):
        yield imports.Row(1, ["Name", "Price"])
        for line in range(2, 6):
            yield imports.Row(line, [f"Item {line}", "3"])
        raise imports.ImportFileError("The workbook is damaged after row 5 (zlib error).")

    class Opened:
        def __init__(self, path):
            self.rows = damaged_rows(path)

        def __enter__(self):
            return self.rows, lambda: 0.5, []

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(imports, "sniff_kind", lambda path: "xlsx")
    monkeypatch.setattr(imports, "_open_xlsx", Opened)
    with app.app_context():
        row = imports.new_import("x.xlsx", ["Name", "Price"], "t", "skip")
        row.mapping = {"Name": "name", "Price": "unit_price"}
        db.session.commit()
        result = imports.execute_import(row, Path("unused.xlsx"))
        db.session.expire_all()
        row = db.session.get(ItemImport, result and row.id)
        assert (row.status, row.added) == ("failed", 4)
        assert "damaged after row 5" in row.error and "4 rows imported before" in row.error
        assert db.session.scalar(select(db.func.count()).select_from(Item)) == 4


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_imports_with_progress_counts_and_rejects(app, runner, tmp_path):
    path = tmp_path / "list.csv"
    path.write_bytes(b"Product;Cost;Misc\nMug;4,50;a\nBad;zz;b\n")
    reject_file = tmp_path / "rejects.csv"
    result = runner.invoke(args=["gifts", "import", str(path), "--rejects", str(reject_file)])
    assert result.exit_code == 0, result.output
    assert "Product -> Name, Cost -> Unit price" in result.output
    assert "Not imported (unmapped columns): Misc" in result.output
    assert "[  0%] Reading list.csv" in result.output
    assert "[100%] Done: 1 added" in result.output
    assert "2 rows, 1 added, 0 merged, 0 duplicates skipped (skip), 1 rejected" in result.output
    assert "line 3: Cost: 'zz' is not a price" in result.output
    assert reject_file.read_text(encoding="utf-8").startswith("\ufeffline,reason,Product")
    with app.app_context():
        assert db.session.scalars(select(Item.name)).all() == ["Mug"]


def test_cli_with_a_profile_and_merge(app, runner, tmp_path):
    with app.app_context():
        db.session.add(ImportProfile(name="acme", mapping={"Art": "name", "EUR": "unit_price",
                                                            "Ref": "sku"}))
        db.session.commit()
    add_item(app, sku="R1", name="Old", unit_price=Decimal("1"))
    path = tmp_path / "acme.csv"
    path.write_bytes(b"Ref,Art,EUR\nR1,New name,2\nR2,Other,3\n")
    result = runner.invoke(args=["gifts", "import", str(path), "--profile", "acme",
                                 "--on-duplicate", "merge"])
    assert result.exit_code == 0, result.output
    assert "1 added, 1 merged" in result.output
    assert [(i.sku, i.name) for i in items(app)] == [("R1", "New name"), ("R2", "Other")]


def test_cli_fails_with_1_for_an_unreadable_or_unmappable_file(app, runner, tmp_path):
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\x00\x01garbage")
    result = runner.invoke(args=["gifts", "import", str(binary)])
    assert result.exit_code == 1 and "neither CSV text nor an XLSX workbook" in result.output
    unmapped = tmp_path / "y.csv"
    unmapped.write_bytes(b"Foo,Bar\n1,2\n")
    result = runner.invoke(args=["gifts", "import", str(unmapped)])
    assert result.exit_code == 1 and "Map one column to Name" in result.output
    result = runner.invoke(args=["gifts", "import", str(unmapped), "--profile", "nope"])
    assert result.exit_code == 2 and "There is no profile 'nope'" in result.output


# --- access ------------------------------------------------------------------------------------


def test_hosts_get_403_and_anonymous_users_the_login_page(app, client, auth):
    assert client.get("/gifts/import").status_code == 302
    auth.login("host")
    assert client.get("/gifts/import").status_code == 403
    assert upload(client, b"Name,Price\nA,1\n").status_code == 403
    with app.app_context():
        assert db.session.scalar(select(ItemImport)) is None


def test_imported_items_get_rule_suggestions_without_pressing_apply(app, client, staff):
    from webapp.gifts import rules
    from webapp.gifts.models import ItemLabel, Label, LabelGroup, Rule
    from webapp.jobs import latest_job

    with app.app_context():
        group = LabelGroup(name="theme", name_key="theme", multi=True)
        group.labels = [Label(name="coffee", name_key="coffee")]
        db.session.add(group)
        db.session.flush()
        db.session.add(Rule(name="Coffee", priority=10, labels=[group.labels[0]], condition={
            "match": "all", "conditions": [{"field": "text", "op": "contains",
                                            "value": "coffee"}]}))
        db.session.commit()
    finished = import_csv(client, app, b"name,price\nHouse coffee beans,12.50\nMug,8\n")
    assert finished.status == "done" and finished.added == 2
    with app.app_context():
        job = latest_job(rules.JOB_KIND, rules.JOB_SUBJECT)
        assert job is not None, "the import should queue the rules"
        wait_for_job(job.id)
        labelled = db.session.execute(select(Item.name, ItemLabel.source, ItemLabel.rule_name)
                                      .join(ItemLabel, ItemLabel.item_id == Item.id)).all()
        assert labelled == [("House coffee beans", "rule", "Coffee")]
