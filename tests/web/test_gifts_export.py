"""The gifts export: CSV and JSONL with label provenance, streamed, filtered, from the CLI too."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal

import pytest

from webapp.extensions import db
from webapp.gifts.export import COLUMNS, export_filename
from webapp.gifts.models import Item, ItemLabel, Label, LabelGroup, Rule, name_key

WHEN = datetime(2026, 11, 27, 9, 30)


def seed_catalogue(app) -> dict[str, int]:
    """Three items: an accepted one with a human label, a rule-labelled one and a model-labelled
    one whose name starts like a spreadsheet formula. Returns their ids by role."""
    with app.app_context():
        theme = LabelGroup(name="theme", name_key="theme", multi=True, position=1)
        occasion = LabelGroup(name="occasion", name_key="occasion", multi=True, position=0)
        coffee = Label(group=theme, name="coffee", name_key="coffee", position=0)
        tea = Label(group=theme, name="tea", name_key="tea", position=1)
        onboarding = Label(group=occasion, name="onboarding", name_key="onboarding")
        rule = Rule(name="Coffee rule", priority=10,
                    condition={"match": "all", "conditions": [
                        {"field": "text", "op": "contains", "value": "coffee"}]},
                    labels=[coffee])
        db.session.add(rule)
        db.session.flush()
        human = item("Ethiopia Coffee Beans", "Northside Roasters", "coffee", "14.50",
                     status="accepted", reviewed_by="staff", reviewed_at=WHEN, local=True)
        human.labels = [
            ItemLabel(label=coffee, source="human", created_by="staff", created_at=WHEN),
            ItemLabel(label=onboarding, source="human", created_by="staff", created_at=WHEN)]
        ruled = item("Espresso Blend", "Northside Roasters", "coffee", "12.00")
        ruled.labels = [ItemLabel(label=coffee, source="rule", rule_id=rule.id,
                                 rule_name=rule.name, created_at=WHEN)]
        risky = item("=HYPERLINK(\"http://evil\")", "@Voltwise", "charger", "29.99",
                     description="+1 cable")
        risky.labels = [ItemLabel(label=tea, source="model", model_version="3",
                                  confidence=0.8712, created_at=WHEN)]
        db.session.add_all([human, ruled, risky])
        db.session.commit()
        return {"human": human.id, "rule": ruled.id, "risky": risky.id}


def item(name: str, vendor: str, category: str, price: str, **fields) -> Item:
    """An item with its duplicate keys filled in."""
    return Item(name=name, name_key=name_key(name), vendor=vendor, vendor_key=name_key(vendor),
                category=category, unit_price=Decimal(price), sku=f"SKU-{name_key(name)[:8]}",
                image_url="https://images.example/x.jpg", source="test.csv", source_row=2,
                **fields)


@pytest.fixture
def catalogue(app):
    """The seeded catalogue's item ids."""
    return seed_catalogue(app)


def read_csv(response_or_text) -> list[dict]:
    """The CSV rows as dicts (BOM stripped)."""
    text = response_or_text if isinstance(response_or_text, str) \
        else response_or_text.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def test_csv_download_has_every_column_and_provenance(client, auth, catalogue):
    auth.login("staff")
    response = client.get("/gifts/export/download?format=csv")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="{export_filename("csv")}"')
    assert response.get_data(as_text=True).startswith("\ufeff")
    rows = read_csv(response)
    assert list(rows[0]) == list(COLUMNS)
    by_id = {int(row["id"]): row for row in rows}
    assert list(by_id) == sorted(by_id)
    human = by_id[catalogue["human"]]
    assert human["labels"] == ("occasion:onboarding (human: staff 2026-11-27); "
                               "theme:coffee (human: staff 2026-11-27)")
    assert human["unit_price"] == "14.50"
    assert human["local"] == "1" and human["sustainable"] == "0"
    assert human["status"] == "accepted" and human["reviewed_by"] == "staff"
    assert human["reviewed_at"] == "2026-11-27T09:30:00"
    assert human["source"] == "test.csv" and human["source_row"] == "2"
    assert by_id[catalogue["rule"]]["labels"] == "theme:coffee (rule: Coffee rule)"
    assert by_id[catalogue["risky"]]["labels"] == "theme:tea (model: 3, 0.87)"
    as_json = json.loads(by_id[catalogue["rule"]]["labels_json"])
    assert as_json == [{"label": "theme:coffee", "source": "rule", "by": None,
                        "at": "2026-11-27T09:30:00", "rule": "Coffee rule",
                        "model_version": None, "confidence": None}]


def test_csv_neutralises_formulas(client, auth, catalogue):
    auth.login("staff")
    rows = read_csv(client.get("/gifts/export/download?format=csv"))
    risky = next(row for row in rows if int(row["id"]) == catalogue["risky"])
    assert risky["name"] == "'=HYPERLINK(\"http://evil\")"
    assert risky["vendor"] == "'@Voltwise"
    assert risky["description"] == "'+1 cable"


def test_jsonl_download_has_labels_with_provenance(client, auth, catalogue):
    auth.login("staff")
    response = client.get("/gifts/export/download?format=jsonl")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"].endswith('.jsonl"')
    lines = response.get_data(as_text=True).splitlines()
    records = {record["id"]: record for record in map(json.loads, lines)}
    assert len(records) == 3
    risky = records[catalogue["risky"]]
    assert risky["name"] == "=HYPERLINK(\"http://evil\")"  # JSON is data, not a spreadsheet
    assert risky["unit_price"] == 29.99
    assert risky["labels"] == [{"label": "theme:tea", "source": "model", "by": None,
                                "at": "2026-11-27T09:30:00", "rule": None,
                                "model_version": "3", "confidence": 0.8712}]
    human = records[catalogue["human"]]
    assert [label["label"] for label in human["labels"]] == ["occasion:onboarding",
                                                             "theme:coffee"]
    assert human["labels"][0]["by"] == "staff"
    assert set(human) == set(COLUMNS) - {"labels_json"}


@pytest.mark.parametrize(("query", "expected"), [
    ("status=accepted", {"human"}),
    ("status=pending", {"rule", "risky"}),
    ("label=theme:coffee", {"human", "rule"}),
    ("source=model", {"risky"}),
    ("label=theme:coffee&source=rule", {"rule"}),
    ("label=theme:tea&status=accepted", set()),
])
def test_filters(client, auth, catalogue, query, expected):
    auth.login("staff")
    rows = read_csv(client.get(f"/gifts/export/download?format=csv&{query}"))
    names = {item_id: role for role, item_id in catalogue.items()}
    assert {names[int(row["id"])] for row in rows} == expected


def test_the_page_shows_the_count_and_the_form(client, auth, catalogue):
    auth.login("staff")
    page = client.get("/gifts/export").get_data(as_text=True)
    assert '<form method="get" action="/gifts/export/download"' in page
    assert 'value="theme:coffee"' in page
    assert '<strong class="export-count">3</strong>' in page


def test_the_count_fragment_follows_the_filters(htmx_client, auth, catalogue):
    auth.login("staff")
    response = htmx_client.get("/gifts/export?format=csv&label=theme:coffee")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in body and 'id="export-summary"' in body
    assert '<strong class="export-count">2</strong>' in body
    assert "HX-Request" in response.headers["Vary"]
    assert '--label "theme:coffee"' in body


def test_an_unknown_filter_is_refused_with_a_clear_message(client, htmx_client, auth,
                                                           catalogue):
    auth.login("staff")
    response = client.get("/gifts/export/download?format=xml&label=theme:nope")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Not a valid choice" in body and 'role="alert"' in body
    fragment = htmx_client.get("/gifts/export?status=lost")
    assert fragment.status_code == 422
    assert 'id="export-summary"' in fragment.get_data(as_text=True)


def test_empty_catalogue_shows_an_empty_state(client, auth):
    auth.login("staff")
    page = client.get("/gifts/export").get_data(as_text=True)
    assert "No items yet." in page
    rows = client.get("/gifts/export/download").get_data(as_text=True)
    assert rows.lstrip("\ufeff").strip() == ",".join(COLUMNS)


def test_export_spans_several_batches_in_id_order(app, monkeypatch):
    """Keyset paging: every item once, in id order, whatever the batch size."""
    from webapp.gifts import export

    seed_catalogue(app)
    with app.app_context():
        db.session.add_all(item(f"Mug {n}", "Paperline", "mug", "5.00") for n in range(7))
        db.session.commit()
        text = "".join(export.export_chunks("csv", export.ExportFilters(), batch=2))
    ids = [int(row["id"]) for row in read_csv(text)]
    assert len(ids) == 10 and ids == sorted(set(ids))


@pytest.mark.parametrize("role", ["host", None])
def test_hosts_and_strangers_cannot_export(client, auth, catalogue, role):
    if role:
        auth.login(role)
    for url in ("/gifts/export", "/gifts/export/download"):
        response = client.get(url)
        assert response.status_code in ((403,) if role else (302, 401)), url


def test_cli_writes_jsonl_to_stdout(app, runner, catalogue):
    result = runner.invoke(args=["gifts", "export", "--format", "jsonl", "--status", "accepted"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["id"] for record in records] == [catalogue["human"]]


def test_cli_writes_csv_to_a_file(app, runner, catalogue, tmp_path):
    target = tmp_path / "items.csv"
    result = runner.invoke(args=["gifts", "export", "--output", str(target),
                                 "--label", "theme:coffee"])
    assert result.exit_code == 0, result.output
    assert "2 items written" in result.output
    rows = read_csv(target.read_text(encoding="utf-8"))
    assert {int(row["id"]) for row in rows} == {catalogue["human"], catalogue["rule"]}
    assert target.read_bytes().count(b"\r\n") == 3  # the csv module's line ends, kept


def test_cli_refuses_an_unknown_label(app, runner, catalogue):
    result = runner.invoke(args=["gifts", "export", "--label", "theme:nope"])
    assert result.exit_code == 2
    assert "There is no label 'theme:nope'" in result.output


def test_a_large_export_points_to_the_command_line(client, auth, catalogue, monkeypatch):
    from webapp.gifts import export

    auth.login("staff")
    assert "A large export" not in client.get("/gifts/export").get_data(as_text=True)
    monkeypatch.setattr(export, "LARGE_EXPORT", 2)
    assert "A large export" in client.get("/gifts/export").get_data(as_text=True)
