"""Label model benchmark: training time, and the batch suggestions after an activation.

1. ``ml`` only: :func:`ml.label_model.train_labels` on 500 and 10,000 synthetic items
   (``ml.gift_items``), for each algorithm: seconds (hold-out fit + refit on everything) and the
   hold-out micro F1.
2. A throwaway instance (temp SQLite file, or a fresh PostgreSQL database) with ``--items``
   items (a fifth accepted with human labels, the rest pending with rule and model suggestions,
   as ``bench/gifts_export.py`` seeds them): the label model is trained on the accepted items
   and activated, then ``webapp.gifts.suggest.suggest_task`` rewrites every pending item's
   suggestions. Reported: total seconds, items per second, and per-batch p50/p95.

    .venv/bin/python -m bench.gifts_suggest [--items 100000] [--skip-ml]
                                            [--database-url postgresql+psycopg://postgres@127.0.0.1/db]

Results are printed and written to ``bench/results/gifts_suggest.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from bench import gifts_export, hotswap
from ml.gift_items import DEMO_GROUPS, generate_items
from ml.items import ItemData
from ml.label_model import ALGORITHMS, LabelExample, train_labels

ROOT = hotswap.ROOT
RESULTS = ROOT / "bench" / "results" / "gifts_suggest.json"
ML_SIZES = (500, 10_000)
FIELDS = ("sku", "name", "description", "vendor", "category", "price", "local", "sustainable",
          "brandable", "perishable")


def ml_training() -> list[dict]:
    """Seconds to train (measure + refit) at each size and algorithm."""
    groups = {group: labels for group, (_, labels) in DEMO_GROUPS.items()}
    single = {group for group, (multi, _) in DEMO_GROUPS.items() if not multi}
    figures = []
    for size in ML_SIZES:
        examples = [LabelExample(ItemData(id=i, **{k: row[k] for k in FIELDS}), row["labels"])
                    for i, row in enumerate(generate_items(size, seed=3))]
        for algorithm in ALGORITHMS:
            began = time.perf_counter()
            trained = train_labels(examples, groups, single, algorithm=algorithm)
            seconds = time.perf_counter() - began
            figures.append({"items": size, "algorithm": algorithm, "seconds": round(seconds, 2),
                            "micro_f1": round(trained.metrics["micro_f1"], 3)})
            print(f"train {algorithm:<14}{size:>7,} items: {seconds:6.2f} s, "
                  f"micro F1 {trained.metrics['micro_f1']:.3f}")
    return figures


def activate_model(app) -> dict:
    """Train on the accepted items and activate, without the hook (the bench times the batch)."""
    from ml import store
    from webapp import registry
    from webapp.extensions import db
    from webapp.gifts.models import gifts_settings
    from webapp.ml_bridge import get_spec, model_dir

    with app.app_context():
        gifts_settings().min_labels_per_label = 1
        db.session.commit()
        spec = get_spec("labels")
        began = time.perf_counter()
        data = spec.load_data()
        loaded = time.perf_counter()
        trained = spec.train(data)
        fitted = time.perf_counter()
        meta = store.publish(model_dir(), "labels", trained)
        row = registry.add_candidate("labels", meta, str(model_dir()), "bench")
        registry.activate("labels", row.version, "bench", reason="bench")
        return {"examples": len(data), "load_seconds": round(loaded - began, 2),
                "train_seconds": round(fitted - loaded, 2),
                "micro_f1": round(trained.metrics["micro_f1"], 3),
                "rules_micro_f1": trained.metrics["baseline_micro_f1"]}


def batch(app) -> dict:
    """Run the suggestion batch over every pending item, timing each batch."""
    from webapp.gifts import suggest

    timings: list[float] = []
    original = suggest.suggest_batch

    def timed(plan, rows, counts):
        began = time.perf_counter()
        original(plan, rows, counts)
        timings.append(time.perf_counter() - began)

    suggest.suggest_batch = timed
    try:
        with app.app_context():
            began = time.perf_counter()
            result = suggest.suggest_task(lambda percent, message: None)
            seconds = time.perf_counter() - began
    finally:
        suggest.suggest_batch = original
    ordered = sorted(timings)
    return {"items": result["items"], "labels": result["labels"], "removed": result["removed"],
            "groups": result["groups"], "seconds": round(seconds, 2),
            "items_per_second": round(result["items"] / seconds),
            "batch_size": suggest.BATCH, "batches": len(timings),
            "batch_p50_ms": round(statistics.median(ordered) * 1000, 1),
            "batch_p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1)}


def run(args) -> dict:
    """The ml timings, then the instance's training and batch."""
    training = [] if args.skip_ml else ml_training()
    with gifts_export.instance(args) as (app, _env, _tmp):
        seeded = gifts_export.seed(app, args.items)
        print(f"seeded {seeded['items']:,} items and {seeded['labels']:,} labels "
              f"in {seeded['seconds']} s")
        model = activate_model(app)
        print(f"trained on {model['examples']:,} accepted items: load {model['load_seconds']} s,"
              f" fit {model['train_seconds']} s, micro F1 {model['micro_f1']} "
              f"(rules {model['rules_micro_f1']})")
        suggestions = batch(app)
    database = "postgresql" if args.database_url else "sqlite"
    return {"settings": {"items": args.items, "database": database,
                         "python": sys.version.split()[0]},
            "ml_training": training, "seed": seeded, "model": model, "batch": suggestions}


def report(results: dict) -> None:
    """Print the batch figures."""
    settings, figures = results["settings"], results["batch"]
    print(f"\nCurate batch suggestions: {settings['items']:,} items, {settings['database']}")
    print(f"{figures['items']:,} pending items, {figures['labels']:,} suggestions written, "
          f"{figures['removed']:,} replaced, groups {', '.join(figures['groups'])}")
    print(f"{figures['seconds']} s in total, {figures['items_per_second']:,} items/s; "
          f"{figures['batches']} batches of {figures['batch_size']}: p50 "
          f"{figures['batch_p50_ms']} ms, p95 {figures['batch_p95_ms']} ms")


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the bench, print and save the results."""
    parser = argparse.ArgumentParser(prog="python -m bench.gifts_suggest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="items in the instance")
    parser.add_argument("--skip-ml", action="store_true", help="skip the ml training timings")
    parser.add_argument("--database-url", help="local PostgreSQL server to make a database on")
    args = parser.parse_args(argv)
    if args.items < 100:
        parser.error("--items must be at least 100")
    results = run(args)
    report(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
