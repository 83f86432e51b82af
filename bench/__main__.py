"""One entry point for the benchmark suite: ``python -m bench all`` (or one group of it).

    .venv/bin/python -m bench all        # everything, in under 10 minutes on a 2-core machine
    .venv/bin/python -m bench live       # live previews vs the bare fragment, and a retrain
    .venv/bin/python -m bench inference  # one model call vs the numpy floor, per model kind
    .venv/bin/python -m bench train      # training time and peak memory at 10k / 100k / 1M
    .venv/bin/python -m bench import     # 100k-row import, 100k-item streamed export
    .venv/bin/python -m bench queue      # the labelling queue at 100k items
    .venv/bin/python -m bench hotswap    # 20 retrain + activate cycles under load
    .venv/bin/python -m bench soak       # 64 clients, 60 s, retrains: never part of `all`
    ... [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Every group builds what it needs (throwaway databases, gunicorn servers, child processes),
stops by itself, and reports :class:`bench.suite.Goal` lines. The table printed at the end
says, for every goal, whether it is met, with its figure. The run is also written as JSON to
``bench/results/suite-<stamp>.json``. A group that crashes is reported as a NOT met line with
its error, and the others still run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

from bench.microbench import machine
from bench.suite import Goal, verdict

RESULTS = Path(__file__).resolve().parent / "results"

#: group -> the modules whose ``suite()`` it runs, in order.
GROUPS = {
    "live": ["bench.live"],
    "inference": ["bench.inference", "bench.games_inference", "bench.labels_inference",
                  "bench.gifts_inference"],
    "train": ["bench.train"],
    "import": ["bench.gifts_import", "bench.gifts_export"],
    "queue": ["bench.gifts_queue"],
    "hotswap": ["bench.hotswap"],
}
#: Groups run only by name, never by ``all``, with their own options (``bench soak --help``):
#: a pass/fail check of the app under load, not a figure for the suite's table.
STANDALONE = {"soak": "bench.soak"}


def run_module(name: str, database_url: str | None) -> tuple[list[Goal], float]:
    """One module's goals and its seconds; a crash becomes a NOT met line, never silence."""
    started = time.monotonic()
    try:
        goals = importlib.import_module(name).suite(database_url)
    except (Exception, SystemExit) as error:  # SystemExit: the modules' "cannot run" exits
        traceback.print_exc()
        goals = [Goal(name.removeprefix("bench."), f"{name} crashed", f"{error!r}"[:200],
                      "runs", False)]
    return goals, time.monotonic() - started


def table(goals: list[Goal]) -> str:
    """The goals as a Markdown table (readable in a terminal, pasteable in docs)."""
    lines = ["| area | measure | figure | goal | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {g.area} | {g.name} | {g.figure} | {g.target or '-'} | {verdict(g)} |"
              for g in goals]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen groups, print the table, write the JSON; exit 1 if a goal is not met."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in STANDALONE:
        return importlib.import_module(STANDALONE[argv[0]]).main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group", choices=["all", *GROUPS])
    parser.add_argument("--database-url", default=None,
                        help="a local PostgreSQL server to create throwaway databases on")
    args = parser.parse_args(argv)
    groups = list(GROUPS) if args.group == "all" else [args.group]
    # Figures are only as good as the machine is quiet: say how busy it was.
    load = {"before": os.getloadavg()}
    started, goals, seconds = time.monotonic(), [], {}
    for group in groups:
        for name in GROUPS[group]:
            print(f"=== {name} ===", flush=True)
            found, seconds[name] = run_module(name, args.database_url)
            goals += found
    total = time.monotonic() - started
    load["after"] = os.getloadavg()
    print(f"\n{table(goals)}\n")
    met = sum(goal.met is True for goal in goals)
    missed = sum(goal.met is False for goal in goals)
    spent = ", ".join(f"{name.removeprefix('bench.')} {s:.0f} s" for name, s in seconds.items())
    print(f"{met} met, {missed} not met, in {total:.0f} s ({spent})")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"suite-{args.group}-{stamp}.json"
    out.write_text(json.dumps({
        "created_at": stamp, "group": args.group, "database_url": args.database_url,
        "machine": machine(), "load_average": load, "seconds": {"total": total, **seconds},
        "goals": [goal.as_dict() for goal in goals]}, indent=2))
    print("load average (1/5/15 min) before: {:.1f} {:.1f} {:.1f}, after: {:.1f} {:.1f} {:.1f}"
          .format(*load["before"], *load["after"]))
    print(f"results: {out}")
    return 0 if missed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
