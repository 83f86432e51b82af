"""Per-call cost of one item's label suggestion: the app's path, a numpy floor, scikit-learn.

    .venv/bin/python -m bench.labels_inference [--number 20000] [--repeat 9]

The model is the default label model (one-vs-rest logistic regression, TF-IDF unigrams and
bigrams + price + attributes) trained on 2000 items of the synthetic demo catalogue
(``ml.gift_items``, seed 7), the size of a catalogue a gifting company has labelled. It is
asked about unseen items of the same catalogue in three shapes, each timed as the mean per
item over a sample (best of ``--repeat`` runs of about ``--number`` calls, so scheduler noise
only ever makes a run slower):

- **title only**: the name alone, as the "Try the labeller" preview sees it while a title is typed;
- **title, vendor, price**: what a quick entry gives;
- **full item**: name, description, vendor, category, price and attributes (~50 terms).

Per shape:

- **floor**: the least numpy has to do on prebuilt features: the item's feature vector
  (scipy CSR row, as ``LabelFeatures.transform`` gives it, or a dense array: the cheaper of
  the two counts) ``@ coef_ + intercept_``. No text is read, no decision made;
- **rows** (context): the same product on the non-zero rows only, ``values @ coef_[columns]``,
  the fast path's own kernel;
- **suggest_one**: ``LabelModel.suggest_one(item)``, what the app calls per keystroke: read the
  text, find its terms, encode, score, and decide each group's labels with confidences;
- **batch**: ``LabelModel.suggest([item])`` (``TfidfVectorizer.transform``, then the same
  compiled scoring), what the path was before;
- **sklearn**: ``predict_proba`` of each label's fitted estimator on the prebuilt row.

Goal: suggest_one within 3x the floor. The run exits 0 when every shape meets it, and writes its
numbers to ``bench/results/labels-inference-<UTC time>.json``. ``suite()`` runs it with the
suite's fewer calls for ``python -m bench``.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from bench import microbench
from bench.microbench import best_microseconds
from bench.suite import Goal
from ml.gift_items import DEMO_GROUPS, generate_items
from ml.items import ItemData
from ml.label_model import LabelExample, LabelModel, train_labels

GOAL = 3.0  # suggest_one may cost at most this many times the numpy floor
TRAIN_ITEMS = 2000
SAMPLE = 100  # unseen items per shape
SLOW_SAMPLE = 10  # of which the (slow) batch and sklearn paths time this many
FIELDS = ("sku", "name", "description", "vendor", "category", "price", "local", "sustainable",
          "brandable", "perishable")
SHAPES = ("title only", "title, vendor, price", "full item")


def model() -> LabelModel:
    """The default label model on the first :data:`TRAIN_ITEMS` demo items."""
    rows = generate_items(TRAIN_ITEMS, seed=7)
    data = [LabelExample(ItemData(id=i, **{name: row[name] for name in FIELDS}), row["labels"])
            for i, row in enumerate(rows)]
    groups = {group: labels for group, (_, labels) in DEMO_GROUPS.items()}
    single = {group for group, (multi, _) in DEMO_GROUPS.items() if not multi}
    return train_labels(data, groups, single, seed=0).model


def sample(shape: str) -> list[ItemData]:
    """:data:`SAMPLE` unseen items (another seed) in ``shape``."""
    full = [ItemData(id=i, **{name: row[name] for name in FIELDS})
            for i, row in enumerate(generate_items(SAMPLE, seed=99))]
    if shape == "title only":
        return [ItemData(id=item.id, name=item.name) for item in full]
    if shape == "title, vendor, price":
        return [ItemData(id=item.id, name=item.name, vendor=item.vendor, price=item.price)
                for item in full]
    return [replace(item, sku=None) for item in full]


def statements(m: LabelModel, items: list[ItemData]) -> dict[str, tuple[str, dict, int]]:
    """The timed statements for one sample: (statement, globals, items per statement)."""
    rows = [m.features.transform([item]) for item in items]
    dense = [row.toarray()[0] for row in rows]
    nonzero = [(row.indices, row.data) for row in rows]
    coef, b = m.coef_, m.intercept_
    estimators = [e for e in m.estimators_ if e is not None]
    slow_items, slow_rows = items[:SLOW_SAMPLE], rows[:SLOW_SAMPLE]
    m.suggest_one(items[0])  # build the single-item form outside the timing, as a worker has
    return {
        "sparse": ("for x in rows: x @ coef + b", {"rows": rows, "coef": coef, "b": b},
                   len(rows)),
        "dense": ("for x in dense: x @ coef + b", {"dense": dense, "coef": coef, "b": b},
                  len(dense)),
        "rows": ("for i, v in nonzero: v @ coef[i] + b",
                 {"nonzero": nonzero, "coef": coef, "b": b}, len(nonzero)),
        "suggest_one": ("for item in items: m.suggest_one(item)", {"m": m, "items": items},
                        len(items)),
        "batch": ("for item in items: m.suggest([item])", {"m": m, "items": slow_items},
                  len(slow_items)),
        "sklearn": ("for x in rows:\n for e in estimators: e.predict_proba(x)",
                    {"rows": slow_rows, "estimators": estimators}, len(slow_rows)),
    }


def measure_shape(m: LabelModel, shape: str, number: int, repeat: int) -> dict:
    """Time every statement on ``shape``'s sample; microseconds per item, and the ratios."""
    items = sample(shape)
    timed: dict = {}
    for name, (stmt, namespace, per_run) in statements(m, items).items():
        # The slow paths cost ~100-500x more: fewer passes give them about as long a run.
        passes = max(number // per_run // (200 if name in ("batch", "sklearn") else 1), 1)
        timed[name] = best_microseconds(stmt, namespace, passes, repeat) / per_run
    timed["floor"] = min(timed["sparse"], timed["dense"])
    timed["floor_kind"] = "sparse" if timed["sparse"] <= timed["dense"] else "dense"
    for name in ("rows", "suggest_one", "batch", "sklearn"):
        timed[f"{name}_ratio"] = timed[name] / timed["floor"]
    timed["ratio"] = timed["suggest_one_ratio"]
    timed["met"] = timed["ratio"] <= GOAL
    timed["terms"] = float(np.mean([m.features.transform([item]).nnz for item in items]))
    return timed


def measure(number: int, repeat: int) -> dict[str, dict]:
    """Train the model, then time every shape."""
    m = model()
    results = {shape: measure_shape(m, shape, number, repeat) for shape in SHAPES}
    for r in results.values():
        r["features"], r["labels"] = m.features.n_features, len(m.labels_)
    return results


def report(results: dict[str, dict]) -> str:
    """The results as a table and a verdict."""
    lines = [
        f"{'shape':<22}{'nnz':>5}{'floor µs':>10}{'rows µs':>9}{'suggest_one µs':>16}"
        f"{'× floor':>9}{'batch µs':>10}{'sklearn µs':>12}{'× floor':>9}"
    ]
    for shape, r in results.items():
        lines.append(
            f"{shape:<22}{r['terms']:>5.0f}{r['floor']:>10.2f}{r['rows']:>9.2f}"
            f"{r['suggest_one']:>16.2f}{r['ratio']:>9.2f}{r['batch']:>10.1f}{r['sklearn']:>12.1f}"
            f"{r['sklearn_ratio']:>9.0f}")
    any_result = next(iter(results.values()))
    lines.append(f"model: {any_result['features']} features, {any_result['labels']} labels; "
                 "floor = the cheaper of sparse and dense `x @ coef + b` on prebuilt features")
    met = all(r["met"] for r in results.values())
    lines.append(f"goal: suggest_one <= {GOAL:g}x the numpy floor: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def suite(database_url: str | None = None) -> list[Goal]:
    """The suite's lines: one per input shape, timed with fewer runs than the command line
    (about 20 s in all, most of it training the model and the slow paths).

    ``database_url`` is unused: the model runs in-process.
    """
    return microbench.suite_goals(measure, what="label model", call="suggest_one", goal=GOAL)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 when every shape meets the goal."""
    about = {"model": f"logreg label model on {TRAIN_ITEMS} demo items (seed 7)",
             "shapes": list(SHAPES), "sample": SAMPLE}
    return microbench.main(argv, description=__doc__.splitlines()[0], name="labels-inference",
                           goal=GOAL, measure=measure, report=report, about=about)


if __name__ == "__main__":
    sys.exit(main())
