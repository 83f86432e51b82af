"""Training time and peak memory of the three ml models, at growing data sizes.

    .venv/bin/python -m bench.train [--models dough games labels] [--max-size 100000]

Each (model, size) runs in a fresh child process (``python -m bench.train --child MODEL SIZE``),
which builds its synthetic data with ``ml`` code only (no Flask, no database), then times the
training call alone:

- **dough**: ``ml.dough.train_dough(nights, model_type="auto")``, the app's default, which
  fits all three model types on a chronological hold-out and refits the winner on every
  usable night. 10k, 100k and 1M synthetic nights on consecutive days (Friday and Saturday,
  about 2/7 of them, are excluded by default; 2% have no reservation count, 5% no dough
  count). Goal: at most 5 s at 1M nights.
- **games**: ``ml.games.train_games`` (Complement NB, the app's default) on the reference
  catalogue (``tests/ml/fixtures/gamedrop_gameplays.csv``, 92 games) plus 10k, 100k and 1M
  picks from ``ml.synthetic.generate_picks``. Goal: at most 10 s at 1M picks.
- **labels**: ``ml.label_model.train_labels`` (logistic regression, the app's default,
  without a rules baseline) on 10k and 100k items from ``ml.gift_items.generate_items`` with
  their labels, as ``bench/gifts_suggest.py`` builds them. No goal: context.

The 10k and 100k lines of dough and games are context (no goal of their own): at those sizes
fixed costs dominate and a scaled-down goal would say little.

Reported per line: wall seconds of the training call, its CPU seconds (they count every
thread, so they can exceed the wall time when BLAS runs in parallel, and they are the fairer
figure on a busy machine), the RSS growth (peak ``VmHWM`` during training minus ``VmRSS``
just before it) and the absolute peak (which includes the data the child built). Before
training the child collects garbage, hands freed heap back to the system (``malloc_trim``)
and resets the high-water mark (``/proc/self/clear_refs``), so the peak is the training's,
not the data generator's. Results go to ``bench/results/train-<UTC time>.json``; the exit
code is 0 when every goal is met.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.suite import Goal, memory_kb, verdict

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CATALOGUE = ROOT / "tests" / "ml" / "fixtures" / "gamedrop_gameplays.csv"
SIZES = {"dough": (10_000, 100_000, 1_000_000), "games": (10_000, 100_000, 1_000_000),
         "labels": (10_000, 100_000)}
GOALS = {("dough", 1_000_000): 5.0, ("games", 1_000_000): 10.0}  # wall seconds
UNITS = {"dough": "nights", "games": "picks", "labels": "items"}
CHILD_TIMEOUT = 300  # seconds; a child that takes longer is reported as failed
SEED = 3


# --- data (in the child, not timed) --------------------------------------------------------------


def dough_data(size: int) -> tuple:
    """``size`` nights on consecutive days from 1900: doughs follow reservations and weekday."""
    import numpy as np

    from ml.dough import Night

    rng = np.random.default_rng(SEED)
    first = datetime.date(1900, 1, 1).toordinal()
    days = np.arange(first, first + size)
    weekday = (days - 1) % 7  # date.fromordinal(1) is a Monday
    reservations = rng.integers(0, 60, size)
    doughs = np.rint(2 * reservations + 5 + 12 * (weekday == 6) + rng.uniform(-3, 3, size))
    season = np.cos(2 * np.pi * (days % 365) / 365)
    temperature = np.round(12 - 10 * season + rng.normal(0, 3, size), 1)
    no_count, no_doughs, no_temperature = (rng.random((3, size)) < [[.02], [.05], [.1]])
    holiday = (rng.random(size) < 0.03).tolist()
    rows = zip(days.tolist(), reservations.tolist(), doughs.astype(int).tolist(),
               temperature.tolist(), no_count.tolist(), no_doughs.tolist(),
               no_temperature.tolist(), holiday, strict=True)
    nights = [Night(datetime.date.fromordinal(day), None if unknown else count,
                    None if missing else made, None if cold else temp, festive)
              for day, count, made, temp, unknown, missing, cold, festive in rows]
    return (nights,), {"model_type": "auto"}


def games_data(size: int) -> tuple:
    """The reference catalogue and ``size`` synthetic picks."""
    from ml.games import read_games_csv
    from ml.synthetic import generate_picks

    games = read_games_csv(CATALOGUE)
    return (games, generate_picks(games, seed=SEED, n=size)), {}


def labels_data(size: int) -> tuple:
    """``size`` demo catalogue items with their labels, the demo groups, single-label groups."""
    from ml.gift_items import DEMO_GROUPS, generate_items
    from ml.items import ItemData
    from ml.label_model import LabelExample

    fields = ("sku", "name", "description", "vendor", "category", "price", "local",
              "sustainable", "brandable", "perishable")
    examples = [LabelExample(ItemData(id=i, **{name: row[name] for name in fields}),
                             row["labels"])
                for i, row in enumerate(generate_items(size, seed=SEED))]
    groups = {group: labels for group, (_, labels) in DEMO_GROUPS.items()}
    single = {group for group, (multi, _) in DEMO_GROUPS.items() if not multi}
    return (examples, groups, single), {}


def _trainer(model: str) -> tuple[Callable[[int], tuple], Callable]:
    """The data builder and the training function of ``model``."""
    if model == "dough":
        from ml.dough import train_dough
        return dough_data, train_dough
    if model == "games":
        from ml.games import train_games
        return games_data, train_games
    from ml.label_model import train_labels
    return labels_data, train_labels


def _summary(model: str, trained) -> dict:
    """A few figures of the trained model, to show the run trained something sensible."""
    metrics = trained.metrics
    if model == "dough":
        return {"chosen": trained.params["model_type"], "mae": round(metrics["mae"], 3),
                "training_rows": trained.training_rows}
    if model == "games":
        return {"hit_rate_at_5": round(metrics["hit_rate_at_5"], 3),
                "baseline_hit_rate_at_5": round(metrics["baseline_hit_rate_at_5"], 3),
                "training_rows": trained.training_rows}
    return {"micro_f1": round(metrics["micro_f1"], 3),
            "features": trained.model.features.n_features,
            "training_rows": trained.training_rows}


# --- one measured training (in a child process) --------------------------------------------------




def _settle_memory() -> bool:
    """Free what data building left behind and reset the peak; False if the reset failed."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # return freed heap, so RSS is what is held
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # Linux 4.0+: VmHWM := VmRSS
        return True
    except OSError:
        return False


def measure(model: str, size: int) -> dict:
    """Build the data, then time the training call and record its memory."""
    build, train = _trainer(model)
    began = time.perf_counter()
    args, kwargs = build(size)
    generated = time.perf_counter() - began
    reset = _settle_memory()
    rss_before = memory_kb("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    trained = train(*args, **kwargs)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    peak = memory_kb("VmHWM")
    return {"model": model, "size": size, "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu_seconds, 3), "generate_seconds": round(generated, 2),
            "rss_before_mb": round(rss_before / 1024, 1),
            "rss_growth_mb": round((peak - rss_before) / 1024, 1),
            "peak_rss_mb": round(peak / 1024, 1), "peak_is_training_only": reset,
            "summary": _summary(model, trained)}


def run_child(model: str, size: int) -> dict:
    """:func:`measure` in a fresh interpreter, so its time and peak memory are its own."""
    command = [sys.executable, "-m", "bench.train", "--child", model, str(size)]
    began = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT,
                              timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"model": model, "size": size, "error": f"timed out after {CHILD_TIMEOUT} s"}
    if done.returncode != 0:
        return {"model": model, "size": size, "error": done.stderr[-3000:]}
    run = json.loads(done.stdout.strip().splitlines()[-1])
    run["child_seconds"] = round(time.perf_counter() - began, 2)  # start-up and data included
    return run


# --- the table and the suite ---------------------------------------------------------------------


def goal_of(run: dict) -> Goal:
    """One table line for a measured run."""
    model, size = run["model"], run["size"]
    name = f"{model} model, {size:,} {UNITS[model]}"
    limit = GOALS.get((model, size))
    target = f"<= {limit:g} s" if limit else ""
    if "error" in run:
        return Goal("train", name, "failed: " + run["error"].strip().splitlines()[-1][:80],
                    target, False if limit else None, run)
    figure = (f"{run['seconds']:.2f} s (CPU {run['cpu_seconds']:.2f} s), "
              f"+{run['rss_growth_mb']:.0f} MB RSS, peak {run['peak_rss_mb']:.0f} MB")
    met = run["seconds"] <= limit if limit else None
    return Goal("train", name, figure, target, met, run)


def measure_all(models: list[str], max_size: int | None = None,
                echo: Callable[[str], None] | None = None) -> list[dict]:
    """Every size of every model in ``models``, one child each, in order."""
    runs = []
    for model in models:
        for size in SIZES[model]:
            if max_size is not None and size > max_size:
                continue
            run = run_child(model, size)
            run["load_average"] = round(os.getloadavg()[0], 2)
            runs.append(run)
            if echo:
                echo(_line(goal_of(run)))
    return runs


def suite(database_url: str | None = None) -> list[Goal]:
    """Every model at every size (no database needed: ``database_url`` is ignored).

    About 100-130 s on a quiet 2-core machine, most of it the label model at 100k items.
    """
    del database_url
    return [goal_of(run) for run in measure_all(list(SIZES))]


def _line(goal: Goal) -> str:
    return f"{goal.name:<30} {goal.figure:<52} {goal.target:<9} {verdict(goal)}"


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write the JSON; exit 0 when every goal is met."""
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--max-size", type=int, help="skip sizes above this (for a quick run)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return 0
    from bench.microbench import machine

    print(f"{'model, size':<30} {'train time, memory':<52} {'goal':<9} verdict")
    runs = measure_all(args.models, args.max_size, echo=print)
    goals = [goal_of(run) for run in runs]
    busy = max((run["load_average"] for run in runs), default=0.0)
    if busy > (os.cpu_count() or 1):
        print(f"note: the load average reached {busy:.1f} on {os.cpu_count()} CPUs: other work "
              "slowed this run; the CPU seconds are the fairer figure.")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"train-{stamp}.json"
    path.write_text(json.dumps({"created_at": stamp, "goals_seconds": {
        f"{model} {size}": limit for (model, size), limit in GOALS.items()},
        "machine": machine(), "runs": runs, "table": [g.as_dict() for g in goals]}, indent=2))
    print(f"results: {path.relative_to(ROOT)}")
    return 0 if all(goal.met is not False for goal in goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
