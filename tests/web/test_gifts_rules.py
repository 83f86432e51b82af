"""The rules page: create (and 422), live preview counts, toggle, order, delete with undo, the
apply job (pending items only, never a person's labels), escaping and access."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, update

from tests.support import wait_for_job
from webapp import jobs
from webapp.extensions import db
from webapp.gifts import rules as service
from webapp.gifts.models import Item, ItemLabel, Label, LabelGroup, Rule

# --- A small factory ----------------------------------------------------------------------------

ITEMS = [
    # name, description, vendor, price, local, status
    ("Fresh Roast Coffee", "Locally roasted beans", "Bean There", "14.50", True, "pending"),
    ("Coffee mug", "Stoneware, brandable", "Mugs & Co", "9.00", False, "pending"),
    ("Cold brew kit", "For coffee lovers", "Bean There", "32.00", False, "pending"),
    ("Espresso cups", "Coffee set of two", "Mugs & Co", "18.00", False, "accepted"),
    ("Green tea tin", "Sencha, 100 g", "Leaf & Co", "12.00", True, "pending"),
    ("Café au lait bowl", "Ceramic", "Mugs & Co", "11.00", False, "pending"),
]


def make_vocabulary() -> dict[str, int]:
    """theme (multi: coffee, tea, local) and audience (single: everyone, executives)."""
    ids = {}
    for position, (group_name, multi, names) in enumerate([
            ("theme", True, ("coffee", "tea", "local")),
            ("audience", False, ("everyone", "executives"))]):
        group = LabelGroup(name=group_name, name_key=group_name, multi=multi, position=position)
        db.session.add(group)
        for n, name in enumerate(names):
            label = Label(group=group, name=name, name_key=name, position=n)
            db.session.add(label)
            db.session.flush()
            ids[f"{group_name}:{name}"] = label.id
    db.session.commit()
    return ids


def make_items() -> dict[str, int]:
    """The ``ITEMS`` above, by name."""
    ids = {}
    for name, description, vendor, price, local, status in ITEMS:
        item = Item(name=name, name_key=name.lower(), description=description, vendor=vendor,
                    vendor_key=vendor.lower(), unit_price=Decimal(price), local=local,
                    status=status)
        db.session.add(item)
        db.session.flush()
        ids[name] = item.id
    db.session.commit()
    return ids


@pytest.fixture
def data(app) -> dict:
    """Vocabulary and items; returns their ids."""
    with app.app_context():
        return {"labels": make_vocabulary(), "items": make_items()}


def rule_form(name: str, rows: list[tuple[str, str, str]], labels: list[int],
              match: str = "all", priority: int = 100, enabled: bool = True) -> dict:
    """Form data as the builder posts it (unused rows left empty)."""
    form = {"name": name, "priority": str(priority), "match": match, "labels": labels}
    for index in range(5):
        field, op, value = rows[index] if index < len(rows) else ("", "contains", "")
        form.update({f"conditions-{index}-field": field, f"conditions-{index}-op": op,
                     f"conditions-{index}-value": value})
    if enabled:
        form["enabled"] = "y"
    return form


def add_rule(app, name: str, conditions: list[dict], labels: list[int], priority: int = 100,
             match: str = "all", enabled: bool = True) -> int:
    """A stored rule (through the service), by id."""
    with app.app_context():
        row = service.save_rule(Rule(), name, priority, {"match": match, "conditions": conditions},
                                labels, enabled)
        return row.id


def labels_of(app, item_id: int) -> set[tuple[str, str, str | None]]:
    """An item's labels as (group:label, source, rule name)."""
    with app.app_context():
        rows = db.session.scalars(select(ItemLabel).where(ItemLabel.item_id == item_id))
        return {(row.label.qualified_name, row.source, row.rule_name) for row in rows}


COFFEE = {"field": "text", "op": "contains", "value": "coffee"}


# --- Access and the page ------------------------------------------------------------------------

def test_hosts_get_403_and_staff_see_the_empty_state(client, auth):
    auth.login("host")
    assert client.get("/gifts/rules").status_code == 403
    assert client.post("/gifts/rules/apply").status_code == 403
    auth.logout()
    auth.login("staff")
    page = client.get("/gifts/rules")
    assert page.status_code == 200 and b"No rules yet." in page.data
    assert b'aria-current="page"' in page.data and b"Apply rules" in page.data


def test_the_list_fragment_for_htmx(htmx_client, auth, app, data):
    add_rule(app, "Coffee", [COFFEE], [data["labels"]["theme:coffee"]])
    auth.login("staff")
    response = htmx_client.get("/gifts/rules")
    assert response.data.lstrip().startswith(b'<section id="rule-list"')
    assert b"<html" not in response.data and "HX-Request" in response.headers["Vary"]
    assert b"name/description contains &#34;coffee&#34;" in response.data
    assert b"theme: coffee" in response.data


# --- Create ---------------------------------------------------------------------------------------

def test_create_a_rule_with_htmx(app, htmx_client, auth, data):
    auth.login("staff")
    form = rule_form("Coffee lovers", [("text", "contains", "coffee"), ("price", "lt", "20")],
                     [data["labels"]["theme:coffee"], data["labels"]["audience:everyone"]],
                     priority=10)
    response = htmx_client.post("/gifts/rules", data=form)
    assert response.status_code == 201, response.data
    assert "Saved “Coffee lovers”".encode() in response.data
    assert "rules-changed" in response.headers["HX-Trigger"]
    assert b'value="Coffee lovers"' not in response.data  # a fresh builder for the next rule
    with app.app_context():
        row = db.session.scalar(select(Rule))
        assert row.name == "Coffee lovers" and row.priority == 10 and row.enabled
        assert row.condition == {"match": "all", "conditions": [
            {"field": "text", "op": "contains", "value": "coffee"},
            {"field": "price", "op": "lt", "value": 20.0}]}
        assert {label.qualified_name for label in row.labels} == {"theme:coffee",
                                                                  "audience:everyone"}
        assert row.created_by == "test-staff"


def test_in_lists_are_comma_separated_and_bool_values_are_ignored(app, htmx_client, auth, data):
    auth.login("staff")
    form = rule_form("Mug vendors", [("vendor", "in", "Mugs & Co,  Leaf & Co ,"),
                                     ("local", "is_false", "whatever")],
                     [data["labels"]["theme:tea"]])
    assert htmx_client.post("/gifts/rules", data=form).status_code == 201
    with app.app_context():
        assert db.session.scalar(select(Rule.condition))["conditions"] == [
            {"field": "vendor", "op": "in", "value": ["Mugs & Co", "Leaf & Co"]},
            {"field": "local", "op": "is_false"}]


@pytest.mark.parametrize(("rows", "labels", "name", "message"), [
    ([("text", "contains", "coffee"), ("price", "lt", "cheap")], True, "R",
     b"&#39;price&#39; needs a number"),
    ([("text", "regex", "(a+)+")], True, "R", b"repeats a group that itself repeats"),
    ([("text", "contains", "coffee")], False, "R", b"Tick at least one label to assign."),
    ([], True, "R", b"The rule needs at least one condition."),
    ([("text", "contains", "coffee")], True, "  ", b"Give the rule a name."),
])
def test_invalid_rules_come_back_with_422_and_the_error_in_place(app, htmx_client, auth, data,
                                                                 rows, labels, name, message):
    auth.login("staff")
    form = rule_form(name, rows, [data["labels"]["theme:coffee"]] if labels else [])
    response = htmx_client.post("/gifts/rules", data=form)
    assert response.status_code == 422
    assert response.data.lstrip().startswith(b'<section id="rule-form"')
    assert message in response.data
    for _, _, value in rows:  # nothing typed is lost
        assert f'value="{value}"'.encode() in response.data
    with app.app_context():
        assert db.session.scalar(select(Rule)) is None


def test_the_error_sits_on_the_row_it_is_about(htmx_client, auth, data):
    auth.login("staff")
    form = rule_form("R", [("text", "contains", "coffee")], [data["labels"]["theme:coffee"]])
    form.update({"conditions-3-field": "price", "conditions-3-op": "gt", "conditions-3-value": "x"})
    page = htmx_client.post("/gifts/rules", data=form).data
    row = page.split(b'id="conditions-3-field"')[1].split(b"</tr>")[0]
    assert b"needs a number" in row and b'aria-invalid="true"' in row
    first = page.split(b'id="conditions-0-field"')[1].split(b"</tr>")[0]
    assert b"errors" not in first and b'aria-invalid' not in first


def test_names_are_unique_in_any_case(app, htmx_client, auth, data):
    add_rule(app, "Coffee", [COFFEE], [data["labels"]["theme:coffee"]])
    auth.login("staff")
    response = htmx_client.post("/gifts/rules", data=rule_form(
        "COFFEE", [("text", "contains", "tea")], [data["labels"]["theme:tea"]]))
    assert response.status_code == 422
    assert "There is already a rule called “COFFEE”.".encode() in response.data


def test_create_without_javascript_redirects_and_flashes(client, auth, data):
    auth.login("staff")
    response = client.post("/gifts/rules", data=rule_form(
        "Tea", [("text", "contains", "tea")], [data["labels"]["theme:tea"]]))
    assert response.status_code == 303 and response.location.endswith("/gifts/rules")
    page = client.get("/gifts/rules").data
    assert "Rule “Tea” added.".encode() in page and b'data-name="Tea"' in page


def test_edit_a_rule(app, client, htmx_client, auth, data):
    rule_id = add_rule(app, "Coffee", [COFFEE], [data["labels"]["theme:coffee"]])
    auth.login("staff")
    page = client.get(f"/gifts/rules/{rule_id}/edit").data
    assert "Edit rule “Coffee”".encode() in page and b'value="coffee"' in page
    assert b"3</strong> pending items" in page  # the preview of the stored rule
    response = htmx_client.post(f"/gifts/rules/{rule_id}", data=rule_form(
        "Coffee (cheap)", [("text", "contains", "coffee"), ("price", "le", "15")],
        [data["labels"]["theme:coffee"]], enabled=False) | {"version": "1"})
    assert response.status_code == 200
    with app.app_context():
        row = db.session.get(Rule, rule_id)
        assert row.name == "Coffee (cheap)" and not row.enabled
        assert len(row.condition["conditions"]) == 2
    assert client.get("/gifts/rules/999/edit").status_code == 404


def test_a_rule_with_more_conditions_than_rows_keeps_them_all_when_edited(app, client, htmx_client,
                                                                          auth, data):
    conditions = [{"field": "price", "op": "ge", "value": n} for n in range(7)]
    rule_id = add_rule(app, "Seven", conditions, [data["labels"]["theme:coffee"]])
    auth.login("staff")
    page = client.get(f"/gifts/rules/{rule_id}/edit").data
    assert b'id="conditions-6-value"' in page and b'id="conditions-7-field"' in page  # + a blank
    form = rule_form("Seven", [("price", "ge", str(n)) for n in range(5)],
                     [data["labels"]["theme:coffee"]])
    form.update({"conditions-5-field": "price", "conditions-5-op": "ge", "conditions-5-value": "5",
                 "conditions-6-field": "price", "conditions-6-op": "ge", "conditions-6-value": "6"})
    form["version"] = "1"
    assert htmx_client.post(f"/gifts/rules/{rule_id}", data=form).status_code == 200
    with app.app_context():
        assert len(db.session.get(Rule, rule_id).condition["conditions"]) == 7


# --- Preview --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("rows", "match", "pending", "total"), [
    ([("text", "contains", "coffee")], "all", 3, 4),         # the accepted cups count in all only
    ([("text", "contains", "COFFEE"), ("price", "lt", "20")], "all", 2, 3),
    ([("vendor", "in", "mugs & co, leaf & co")], "all", 3, 4),
    ([("local", "is_true", "")], "all", 2, 2),
    ([("text", "contains", "café")], "all", 1, 1),          # non-ASCII: judged in Python
    ([("name", "regex", r"^(cold|green)\b"), ("price", "eq", "9")], "any", 3, 3),
    ([("text", "not_contains", "coffee"), ("price", "ge", "12")], "all", 1, 1),
])
def test_preview_counts_pending_and_all_matches(htmx_client, auth, data, rows, match, pending,
                                                total):
    auth.login("staff")
    response = htmx_client.post("/gifts/rules/preview", data=rule_form("", rows, [], match=match))
    assert response.status_code == 200
    assert response.data.lstrip().startswith(b'<div id="rule-preview"')
    assert f'<strong class="preview-pending">{pending}</strong>'.encode() in response.data
    assert f'<span class="preview-total">{total}</span>'.encode() in response.data


def test_preview_samples_pending_items_first(app, data):
    with app.app_context():
        rule = service.validate("x", 1, {"match": "all", "conditions": [COFFEE]},
                                [db.session.get(Label, data["labels"]["theme:coffee"])])
        result = service.preview(rule)
        assert [item.name for item in result.samples] == [
            "Fresh Roast Coffee", "Coffee mug", "Cold brew kit", "Espresso cups"]
        # The SQL prefilter handed Python only the rows that contain the text.
        assert result.examined == 4


def test_preview_judges_each_distinct_value_once_and_samples_by_scanning_when_many_match(
        app, monkeypatch, data):
    with app.app_context():
        tea = [db.session.get(Label, data["labels"]["theme:tea"])]
        vendors = service.validate("x", 1, {"match": "all", "conditions": [
            {"field": "vendor", "op": "in", "value": ["MUGS & CO", "bean there"]}]}, tea)
        grouped = service.preview(vendors)
        # Three vendors (one accepted item too): four groups judged for six items.
        assert (grouped.examined, grouped.pending, grouped.total) == (4, 4, 5)
        assert [item.name for item in grouped.samples] == [
            "Fresh Roast Coffee", "Coffee mug", "Cold brew kit", "Café au lait bowl",
            "Espresso cups"]
        monkeypatch.setattr(service, "MAX_SAMPLE_KEYS", 0)
        scanned = service.preview(vendors)
        assert (scanned.pending, scanned.total) == (4, 5)
        assert sorted(item.name for item in scanned.samples) == sorted(
            item.name for item in grouped.samples)


def test_preview_of_an_incomplete_rule_says_what_is_missing(htmx_client, auth, data):
    auth.login("staff")
    response = htmx_client.post("/gifts/rules/preview",
                                data=rule_form("", [("text", "contains", "")], []))
    assert response.status_code == 200
    assert b"needs some text to look for" in response.data


def test_preview_without_javascript_shows_the_whole_page(client, auth, data):
    auth.login("staff")
    form = rule_form("Tea", [("text", "contains", "tea")], [data["labels"]["theme:tea"]])
    form["action"] = "preview"
    response = client.post("/gifts/rules", data=form)
    assert response.status_code == 200 and b"<html" in response.data
    assert b'<strong class="preview-pending">1</strong>' in response.data
    assert b"Green tea tin" in response.data
    with app_context_of(client):
        assert db.session.scalar(select(Rule)) is None  # a preview saves nothing


def app_context_of(client):
    """The client's app context (for checks after a request)."""
    return client.application.app_context()


# --- Toggle, order, delete and undo ---------------------------------------------------------------

def test_switch_a_rule_off_and_on(app, htmx_client, auth, data):
    rule_id = add_rule(app, "Coffee", [COFFEE], [data["labels"]["theme:coffee"]])
    auth.login("staff")
    off = htmx_client.post(f"/gifts/rules/{rule_id}/enabled", data={"enabled": "no"})
    assert off.data.lstrip().startswith(f'<tr id="rule-{rule_id}" class="rule-row inactive"'.encode())
    assert b"Switch on" in off.data
    with app.app_context():
        assert not db.session.get(Rule, rule_id).enabled
        assert service.load_rules() == []
        assert len(service.load_rules(enabled_only=False)) == 1
    on = htmx_client.post(f"/gifts/rules/{rule_id}/enabled", data={"enabled": "yes"})
    assert b"Switch off" in on.data
    assert htmx_client.post(f"/gifts/rules/{rule_id}/enabled",
                            data={"enabled": "maybe"}).status_code == 422


def test_move_a_rule_up_the_order(app, htmx_client, auth, data):
    coffee = data["labels"]["theme:coffee"]
    first = add_rule(app, "First", [COFFEE], [coffee], priority=10)
    second = add_rule(app, "Second", [COFFEE], [coffee], priority=20)
    third = add_rule(app, "Third", [COFFEE], [coffee], priority=20)
    auth.login("staff")
    response = htmx_client.post(f"/gifts/rules/{second}/move", data={"direction": "up"})
    assert response.data.lstrip().startswith(b'<section id="rule-list"')
    htmx_client.post(f"/gifts/rules/{third}/move", data={"direction": "up"})
    with app.app_context():
        # Second swapped priorities with First; Third tied with First, so it went one lower.
        assert [(rule.id, rule.priority) for rule in service.load_rules()] == [
            (second, 10), (third, 19), (first, 20)]


def test_delete_then_undo_brings_the_rule_back(app, htmx_client, auth, data):
    labels = [data["labels"]["theme:coffee"], data["labels"]["audience:everyone"]]
    rule_id = add_rule(app, "Coffee <b>", [COFFEE, {"field": "price", "op": "lt", "value": 20}],
                       labels, priority=7, enabled=False)
    auth.login("staff")
    deleted = htmx_client.post(f"/gifts/rules/{rule_id}/delete")
    assert deleted.data.lstrip().startswith(f'<tr id="rule-{rule_id}" class="deleted-row"'.encode())
    assert b"Undo" in deleted.data and b"Coffee &lt;b&gt;" in deleted.data
    with app.app_context():
        assert db.session.scalar(select(Rule)) is None
    # The Undo form posts back exactly what it carries.
    hidden = dict(part.split(b'" value=', 1) for part in
                  deleted.data.split(b'type="hidden" name="')[2:])
    assert hidden[b"condition"].startswith(b"'{")
    form = {"name": "Coffee <b>", "priority": "7",
            "condition": '{"match": "all", "conditions": [{"field": "text", "op": "contains", "value": "coffee"}, {"field": "price", "op": "lt", "value": 20.0}]}',
            "labels": [str(label) for label in labels]}
    restored = htmx_client.post(f"/gifts/rules/{rule_id}/restore", data=form)
    assert restored.status_code == 200 and b"rule-row inactive" in restored.data
    with app.app_context():
        row = db.session.scalar(select(Rule))
        assert row.name == "Coffee <b>" and row.priority == 7 and not row.enabled
        assert sorted(label.id for label in row.labels) == sorted(labels)


def test_undo_refused_when_the_name_was_taken_meanwhile(app, htmx_client, auth, data):
    coffee = data["labels"]["theme:coffee"]
    rule_id = add_rule(app, "Coffee", [COFFEE], [coffee])
    auth.login("staff")
    htmx_client.post(f"/gifts/rules/{rule_id}/delete")
    add_rule(app, "coffee", [COFFEE], [coffee])
    response = htmx_client.post(f"/gifts/rules/{rule_id}/restore", data={
        "name": "Coffee", "priority": "100", "enabled": "y",
        "condition": '{"match": "all", "conditions": [{"field": "text", "op": "contains", "value": "coffee"}]}',
        "labels": [str(coffee)]})
    assert response.status_code == 422
    assert "There is already a rule called “Coffee”. Nothing was restored.".encode() in response.data
    assert b"Undo" in response.data  # it can be tried again


# --- Apply --------------------------------------------------------------------------------------

def run_apply(app, htmx_client) -> dict:
    """Press Apply rules and wait for the job; returns its result."""
    response = htmx_client.post("/gifts/rules/apply")
    assert response.status_code == 202, response.data
    assert response.data.lstrip().startswith(b'<section id="apply-card"')
    with app.app_context():
        job = jobs.latest_job(service.JOB_KIND, service.JOB_SUBJECT)
        job = wait_for_job(job.id)
        assert job.status == "succeeded", job.error
        return job.result


def test_apply_labels_pending_items_and_never_touches_reviewed_items_or_human_labels(
        app, htmx_client, auth, data):
    ids, items = data["labels"], data["items"]
    coffee_rule = add_rule(app, "Coffee", [COFFEE], [ids["theme:coffee"], ids["audience:everyone"]],
                           priority=10)
    add_rule(app, "Local", [{"field": "local", "op": "is_true"}],
             [ids["theme:local"], ids["audience:executives"]], priority=20)
    with app.app_context():
        # A person labelled the mug's theme already; an old rule row sits on the cold brew kit.
        db.session.add(ItemLabel(item_id=items["Coffee mug"], label_id=ids["theme:tea"],
                                 source="human", created_by="ann"))
        db.session.add(ItemLabel(item_id=items["Cold brew kit"], label_id=ids["theme:tea"],
                                 source="rule", rule_name="old"))
        db.session.add(ItemLabel(item_id=items["Espresso cups"], label_id=ids["theme:tea"],
                                 source="human", created_by="ann"))
        db.session.commit()
    auth.login("staff")
    result = run_apply(app, htmx_client)
    assert result["items"] == 5 and result["rules"] == 2
    assert result["groups"] == ["audience", "theme"] and result["uncertainty_set"]

    assert labels_of(app, items["Fresh Roast Coffee"]) == {
        ("theme:coffee", "rule", "Coffee"), ("audience:everyone", "rule", "Coffee"),
        ("theme:local", "rule", "Local")}  # audience is single-label: the first rule wins
    assert labels_of(app, items["Coffee mug"]) == {
        ("theme:tea", "human", None), ("audience:everyone", "rule", "Coffee")}
    assert labels_of(app, items["Cold brew kit"]) == {
        ("theme:coffee", "rule", "Coffee"), ("audience:everyone", "rule", "Coffee")}
    assert labels_of(app, items["Espresso cups"]) == {("theme:tea", "human", None)}  # accepted
    assert labels_of(app, items["Café au lait bowl"]) == set()
    with app.app_context():
        uncertainty = dict(db.session.execute(select(Item.name, Item.uncertainty)).all())
        assert uncertainty["Fresh Roast Coffee"] == 0.5     # both groups covered
        assert uncertainty["Café au lait bowl"] == 1.0      # nothing known
        assert uncertainty["Espresso cups"] == 1.0          # reviewed: untouched (default)
        assert service.items_per_rule()[coffee_rule] == 3
    page = htmx_client.get("/gifts/rules").data
    row = page.split(f'id="rule-{coffee_rule}"'.encode())[1].split(b"</tr>")[0]
    assert b'<td class="num items-labelled">3</td>' in row


def test_apply_again_after_switching_a_rule_off_removes_its_labels(app, htmx_client, auth, data):
    ids, items = data["labels"], data["items"]
    rule_id = add_rule(app, "Coffee", [COFFEE], [ids["theme:coffee"]])
    auth.login("staff")
    run_apply(app, htmx_client)
    assert labels_of(app, items["Coffee mug"]) == {("theme:coffee", "rule", "Coffee")}
    htmx_client.post(f"/gifts/rules/{rule_id}/enabled", data={"enabled": "no"})
    result = run_apply(app, htmx_client)
    assert result["removed"] == 3 and result["labels"] == 0
    assert labels_of(app, items["Coffee mug"]) == set()


def test_apply_in_small_batches_reports_progress(app, monkeypatch, data):
    ids = data["labels"]
    add_rule(app, "Coffee", [COFFEE], [ids["theme:coffee"]])
    monkeypatch.setattr(service, "BATCH", 2)
    messages = []
    with app.app_context():
        result = service.apply_rules_task(lambda percent, message: messages.append(
            (percent, message)))
    assert result["items"] == 5 and result["labels"] == 3
    assert [percent for percent, _ in messages] == [0, 40, 80, 99]
    assert messages[-1][1] == "5 of 5 items · 3 labels"


def test_apply_status_polls_and_refreshes_the_list_when_done(app, htmx_client, auth, data):
    auth.login("staff")
    run_apply(app, htmx_client)
    polled = htmx_client.get("/gifts/rules/apply?polling=1")
    assert "rules-changed" in polled.headers["HX-Trigger"]
    assert b"every 1s" not in polled.data and b"pending items labelled" in polled.data
    assert "HX-Trigger" not in htmx_client.get("/gifts/rules/apply").headers


def test_apply_without_javascript_redirects(app, client, auth, data):
    auth.login("staff")
    response = client.post("/gifts/rules/apply")
    assert response.status_code == 303
    with app.app_context():
        wait_for_job(jobs.latest_job(service.JOB_KIND, service.JOB_SUBJECT).id)


# --- Escaping -----------------------------------------------------------------------------------

def test_names_and_values_are_escaped(app, client, auth, data):
    script = "<script>alert(1)</script>"
    rule_id = add_rule(app, script, [{"field": "name", "op": "contains", "value": script}],
                       [data["labels"]["theme:coffee"]])
    auth.login("staff")
    for url in ("/gifts/rules", f"/gifts/rules/{rule_id}/edit"):
        page = client.get(url).data
        assert b"<script>alert(1)</script>" not in page
        assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_apply_rules_command(app, runner, data):
    add_rule(app, "Coffee", [COFFEE], [data["labels"]["theme:coffee"]])
    result = runner.invoke(args=["gifts", "apply-rules"])
    assert result.exit_code == 0, result.output
    assert ("3 of 5 pending items labelled by 1 rule: 3 labels written, 0 old suggestions "
            "replaced (groups on the rules: audience, theme).") in result.stdout
    assert "100%" not in result.stderr and "  0% Applying 1 rules to 5 pending items" in result.stderr
    assert labels_of(app, data["items"]["Coffee mug"]) == {("theme:coffee", "rule", "Coffee")}


def test_apply_leaves_groups_live_on_the_model_alone(app, monkeypatch, data):
    from webapp.gifts.sources import GroupSource

    ids, items = data["labels"], data["items"]
    add_rule(app, "Coffee", [COFFEE], [ids["theme:coffee"], ids["audience:everyone"]])
    with app.app_context():
        mug = items["Coffee mug"]
        db.session.add_all([
            ItemLabel(item_id=mug, label_id=ids["audience:executives"], source="model",
                      model_version="v1", confidence=0.9),
            ItemLabel(item_id=mug, label_id=ids["theme:tea"], source="model",  # stale: theme
                      model_version="v0", confidence=0.4),                     # is on rules now
        ])
        db.session.execute(update(Item).values(uncertainty=0.25))
        db.session.commit()
        monkeypatch.setattr(service, "live_sources", lambda: {
            "theme": GroupSource("theme", "rules", 0, 30, None),
            "audience": GroupSource("audience", "model", 30, 30, "v1")})
        result = service.apply_rules_task(lambda percent, message: None)
        assert result["groups"] == ["theme"] and not result["uncertainty_set"]
        assert set(db.session.scalars(select(Item.uncertainty))) == {0.25}  # the model's
    assert labels_of(app, items["Coffee mug"]) == {
        ("theme:coffee", "rule", "Coffee"), ("audience:executives", "model", None)}
