"""Single-call inference cost of the compiled dough models, against a numpy floor and sklearn.

    .venv/bin/python -m bench.inference [--number 20000] [--repeat 9]

For each model type, three ways of predicting one night are timed with :mod:`timeit` (best of
``--repeat`` runs of ``--number`` calls each, so scheduler noise only ever makes a run slower):

- **floor**: ``coef @ x + b`` on prebuilt numpy arrays of the model's feature count, the least
  a numpy implementation has to do once the features exist;
- **predict_one**: ``DoughModel.predict_one``, what the app calls, including building the
  features from the raw night (the weekday and month of a date, imputing the temperature),
  clipping and rounding;
- **sklearn**: the wrapped estimator's ``predict`` on one prebuilt row.

Goal: predict_one within 3x the floor. The run exits 0 when every type meets it, and writes
its numbers to ``bench/results/inference-<UTC time>.json``.
"""

from __future__ import annotations

import datetime
import sys

import numpy as np

from bench import microbench
from bench.microbench import best_microseconds
from bench.suite import Goal
from ml.dough import MODEL_TYPES, DoughModel, multi_row, train_dough
from ml.synthetic import generate_weekday_year, generate_year

GOAL = 3.0  # predict_one may cost at most this many times the numpy floor
NIGHT = datetime.date(2023, 11, 14)
RESERVATIONS, TEMPERATURE = 15, 9.5


def models() -> dict[str, DoughModel]:
    """One published model per type, trained as the app would on the demo-like years."""
    log_year, weekday_year = generate_year(42), generate_weekday_year(42)
    return {
        kind: train_dough(weekday_year if kind == "multi" else log_year, model_type=kind).model
        for kind in MODEL_TYPES
    }


def statements(model: DoughModel) -> dict[str, tuple[str, dict]]:
    """The three timed statements for ``model``, each with the globals it runs in."""
    weights = np.asarray(model.coefficients_[1:], dtype=float)
    if model.model_type == "multi":
        row = np.array([multi_row(RESERVATIONS, NIGHT, TEMPERATURE)], dtype=float)
        call = "m.predict_one(r, d, t, False)"
    else:
        row = np.array([[RESERVATIONS]], dtype=float)
        call = "m.predict_one(r)"
    x = np.linspace(1.0, 2.0, weights.size)  # any values: the cost does not depend on them
    return {
        "floor": ("coef @ x + b", {"coef": weights, "x": x, "b": model.coefficients_[0]}),
        "predict_one": (call, {"m": model, "r": RESERVATIONS, "d": NIGHT, "t": TEMPERATURE}),
        "sklearn": ("e.predict(row)", {"e": model.estimator_, "row": row}),
    }


def measure(number: int, repeat: int) -> dict[str, dict]:
    """Time every statement of every model type."""
    results = {}
    for kind, model in models().items():
        timed = {}
        for name, (stmt, namespace) in statements(model).items():
            # sklearn is ~50x slower: fewer calls give it as long a run as the others.
            calls = max(number // 50, 100) if name == "sklearn" else number
            timed[name] = best_microseconds(stmt, namespace, calls, repeat)
        timed["features"] = len(model.coefficients_) - 1
        timed["ratio"] = timed["predict_one"] / timed["floor"]
        timed["sklearn_ratio"] = timed["sklearn"] / timed["floor"]
        timed["met"] = timed["ratio"] <= GOAL
        results[kind] = timed
    return results


def report(results: dict[str, dict]) -> str:
    """The results as a table and a verdict."""
    lines = [
        f"{'model':<11}{'features':>9}{'floor µs':>10}{'predict_one µs':>16}{'× floor':>9}"
        f"{'sklearn µs':>12}{'× floor':>9}"
    ]
    for kind, r in results.items():
        lines.append(
            f"{kind:<11}{r['features']:>9}{r['floor']:>10.3f}{r['predict_one']:>16.3f}"
            f"{r['ratio']:>9.2f}{r['sklearn']:>12.1f}{r['sklearn_ratio']:>9.0f}"
        )
    met = all(r["met"] for r in results.values())
    lines.append(f"goal: predict_one <= {GOAL:g}x the numpy floor: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def suite(database_url: str | None = None) -> list[Goal]:
    """The suite's lines: one per model, timed with fewer runs than the command line.

    ``database_url`` is unused: the model runs in-process.
    """
    return microbench.suite_goals(measure, what="dough model", call="predict_one", goal=GOAL)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 when every model type meets the goal."""
    return microbench.main(argv, description=__doc__.splitlines()[0], name="inference",
                           goal=GOAL, measure=measure, report=report)


if __name__ == "__main__":
    sys.exit(main())
