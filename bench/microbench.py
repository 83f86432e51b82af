"""What the per-call inference benchmarks share: timing, the command line, the JSON record.

``bench.inference`` (dough) and ``bench.games_inference`` (tavern) each time a model call
against a numpy floor; only their statements and tables differ.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sklearn

from bench.suite import Goal

RESULTS = Path(__file__).resolve().parent / "results"
#: The suite's settings: fewer runs than the command line's 20000 x 9, well inside 20 s.
SUITE_NUMBER, SUITE_REPEAT = 10000, 5


def best_microseconds(stmt: str, namespace: dict, number: int, repeat: int) -> float:
    """Best per-call time over ``repeat`` runs of ``number`` calls, in µs."""
    runs = timeit.Timer(stmt, globals=namespace).repeat(repeat=repeat, number=number)
    return min(runs) / number * 1e6


def machine() -> dict:
    """The facts about this machine a figure depends on."""
    return {"python": platform.python_version(), "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "cpus": os.cpu_count(),
            "platform": platform.platform()}


def main(argv: list[str] | None, *, description: str, name: str, goal: float,
         measure: Callable[[int, int], dict[str, dict]],
         report: Callable[[dict[str, dict]], str], about: dict | None = None) -> int:
    """Parse ``--number``/``--repeat``, measure, print the table, write ``RESULTS/name-*.json``.

    Returns 0 when every measured row has ``met`` true, else 1.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--number", type=int, default=20000, help="calls per timed run")
    parser.add_argument("--repeat", type=int, default=9, help="timed runs; the best counts")
    args = parser.parse_args(argv)
    results = measure(args.number, args.repeat)
    print(report(results))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps({
        "created_at": stamp, "goal": goal, "number": args.number, "repeat": args.repeat,
        **(about or {}), "machine": machine(), "unit": "microseconds per call (best run)",
        "results": results,
    }, indent=2))
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    print(f"written to {shown}")
    return 0 if all(r["met"] for r in results.values()) else 1


def suite_goals(measure: Callable[[int, int], dict[str, dict]], *, what: str, call: str,
                goal: float) -> list[Goal]:
    """Run ``measure`` with the suite's settings; one "inference" line per measured row.

    ``what`` names the rows (e.g. "dough model"); ``call`` is the timed statement's key, set
    against the ``floor`` one (and scikit-learn's, for context).
    """
    results = measure(SUITE_NUMBER, SUITE_REPEAT)
    return [Goal("inference", f"{what} {label}: {call} vs numpy floor",
                 f"{r['ratio']:.2f}x ({r[call]:.3g} vs {r['floor']:.3g} µs per call; "
                 f"sklearn {r['sklearn_ratio']:.0f}x)",
                 f"<= {goal:g}x the floor", bool(r["met"]),
                 {**r, "number": SUITE_NUMBER, "repeat": SUITE_REPEAT})
            for label, r in results.items()]
