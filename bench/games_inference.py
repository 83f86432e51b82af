"""Per-call cost of a top-5 game suggestion: scikit-learn, the compiled model, a numpy floor.

    .venv/bin/python -m bench.games_inference [--number 20000] [--repeat 9]

The model is Complement NB (the reference's algorithm) trained on the reference catalogue
(``tests/ml/fixtures/gamedrop_gameplays.csv``, 92 games, 21 features). For a few queries, four
ways of getting the top 5 are timed with :mod:`timeit` (best of ``--repeat`` runs of
``--number`` calls, so scheduler noise only ever makes a run slower):

- **floor**: ``feature_log_prob_ @ x`` on a prebuilt feature vector, then ``argpartition``
  for the five best and an ``argsort`` of those five: the least numpy has to do, with no
  encoding, no validation, no tie rule and no names;
- **ranking**: the compiled model's core, the exact integer keys of the query's columns and
  a stable sort (the tie rule), still without encoding or suggestions;
- **top_n**: ``GameModel.top_n(budget, styles)``, what the app calls: validating and encoding
  the raw query, ranking, and building five :class:`~ml.games.Suggestion` objects with
  scores and reasons;
- **sklearn**: ``predict_proba`` on a prebuilt row, then a stable ``argsort`` for the top 5.

Goal: top_n within 3x the floor. The run exits 0 when every query meets it, and writes its
numbers to ``bench/results/games-inference-<UTC time>.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bench import microbench
from bench.microbench import best_microseconds
from bench.suite import Goal
from ml.games import GameModel, read_games_csv, train_games

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "tests" / "ml" / "fixtures" / "gamedrop_gameplays.csv"
GOAL = 3.0  # top_n may cost at most this many times the numpy floor
QUERIES = {
    "budget only": ("cheap", ()),
    "2 styles": ("premium", ("Adventure", "RPG")),
    "4 styles": ("standard", ("Arcade", "Platform", "Puzzle", "Shooter")),
}


def model() -> GameModel:
    """The reference set-up: Complement NB, one example per game, default thresholds."""
    return train_games(read_games_csv(CATALOGUE)).model


def statements(m: GameModel, budget: str, styles: tuple[str, ...]) -> dict[str, tuple[str, dict]]:
    """The timed statements for one query, each with the globals it runs in."""
    x = m.encode(budget, styles)
    row = x[np.newaxis, :]
    columns = np.flatnonzero(x).tolist()
    weights = m.estimator_.feature_log_prob_
    return {
        "floor": (
            "s = w @ x; i = np.argpartition(-s, 5)[:5]; i[np.argsort(-s[i])]",
            {"w": weights, "x": x, "np": np},
        ),
        "ranking": (
            "np.argsort(-scorer.keys_for(columns), kind='stable')[:5]",
            {"scorer": m._scorer, "columns": columns, "np": np},
        ),
        "top_n": ("m.top_n(budget, styles)", {"m": m, "budget": budget, "styles": styles}),
        "sklearn": (
            "np.argsort(-e.predict_proba(row)[0], kind='stable')[:5]",
            {"e": m.estimator_, "row": row, "np": np},
        ),
    }


def measure(number: int, repeat: int) -> dict[str, dict]:
    """Time every statement for every query."""
    m = model()
    results = {}
    for label, (budget, styles) in QUERIES.items():
        timed = {}
        for name, (stmt, namespace) in statements(m, budget, styles).items():
            # sklearn is ~20x slower: fewer calls give it as long a run as the others.
            calls = max(number // 20, 100) if name == "sklearn" else number
            timed[name] = best_microseconds(stmt, namespace, calls, repeat)
        timed["ranking_ratio"] = timed["ranking"] / timed["floor"]
        timed["ratio"] = timed["top_n"] / timed["floor"]
        timed["sklearn_ratio"] = timed["sklearn"] / timed["floor"]
        timed["met"] = timed["ratio"] <= GOAL
        results[label] = timed
    return results


def report(results: dict[str, dict]) -> str:
    """The results as a table and a verdict."""
    lines = [
        f"{'query':<13}{'floor µs':>10}{'ranking µs':>12}{'× floor':>9}{'top_n µs':>10}"
        f"{'× floor':>9}{'sklearn µs':>12}{'× floor':>9}"
    ]
    for label, r in results.items():
        lines.append(
            f"{label:<13}{r['floor']:>10.2f}{r['ranking']:>12.2f}{r['ranking_ratio']:>9.2f}"
            f"{r['top_n']:>10.2f}{r['ratio']:>9.2f}{r['sklearn']:>12.1f}{r['sklearn_ratio']:>9.1f}"
        )
    met = all(r["met"] for r in results.values())
    lines.append(f"goal: top_n <= {GOAL:g}x the numpy floor: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def suite(database_url: str | None = None) -> list[Goal]:
    """The suite's lines: one per query, timed with fewer runs than the command line.

    ``database_url`` is unused: the model runs in-process.
    """
    return microbench.suite_goals(measure, what="games query", call="top_n", goal=GOAL)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 when every query meets the goal."""
    about = {"model": "complement_nb on the reference catalogue (92 games, 21 features)",
             "queries": {label: [budget, list(styles)]
                         for label, (budget, styles) in QUERIES.items()}}
    return microbench.main(argv, description=__doc__.splitlines()[0], name="games-inference",
                           goal=GOAL, measure=measure, report=report, about=about)


if __name__ == "__main__":
    sys.exit(main())
