"""Per-call cost of the gift model's scores for one brief: the app's call, sklearn, a numpy floor.

    .venv/bin/python -m bench.gifts_inference [--number 20000] [--repeat 9]

Every keystroke of a client's brief asks the live gift model for its scores of every item it
knows (``GiftModel.scores(brief)`` -> :class:`~ml.gifts.ItemScores`, see
``webapp/gifts/recommend.py``). The model is trained as the demo trains it: Complement NB over
the past gifts of :func:`ml.gift_history.generate_history` (400 gifts, 36 clients) on 500 items
of :func:`ml.gift_items.generate_items`. For a few briefs, five ways are timed with
:mod:`timeit` (best of ``--repeat`` runs of ``--number`` calls):

- **floor**: ``x @ feature_log_prob_.T`` on a prebuilt feature row, then the rescaling to
  [0, 1] (min, max, subtract, divide): the least numpy has to do for the same values. The
  model's ``classes_`` are sorted ids already, so the output needs no argsort;
- **scores**: ``GiftModel.scores(brief)``, what the app calls: the brief's features from its
  fields, the product, the rescaling and the :class:`~ml.gifts.ItemScores`;
- **before**: the same through ``predict_joint_log_proba`` and a sorting ``ItemScores``, as
  the app did before issue 8 (for context);
- **sklearn**: ``predict_joint_log_proba`` on a prebuilt row, no rescaling (context);
- **sklearn_proba**: ``predict_proba`` on a prebuilt row (context).

Goal: scores within 3x the floor. The run exits 0 when every brief meets it, and writes its
numbers to ``bench/results/gifts-inference-<UTC time>.json``.
"""

from __future__ import annotations

import sys
from functools import cache

import numpy as np

from bench import microbench
from bench.microbench import best_microseconds
from bench.suite import Goal
from ml.gift_history import generate_history, make_clients
from ml.gift_items import generate_items
from ml.gift_model import GiftModel, fit
from ml.gifts import Brief, Candidate, ItemScores

GOAL = 3.0  # scores may cost at most this many times the numpy floor
ITEMS, CLIENTS, GIFTS, SEED = 500, 36, 400, 11  # the demo's catalogue and history
BRIEFS = {
    "occasion only": Brief("onboarding", 30, 60),
    "themes+industry": Brief("client appreciation", 50, 90, themes=("coffee", "local"),
                             industry="finance"),
    "unseen theme": Brief("conference", 15, 30, themes=("never-seen",), industry="space"),
}
#: Statements at least this many times slower get fewer calls (as long a run, less waiting).
SLOW = {"before": 20, "sklearn": 20, "sklearn_proba": 20}


@cache
def model() -> GiftModel:
    """The demo's set-up: the model fitted on every synthetic past gift."""
    attributes = ("local", "sustainable", "brandable", "perishable")
    candidates = [Candidate(index, row["name"], row["vendor"], row["category"], row["price"],
                            frozenset(row["labels"]),
                            frozenset(name for name in attributes if row[name]))
                  for index, row in enumerate(generate_items(ITEMS, seed=SEED), start=1)]
    history = generate_history(candidates, make_clients(CLIENTS, seed=SEED), GIFTS, seed=SEED)
    return fit([gift for _, gift in history])


def statements(m: GiftModel, brief: Brief) -> dict[str, tuple[str, dict]]:
    """The timed statements for one brief, each with the globals it runs in."""
    row = m._vector(brief)
    weights_t = m.nb.feature_log_prob_.T
    rescale = "lo = j.min(); hi = j.max(); v = (j - lo) / (hi - lo)"
    return {
        "floor": (f"j = (x @ w)[0]; {rescale}", {"x": row, "w": weights_t}),
        "scores": ("m.scores(brief)", {"m": m, "brief": brief}),
        "before": (
            f"j = e.predict_joint_log_proba(m._vector(brief))[0]; {rescale}; "
            "ItemScores(e.classes_, v)",
            {"e": m.nb, "m": m, "brief": brief, "ItemScores": ItemScores},
        ),
        "sklearn": ("e.predict_joint_log_proba(row)", {"e": m.nb, "row": row}),
        "sklearn_proba": ("e.predict_proba(row)", {"e": m.nb, "row": row}),
    }


def check(m: GiftModel, brief: Brief) -> None:
    """The floor and the app's call give the same values (else the comparison means nothing)."""
    joint = m.nb.predict_joint_log_proba(m._vector(brief))[0]
    expected = (joint - joint.min()) / (joint.max() - joint.min())
    scores = m.scores(brief)
    if list(scores) != m.nb.classes_.tolist() or \
            not np.array_equal(scores.aligned(m.nb.classes_), expected):
        raise SystemExit(f"GiftModel.scores disagrees with scikit-learn for {brief}")


def measure(number: int, repeat: int) -> dict[str, dict]:
    """Time every statement for every brief."""
    m = model()
    results = {}
    for label, brief in BRIEFS.items():
        check(m, brief)
        timed = {}
        for name, (stmt, namespace) in statements(m, brief).items():
            calls = max(number // SLOW.get(name, 1), 100)
            timed[name] = best_microseconds(stmt, namespace, calls, repeat)
        for name in ("scores", "before", "sklearn", "sklearn_proba"):
            timed[f"{name}_ratio"] = timed[name] / timed["floor"]
        timed["ratio"] = timed["scores_ratio"]
        timed["met"] = timed["ratio"] <= GOAL
        results[label] = timed
    return results


def report(results: dict[str, dict]) -> str:
    """The results as a table and a verdict."""
    columns = ("scores", "before", "sklearn", "sklearn_proba")
    lines = [f"{'brief':<17}{'floor µs':>10}" + "".join(
        f"{name + ' µs':>18}{'× floor':>9}" for name in columns)]
    for label, r in results.items():
        lines.append(f"{label:<17}{r['floor']:>10.2f}" + "".join(
            f"{r[name]:>18.2f}{r[name + '_ratio']:>9.2f}" for name in columns))
    met = all(r["met"] for r in results.values())
    lines.append(f"goal: scores <= {GOAL:g}x the numpy floor: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def suite(database_url: str | None = None) -> list[Goal]:
    """The suite's lines: one per brief, timed with fewer runs than the command line.

    ``database_url`` is unused: the model runs in-process.
    """
    return microbench.suite_goals(measure, what="gift brief", call="scores", goal=GOAL)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 when every brief meets the goal."""
    m = model()
    about = {"model": f"complement_nb on the demo history ({GIFTS} gifts, {len(m.items)} items, "
                      f"{len(m.vocabulary)} features)",
             "briefs": {label: repr(brief) for label, brief in BRIEFS.items()}}
    return microbench.main(argv, description=__doc__.splitlines()[0], name="gifts-inference",
                           goal=GOAL, measure=measure, report=report, about=about)


if __name__ == "__main__":
    sys.exit(main())
