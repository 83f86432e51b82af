"""The label model on the ML platform: retrain, batch suggestions after activation, rollback,
groups that stay on the rules, and the Models page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ml import labels as engines
from ml.gift_items import DEMO_GROUPS, generate_items
from ml.items import ItemData
from tests.support import wait_for_job
from webapp import jobs, registry
from webapp.extensions import db
from webapp.gifts.models import (
    Item,
    ItemLabel,
    Label,
    LabelGroup,
    Rule,
    gifts_settings,
    name_key,
)
from webapp.gifts.sources import live_sources
from webapp.ml_bridge import KINDS

ACCEPTED = 120
PENDING = 40
MIN_LABELS = 5


def add_vocabulary() -> dict[str, Label]:
    """The demo groups plus "mood", a group nobody has labelled yet; returns labels by name."""
    labels = {}
    groups = {**DEMO_GROUPS, "mood": (True, ("cosy",))}
    for position, (group_name, (multi, names)) in enumerate(groups.items()):
        group = LabelGroup(name=group_name, name_key=name_key(group_name), multi=multi,
                           position=position)
        group.labels = [Label(name=name, name_key=name_key(name), position=i)
                        for i, name in enumerate(names)]
        db.session.add(group)
        labels.update({f"{group_name}:{label.name}": label for label in group.labels})
    db.session.flush()
    return labels


def make_item(row: dict, status: str) -> Item:
    """An item from a generated catalogue row."""
    return Item(sku=row["sku"], name=row["name"], name_key=name_key(row["name"]),
                description=row["description"], vendor=row["vendor"],
                vendor_key=name_key(row["vendor"]), category=row["category"],
                unit_price=Decimal(str(row["price"])), local=row["local"],
                sustainable=row["sustainable"], brandable=row["brandable"],
                perishable=row["perishable"], status=status, source="test")


#: Two day-one rules: one in a group the model can take over, one in a group it cannot.
RULES = (
    ("Coffee", {"match": "all", "conditions": [
        {"field": "text", "op": "contains", "value": "coffee"}]}, ("theme:coffee",)),
    ("Hot drinks are cosy", {"match": "all", "conditions": [
        {"field": "category", "op": "in", "value": ["coffee", "tea"]}]}, ("mood:cosy",)),
)


def add_rule_suggestions(item: Item, row: dict, rules: list[engines.Rule],
                         labels: dict[str, Label]) -> None:
    """Give a pending item the labels the rules give it, as the rules job would."""
    data = ItemData(id=item.id, **{name: row[name] for name in (
        "sku", "name", "description", "vendor", "category", "price", "local", "sustainable",
        "brandable", "perishable")})
    item.labels.extend(ItemLabel(label=labels[given.label], source="rule",
                                 rule_id=given.rule_id, rule_name=given.rule_name)
                       for given in engines.apply_rules(rules, data))


def seed_workbench() -> dict:
    """Accepted items with human labels, pending items with the rules' suggestions, and a
    rejected item. The first pending item also has a human label in "theme" (a person started
    on it). Returns the ids and each pending item's rule suggestions."""
    labels = add_vocabulary()
    rules = []
    for position, (name, condition, names) in enumerate(RULES):
        row = Rule(name=name, priority=position, condition=condition,
                   labels=[labels[label] for label in names])
        db.session.add(row)
        db.session.flush()
        rules.append(engines.Rule.from_dict(row.id, name, position, condition, names))
    rows = list(generate_items(ACCEPTED + PENDING + 1, seed=11))
    for row in rows[:ACCEPTED]:
        item = make_item(row, "accepted")
        item.labels = [ItemLabel(label=labels[name], source="human", created_by="test-staff")
                       for name in sorted(row["labels"])]
        db.session.add(item)
    pending = []
    for row in rows[ACCEPTED:ACCEPTED + PENDING]:
        item = make_item(row, "pending")
        db.session.add(item)
        db.session.flush()
        add_rule_suggestions(item, row, rules, labels)
        pending.append(item)
    pending[0].labels.append(ItemLabel(label=labels["theme:home"], source="human",
                                       created_by="test-staff"))
    rejected = make_item(rows[-1], "rejected")
    rejected.labels = [ItemLabel(label=labels["theme:coffee"], source="rule", rule_name="Coffee")]
    db.session.add(rejected)
    gifts_settings().min_labels_per_label = MIN_LABELS
    db.session.commit()
    suggested = {item.id: {row.label.qualified_name for row in item.labels
                           if row.source == "rule"} for item in pending}
    assert any("theme:coffee" in names for names in suggested.values())
    assert any("mood:cosy" in names for names in suggested.values())
    return {"pending": [item.id for item in pending], "rejected": rejected.id,
            "person_started": pending[0].id, "rule_suggestions": suggested}


@pytest.fixture
def workbench(app):
    """The seeded workbench's ids."""
    with app.app_context():
        return seed_workbench()


def retrain(client, algorithm: str = "logreg"):
    """Press Retrain on the labels card and wait for the retrain and the batch it queues."""
    response = client.post("/admin/models/labels/retrain", data={"algorithm": algorithm})
    assert response.status_code == 303
    retrained = wait_for_job(jobs.latest_job("retrain", "labels").id)
    assert retrained.status == "succeeded", retrained.error
    return retrained, wait_for_suggestions(after=retrained.finished_at)


def wait_for_suggestions(after=None):
    """Wait for the newest batch-suggestion job; return it."""
    job = jobs.latest_job("gifts-suggest", "labels")
    assert job is not None, "no batch-suggestion job was queued"
    if after is not None:
        assert job.created_at <= after
    done = wait_for_job(job.id)
    assert done.status == "succeeded", done.error
    return done


def rows_by_source(item_id: int) -> dict[str, set[str]]:
    """An item's labels grouped by source, as ``group:label`` names."""
    found: dict[str, set[str]] = {}
    for row in db.session.scalars(select(ItemLabel).where(ItemLabel.item_id == item_id)):
        found.setdefault(row.source, set()).add(row.label.qualified_name)
    return found


def human_snapshot() -> list[tuple]:
    """Every human label row, as plain tuples."""
    query = select(ItemLabel.item_id, ItemLabel.label_id, ItemLabel.created_by).where(
        ItemLabel.source == "human").order_by(ItemLabel.item_id, ItemLabel.label_id)
    return [tuple(row) for row in db.session.execute(query)]


def test_retrain_activates_and_the_batch_suggests_for_pending_items(app, client, auth,
                                                                    workbench):
    auth.login("admin")
    with app.app_context():
        humans_before = human_snapshot()
        retrained, batch = retrain(client)
        assert retrained.result["activated"] is True
        version = retrained.result["version"]
        assert registry.active_version("labels").version == version
        assert set(batch.result["groups"]) == {"occasion", "theme", "audience"}
        assert batch.result["items"] == PENDING
        assert batch.result["version"] == version

        sources = live_sources()
        assert sources["mood"].source == "rules"
        assert {g for g, s in sources.items() if s.source == "model"} == set(batch.result["groups"])

        for item_id in workbench["pending"]:
            found = rows_by_source(item_id)
            # The model replaced the rules in its groups; "mood" stays on the rules.
            before = workbench["rule_suggestions"][item_id]
            assert found.get("rule", set()) == {name for name in before
                                                if name.startswith("mood:")}
            assert {name.split(":")[0] for name in found["model"]} <= {"occasion", "theme",
                                                                        "audience"}
            assert sum(name.startswith("audience:") for name in found["model"]) == 1

        started = rows_by_source(workbench["person_started"])
        assert started["human"] == {"theme:home"}
        assert not any(name.startswith("theme:") for name in started["model"])

        model_rows = db.session.scalars(select(ItemLabel).where(ItemLabel.source == "model"))
        for row in model_rows:
            assert row.model_version == version and 0.0 <= row.confidence <= 1.0
            assert row.item.status == "pending"
        assert rows_by_source(workbench["rejected"]) == {"rule": {"theme:coffee"}}
        assert human_snapshot() == humans_before

        uncertainties = db.session.scalars(select(Item.uncertainty).where(
            Item.status == "pending")).all()
        assert all(0.0 <= u < 1.0 for u in uncertainties)
        assert len(set(uncertainties)) > 1
        accepted = db.session.scalars(select(Item.uncertainty).where(
            Item.status == "accepted")).all()
        assert set(accepted) == {1.0}


def test_rollback_reruns_the_batch_with_the_earlier_version(app, client, auth, workbench):
    auth.login("admin")
    with app.app_context():
        first, _ = retrain(client)
        second, _ = retrain(client)
        assert second.result["activated"] is True  # same data, same metric: passes the gate
        assert model_versions_written() == {second.result["version"]}

        response = client.post("/admin/models/labels/rollback")
        assert response.status_code == 303
        batch = wait_for_suggestions()
        assert batch.result["version"] == first.result["version"]
        assert model_versions_written() == {first.result["version"]}

        client.post(f"/admin/models/labels/versions/{second.result['version']}/activate")
        wait_for_suggestions()
        assert model_versions_written() == {second.result["version"]}


def model_versions_written() -> set[str]:
    """The model versions the pending items' suggestions came from."""
    db.session.expire_all()
    return set(db.session.scalars(select(ItemLabel.model_version).where(
        ItemLabel.source == "model").distinct()))


def test_a_group_below_the_threshold_stays_on_the_rules(app, client, auth, workbench):
    auth.login("admin")
    with app.app_context():
        gifts_settings().min_labels_per_label = 16  # theme:tech and others have fewer
        db.session.commit()
        _, batch = retrain(client)
        assert "theme" not in batch.result["groups"]
        assert "occasion" in batch.result["groups"]
        for item_id in workbench["pending"]:
            found = rows_by_source(item_id)
            assert found.get("rule", set()) == workbench["rule_suggestions"][item_id]
            assert not any(name.startswith("theme:") for name in found.get("model", ()))


def test_rules_take_groups_back_when_the_model_no_longer_covers_them(app, client, auth,
                                                                     workbench):
    from webapp.gifts.suggest import suggest_task

    auth.login("admin")
    with app.app_context():
        retrain(client)
        gifts_settings().min_labels_per_label = 10_000  # no group qualifies any more
        db.session.commit()
        result = suggest_task(lambda percent, message: None)
        assert result["groups"] == [] and result["items"] == 0
        assert result["rules_requeued"] is True
        assert jobs.latest_job("gifts-apply-rules", "rules") is not None


def test_models_page_shows_the_labels_kind_with_metrics_against_the_rules(app, client, auth,
                                                                          workbench):
    auth.login("admin")
    card = labels_card(client.get("/admin/models").get_data(as_text=True))
    assert "Label suggestions" in card and "Not trained yet." in card
    with app.app_context():
        version = retrain(client)[0].result["version"]
    page = labels_card(client.get("/admin/models").get_data(as_text=True))
    for text in ("Micro F1", "Rules micro F1", "Macro F1", "Rules macro F1",
                 "Per label on the hold-out: model vs rules", 'data-label="theme:coffee"',
                 version, "logreg"):
        assert text in page, text


def labels_card(page: str) -> str:
    """The labels kind's card on the Models page."""
    start = page.index('id="model-labels"')
    return page[start:page.index("</section>", start)]


def test_too_few_human_labels_fail_the_retrain_clearly(app, client, auth):
    auth.login("admin")
    with app.app_context():
        add_vocabulary()
        db.session.commit()
        client.post("/admin/models/labels/retrain", data={"algorithm": "logreg"})
        job = wait_for_job(jobs.latest_job("retrain", "labels").id)
        assert job.status == "failed"
        assert "need at least 10 human-labelled items" in job.error
        assert jobs.latest_job("gifts-suggest", "labels") is None
    page = client.get("/admin/models").get_data(as_text=True)
    assert "need at least 10 human-labelled items" in page


def test_unknown_algorithm_is_a_422_on_the_card(client, auth, htmx_client):
    auth.login("admin")
    response = htmx_client.post("/admin/models/labels/retrain", data={"algorithm": "forest"})
    assert response.status_code == 422
    assert "Not a valid choice" in response.get_data(as_text=True)


def test_cli_trains_with_an_algorithm_and_activates_with_the_batch(app, runner, workbench):
    result = runner.invoke(args=["models", "train", "labels", "--algorithm", "complement_nb"])
    assert result.exit_code == 0, result.output
    assert "activated (first model)" in result.output
    with app.app_context():
        active = registry.active_version("labels")
        assert active.params["algorithm"] == "complement_nb"
        wait_for_suggestions()
        first = active.version
    result = runner.invoke(args=["models", "train", "labels", "--algorithm", "logreg"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        wait_for_suggestions()
    result = runner.invoke(args=["models", "activate", "labels", first])
    assert result.exit_code == 0, result.output
    assert "Started gifts-suggest" in result.output and "Done" in result.output
    with app.app_context():
        assert model_versions_written() == {first}


def test_cli_suggest_without_a_model_says_so(runner, workbench):
    result = runner.invoke(args=["gifts", "suggest"])
    assert result.exit_code == 0, result.output
    assert "No label group is live on the model yet" in result.output


def test_cli_suggest_runs_the_batch(app, runner, workbench):
    runner.invoke(args=["models", "train", "labels"])
    with app.app_context():
        wait_for_suggestions()
        db.session.execute(ItemLabel.__table__.delete().where(ItemLabel.source == "model"))
        db.session.commit()
    result = runner.invoke(args=["gifts", "suggest"])
    assert result.exit_code == 0, result.output
    assert f"{PENDING} items" in result.output
    with app.app_context():
        count = db.session.scalar(select(func.count()).where(ItemLabel.source == "model"))
        assert count >= PENDING


def test_only_the_labels_kind_has_an_activation_hook():
    hooks = {kind for kind, spec in KINDS.items() if spec.after_activation is not None}
    assert hooks == {"labels"}


def test_an_activation_during_the_batch_makes_it_start_over(app, client, auth, workbench,
                                                            monkeypatch):
    from webapp.gifts import suggest

    auth.login("admin")
    with app.app_context():
        first = retrain(client)[0].result["version"]
        second = retrain(client)[0].result["version"]
        real_round = suggest.run_round
        rounds = []

        def round_then_switch(plan, progress):
            counts = real_round(plan, progress)
            rounds.append(plan.version)
            if len(rounds) == 1:  # an admin rolls back while the first round runs
                registry.activate("labels", first, "someone", reason="rollback")
            return counts

        monkeypatch.setattr(suggest, "run_round", round_then_switch)
        result = suggest.suggest_task(lambda percent, message: None)
        assert rounds == [second, first]
        assert result["version"] == first and result["items"] == PENDING
        assert model_versions_written() == {first}


def test_a_label_saved_during_the_batch_is_kept_and_the_batch_goes_on(app, client, auth,
                                                                      workbench, monkeypatch):
    """A person labels an item between the batch's read and its write (or a second run
    overlaps this one): the batch skips the pair already there instead of failing on the
    unique (item, label) constraint, and the person's label stays."""
    from dataclasses import replace

    from webapp.gifts import suggest

    auth.login("admin")
    with app.app_context():
        version = retrain(client)[0].result["version"]
        real_plan = suggest.make_plan
        raced = []

        class PersonLabelsMeanwhile:
            """The active model, but a person saves its first suggestion as they read it."""

            def __init__(self, model):
                self.model = model
                self.groups = model.groups

            def assess(self, items, groups):
                assessment = self.model.assess(items, groups)
                plan = planned[0]
                for row_index, suggested in enumerate(assessment.suggestions):
                    if suggested and not raced:
                        label = suggested[0][0]
                        item_id = pending_ids[row_index]
                        db.session.add(ItemLabel(item_id=item_id, label_id=plan.label_ids[label],
                                                 source="human", created_by="staff"))
                        db.session.flush()
                        raced.append((item_id, label))
                return assessment

        def plan_with_a_person():
            plan = real_plan()
            plan = replace(plan, model=PersonLabelsMeanwhile(plan.model))
            planned[:] = [plan]
            return plan

        planned: list = []
        pending_ids = sorted(db.session.scalars(select(Item.id).where(Item.status == "pending")))
        monkeypatch.setattr(suggest, "make_plan", plan_with_a_person)
        result = suggest.suggest_task(lambda percent, message: None)

        assert raced, "the model suggested nothing to race with"
        item_id, label = raced[0]
        assert result["version"] == version and result["items"] == PENDING
        assert label in rows_by_source(item_id)["human"]
        assert label not in rows_by_source(item_id).get("model", set())


def test_training_reads_only_human_labels(app):
    """Rule and model labels on an accepted item teach the model nothing: an item with only
    those is a "none applies" example, and an item with a human label too gives that one."""
    from webapp.ml_bridge.labels import load_data

    with app.app_context():
        labels = add_vocabulary()
        machine_only, mixed = (make_item(row, "accepted")
                               for row in generate_items(2, seed=3))
        machine_only.labels = [
            ItemLabel(label=labels["theme:coffee"], source="rule", rule_name="Coffee"),
            ItemLabel(label=labels["theme:tea"], source="model", model_version="v1",
                      confidence=0.9)]
        mixed.labels = [
            ItemLabel(label=labels["theme:home"], source="human", created_by="test-staff"),
            ItemLabel(label=labels["theme:coffee"], source="rule", rule_name="Coffee"),
            ItemLabel(label=labels["theme:tea"], source="model", model_version="v1",
                      confidence=0.9)]
        db.session.add_all([machine_only, mixed])
        db.session.commit()
        examples = {example.item.id: example.labels for example in load_data().examples}
        assert examples == {machine_only.id: frozenset(), mixed.id: {"theme:home"}}
