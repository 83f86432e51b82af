"""Label suggestions: human-labelled gift items in, a multi-label model out.

Training reads only accepted items and their human labels (rule and model suggestions must never
teach the model what it is supposed to learn from people). The rules engine's labels for the same
items are the baseline the hold-out metrics compare against. When a version becomes active,
:func:`after_activation` queues the batch that rewrites the pending items' suggestions
(``webapp.gifts.suggest``). The one prediction on the request path is the Try the labeller
preview (``webapp.gifts.try_labels``), which stores nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from ml import label_model
from ml import labels as rules_engine
from ml.training import TrainedModel
from webapp.extensions import db
from webapp.ml_bridge import KindSpec

KIND = "labels"

ALGORITHM_LABELS = {
    "logreg": "Logistic regression, one per label (balanced)",
    "complement_nb": "Complement Naive Bayes, one per label",
}

#: Items read per round trip while reading the training set.
WINDOW = 2000


@dataclass(frozen=True)
class LabelsData:
    """The training set as plain ml values."""

    examples: list[label_model.LabelExample]
    #: group -> its labels' plain names, in vocabulary order.
    groups: dict[str, tuple[str, ...]]
    single_label_groups: frozenset[str]
    #: item id -> the labels the enabled rules give it now.
    baseline: dict[int, frozenset[str]]

    def __len__(self) -> int:
        return len(self.examples)


def vocabulary() -> tuple[dict[str, tuple[str, ...]], frozenset[str], dict[int, str]]:
    """Every label group's labels (plain names), the single-label groups, and every label's
    ``group:label`` name by id."""
    from webapp.gifts.models import LabelGroup

    query = (select(LabelGroup).options(selectinload(LabelGroup.labels))
             .order_by(LabelGroup.position, LabelGroup.name_key))
    groups, single, names = {}, set(), {}
    for group in db.session.scalars(query):
        groups[group.name] = tuple(label.name for label in group.labels)
        names.update({label.id: f"{group.name}:{label.name}" for label in group.labels})
        if not group.multi:
            single.add(group.name)
    return groups, frozenset(single), names


def accepted_windows():
    """Accepted items (``webapp.gifts.rules.ITEM_COLUMNS`` rows), :data:`WINDOW` items at a time.

    Windows are read by primary key and filtered here, and each window's labels are fetched by
    item id: a single join over every label (or "accepted and id > n" by id) let the planners
    pick plans that grew faster than the data (SQLite's status index re-sorted every accepted
    item per window; PostgreSQL took minutes on a fresh 100k-item table).
    """
    from webapp.gifts.models import Item
    from webapp.gifts.rules import ITEM_COLUMNS

    last_id = 0
    while True:
        rows = db.session.execute(select(*ITEM_COLUMNS, Item.status).where(Item.id > last_id)
                                  .order_by(Item.id).limit(WINDOW)).all()
        if not rows:
            return
        last_id = rows[-1].id
        accepted = [row for row in rows if row.status == "accepted"]
        if accepted:
            yield accepted


def human_labels(item_ids: list[int], names: dict[int, str]) -> dict[int, set[str]]:
    """item id -> its human labels as ``group:label`` names."""
    from webapp.gifts.models import ItemLabel

    query = select(ItemLabel.item_id, ItemLabel.label_id).where(
        ItemLabel.item_id.in_(item_ids), ItemLabel.source == "human")
    labels: dict[int, set[str]] = defaultdict(set)
    for item_id, label_id in db.session.execute(query):
        if label_id in names:
            labels[item_id].add(names[label_id])
    return labels


def load_data() -> LabelsData:
    """Accepted items with their human labels, the vocabulary, and the rules' labels for them.

    An accepted item without any human label still teaches the model: a person looked at it and
    decided that none of the labels applies.
    """
    from webapp.gifts.rules import item_data, load_rules

    groups, single, names = vocabulary()
    rules = rules_engine.ordered(load_rules())
    examples, baseline = [], {}
    for rows in accepted_windows():
        labels = human_labels([row.id for row in rows], names)
        for row in rows:
            item = item_data(row)
            examples.append(label_model.LabelExample(item, frozenset(labels.get(item.id, ()))))
            given = rules_engine.apply_rules(rules, item, single)
            baseline[item.id] = frozenset(label.label for label in given)
    return LabelsData(examples, groups, single, baseline)


def train(data: LabelsData, algorithm: str = label_model.DEFAULT_ALGORITHM,
          holdout: float = 0.2, seed: int = 0) -> TrainedModel:
    """Fit the label model (``algorithm``: logreg or complement_nb)."""
    return label_model.train_labels(
        data.examples, data.groups, data.single_label_groups, data.baseline,
        algorithm=algorithm, holdout=float(holdout), seed=int(seed))


def load_version(model_dir, version: str, sha256: str) -> label_model.LabelModel:
    """Load and verify exactly ``version`` (a batch must use the version it was started for,
    not whatever this worker's holder happens to serve at that moment)."""
    from ml import store

    return store.load(model_dir, KIND, version, sha256).model


class LabelsTrainForm(FlaskForm):
    """Options for a label-model retrain."""

    algorithm = SelectField("Algorithm", default=label_model.DEFAULT_ALGORITHM, choices=[
        SelectChoice(name, ALGORITHM_LABELS.get(name, name)) for name in label_model.ALGORITHMS])


def after_activation(version: str):
    """A labels version became active: queue the batch that rewrites pending suggestions."""
    from webapp.gifts.suggest import enqueue_suggestions

    return enqueue_suggestions(version)


SPEC = KindSpec(
    kind=KIND,
    title="Label suggestions",
    description="Gifts: suggests occasion, theme and audience labels for items, learnt from the "
                "labels staff gave (accepted items only) and compared with the rules engine. A "
                "group switches from rules to the model once every label in it has enough "
                "human labels; suggestions are recomputed in a batch after each activation.",
    load_data=load_data,
    train=train,
    primary_metric="micro_f1",
    lower_is_better=False,
    param_form=LabelsTrainForm,
    metric_labels={"micro_f1": "Micro F1", "baseline_micro_f1": "Rules micro F1",
                   "macro_f1": "Macro F1", "baseline_macro_f1": "Rules macro F1"},
    algorithms=label_model.ALGORITHMS,
    after_activation=after_activation,
)
