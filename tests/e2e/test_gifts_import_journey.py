"""Gifts import journey: a messy CSV through the mapping screen, saved as a profile, imported."""

from __future__ import annotations

from urllib.parse import urlparse

from playwright.sync_api import expect

from tests.e2e.conftest import log_in

# Semicolons, Windows Latin-1 (cp1252), headers no synonym knows, European prices, a bad price.
MESSY = ("Artikel;Preis (€);Lieferant;Öko;Bemerkung\n"
         "Café moulu 250 g;12,50 €;Brûlerie du Port;oui;\n"
         "Thé vert;1.299,00 €;Maison Thé;non;cher\n"
         "Tasse;douze;Atelier;;prix illisible\n"
         "Presse française;€24.90;Atelier;x;\n").encode("cp1252")


def test_staff_imports_a_messy_csv_through_the_mapping_screen(page, live_app, screenshot_dir,
                                                              monkeypatch, tmp_path):
    monkeypatch.setitem(live_app.config, "GIFTS_IMPORT_FOLDER", str(tmp_path))
    log_in(page, "staff")
    page.goto("/gifts/import")
    expect(page.locator("#import-history")).to_contain_text("No imports yet.")
    page.get_by_label("CSV or XLSX file").set_input_files(
        files=[{"name": "fournisseur.csv", "mimeType": "text/csv", "buffer": MESSY}])
    page.get_by_role("button", name="Upload").click()

    expect(page.get_by_role("heading", name="Map the columns of fournisseur.csv")).to_be_visible()
    form = page.locator("#mapping-form")
    expect(form).to_contain_text("read as Latin-1")
    expect(form.locator('tr[data-column="Artikel"] .samples')).to_contain_text("Café moulu 250 g")
    # No header is a known synonym, so nothing is mapped yet: starting is refused in place.
    page.evaluate("window.__sameDocument = true")
    # The live status already says so: wait for the refusal itself, which redraws the form.
    with page.expect_response(lambda response: response.status == 422):
        form.get_by_role("button", name="Start import").click()
    expect(page.locator("#mapping-errors")).to_contain_text("Map one column to Name")
    assert page.evaluate("window.__sameDocument") is True  # the 422 came back in place

    page.get_by_label("Artikel").select_option("name")
    page.get_by_label("Preis (€)").select_option("unit_price")
    page.get_by_label("Lieferant").select_option("vendor")
    page.get_by_label("Öko").select_option("sustainable")
    status = page.locator("#mapping-status")
    expect(status).to_contain_text("Ready to import")  # re-checked live on every change
    expect(status).to_contain_text("Not imported (no field): Bemerkung.")
    page.get_by_label("Save this mapping as a profile named").fill("Fournisseur FR")
    page.get_by_label("Source of such files").fill("French partner price list")
    page.screenshot(path=str(screenshot_dir / "gifts-import-mapping.png"), full_page=True)
    page.get_by_role("button", name="Start import").click()

    result = page.locator("#import-result")
    expect(result).to_have_attribute("data-status", "done")
    expect(result.locator('[data-count="added"]')).to_have_text("3")
    expect(result.locator('[data-count="rejected"]')).to_have_text("1")
    expect(result.locator('li[data-line="4"]')).to_contain_text("'douze' is not a price")
    expect(result.get_by_role("link", name="Download the reject file (CSV)")).to_have_attribute(
        "href", urlparse(page.url).path + "/rejects.csv")

    # The profile is listed, and the next file from that source imports in one click.
    page.goto("/gifts/import")
    expect(page.locator("#import-profiles")).to_contain_text("Fournisseur FR")
    page.get_by_label("CSV or XLSX file").set_input_files(
        files=[{"name": "fournisseur-juin.csv", "mimeType": "text/csv", "buffer": MESSY}])
    page.get_by_label("Mapping profile").select_option(label="Fournisseur FR (French partner "
                                                             "price list)")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#import-result")).to_have_attribute("data-status", "done")
    expect(page.locator('#import-result [data-count="skipped_duplicates"]')).to_have_text("3")
