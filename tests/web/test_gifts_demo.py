"""The gifts demo data: a believable catalogue, rules, human labels, idempotent."""

from __future__ import annotations

from sqlalchemy import func, select

from webapp.demo.gifts import DEMO_RULES, ITEMS, MODEL_GROUP, choose_accepted, load_demo_gifts
from webapp.extensions import db
from webapp.gifts.models import Item, ItemLabel, LabelGroup, Rule, gifts_settings
from webapp.gifts.sources import live_sources


def counts() -> dict[str, int]:
    """Rows per table the demo writes to."""
    return {name: db.session.scalar(select(func.count()).select_from(model))
            for name, model in (("items", Item), ("labels", ItemLabel), ("groups", LabelGroup),
                                ("rules", Rule))}


def test_demo_load_creates_a_catalogue_rules_and_reviews(app):
    with app.app_context():
        result = load_demo_gifts()
        assert result.items == ITEMS == db.session.scalar(
            select(func.count(Item.id)).where(Item.source == "demo"))
        assert result.groups == 3 and result.labels == 16
        assert result.rules == len(DEMO_RULES) == db.session.scalar(select(func.count(Rule.id)))
        rows = db.session.scalars(select(Item.source_row).where(Item.source == "demo")).all()
        assert sorted(rows) == list(range(1, ITEMS + 1))
        assert db.session.scalar(select(func.count(func.distinct(Item.vendor)))) == 6

        accepted = db.session.scalar(select(func.count(Item.id)).where(Item.status == "accepted"))
        assert accepted == result.accepted > 0
        assert result.rejected > 0
        human = db.session.scalar(select(func.count(ItemLabel.id))
                                  .where(ItemLabel.source == "human"))
        assert human == result.human_labels
        # Every human label sits on an accepted item, and every accepted item has some.
        on_pending = db.session.scalar(
            select(func.count(ItemLabel.id)).join(ItemLabel.item)
            .where(ItemLabel.source == "human", Item.status != "accepted"))
        assert on_pending == 0

        # The rules ran: pending items carry rule labels named after their rule.
        ruled = db.session.execute(select(ItemLabel.rule_name, func.count())
                                   .where(ItemLabel.source == "rule")
                                   .group_by(ItemLabel.rule_name)).all()
        assert {"Coffee", "Sustainable"} <= {name for name, _ in ruled}


def test_the_occasion_group_has_enough_human_labels_and_the_others_do_not(app):
    with app.app_context():
        load_demo_gifts()
        sources = live_sources()
        needed = gifts_settings().min_labels_per_label
        assert sources[MODEL_GROUP].fewest_human >= needed
        for group in ("theme", "audience"):
            assert sources[group].fewest_human < needed
            assert sources[group].source == "rules"


def test_a_second_load_adds_nothing(app):
    with app.app_context():
        first = load_demo_gifts()
        before = counts()
        human_before = db.session.scalar(select(func.count(ItemLabel.id))
                                         .where(ItemLabel.source == "human"))
        second = load_demo_gifts()
        assert (second.items, second.groups, second.labels, second.rules, second.accepted) \
            == (0, 0, 0, 0, 0)
        assert first.items == ITEMS
        assert "already loaded" in second.lines()[0]
        after = counts()
        assert {key: after[key] for key in ("items", "groups", "rules")} == \
            {key: before[key] for key in ("items", "groups", "rules")}
        assert db.session.scalar(select(func.count(ItemLabel.id))
                                 .where(ItemLabel.source == "human")) == human_before


def test_demo_load_command_prints_the_gifts_lines(runner):
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    assert f"Gifts: {ITEMS} items added" in result.output
    assert "Gifts: rules applied:" in result.output
    assert "Gifts: label model" in result.output


def test_choose_accepted_stops_once_every_label_has_enough():
    generated = [frozenset({"occasion:onboarding", "theme:tea"}),
                 frozenset({"occasion:conference"}),
                 frozenset({"occasion:onboarding"}),
                 frozenset({"occasion:retention"}),
                 frozenset({"occasion:client appreciation", "occasion:onboarding"}),
                 frozenset({"occasion:retention", "occasion:conference"}),
                 frozenset({"occasion:onboarding"})]
    # With two needed per label: row 3 still helps onboarding, row 7 comes after the stop.
    assert choose_accepted(generated, 2) == [1, 2, 3, 4, 5, 6]
    assert choose_accepted(generated, 1) == [1, 2, 4, 5]
