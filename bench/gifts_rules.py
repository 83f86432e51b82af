"""Rules benchmark: the live preview and the "apply rules" job at 100k items.

Builds a throwaway instance (temp SQLite file, or a fresh PostgreSQL database) with ``--items``
synthetic items (``bench/gifts_export.py`` seeds them: a fifth accepted with human labels, the
rest pending with suggestions) and the demo's ten rules (``webapp.demo.gifts.DEMO_RULES``).

1. Preview (``webapp.gifts.rules.preview``), the request path of the rule builder: for a few
   typical conditions, the p50 of ``--repeat`` runs, the rows (items, or distinct value
   combinations) the engine judged, and the same with the SQL narrowing switched off.
2. Apply (``webapp.gifts.rules.apply_rules_task``) over every pending item: total seconds,
   items per second, per-batch p50/p95, and the process's peak RSS before and after (flat
   memory means the peak hardly moves with the item count).

    .venv/bin/python -m bench.gifts_rules [--items 100000] [--repeat 5]
                                          [--database-url postgresql+psycopg://postgres@127.0.0.1/db]

Results are printed and written to ``bench/results/gifts_rules-<sqlite|postgresql>.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time

from bench import gifts_export, hotswap

ROOT = hotswap.ROOT
RESULTS = ROOT / "bench" / "results"
#: Conditions staff typically preview: (what it shows, condition JSON).
PREVIEWS = (
    ("text contains (narrowed by LIKE)", {"match": "all", "conditions": [
        {"field": "text", "op": "contains", "value": "coffee"}]}),
    ("price + attribute (grouped, exact SQL)", {"match": "all", "conditions": [
        {"field": "price", "op": "lt", "value": 20}, {"field": "local", "op": "is_true"}]}),
    ("vendor in [...] (grouped by vendor)", {"match": "all", "conditions": [
        {"field": "vendor", "op": "in", "value": ["Northside Roasters", "Voltwise Accessories"]}]}),
    ("text regex (every item in Python)", {"match": "all", "conditions": [
        {"field": "text", "op": "regex", "value": r"\b(espresso|latte)\b"}]}),
)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def add_demo_rules(app) -> int:
    """The demo's rules on the demo vocabulary (which the seed created)."""
    from webapp.demo.gifts import GiftsDemoResult, add_rules, ensure_vocabulary
    from webapp.extensions import db

    with app.app_context():
        result = GiftsDemoResult()
        add_rules(ensure_vocabulary(result), result)
        db.session.commit()
        return result.rules


def time_preview(app, condition: dict, repeat: int, prefilter: bool) -> dict:
    """p50 seconds of ``repeat`` previews of ``condition``, with or without the SQL prefilter."""
    from ml.labels import Rule
    from webapp.gifts import rules

    rule = Rule.from_dict(0, "bench", 0, condition, ["theme:coffee"])
    original = rules.rule_prefilter
    if not prefilter:
        rules.rule_prefilter = lambda _rule, text=True: None
    timings = []
    try:
        with app.app_context():
            for _ in range(repeat):
                began = time.perf_counter()
                result = rules.preview(rule)
                timings.append(time.perf_counter() - began)
    finally:
        rules.rule_prefilter = original
    return {"p50_ms": round(statistics.median(timings) * 1000, 1), "examined": result.examined,
            "pending": result.pending, "total": result.total}


def previews(app, repeat: int) -> list[dict]:
    """Each typical condition with and without the prefilter."""
    figures = []
    for name, condition in PREVIEWS:
        narrowed = time_preview(app, condition, repeat, prefilter=True)
        full = time_preview(app, condition, repeat, prefilter=False)
        assert (narrowed["pending"], narrowed["total"]) == (full["pending"], full["total"])
        figures.append({"condition": name, "with_prefilter": narrowed, "no_prefilter": full,
                        "speedup": round(full["p50_ms"] / max(narrowed["p50_ms"], 0.1), 1)})
        print(f"preview {name:<40} {narrowed['p50_ms']:>8} ms ({narrowed['examined']:>7,} rows"
              f" judged, {narrowed['total']:>6,} match); no SQL narrowing {full['p50_ms']:>8} ms")
    return figures


def apply(app) -> dict:
    """Run the apply job's task over every pending item, timing each batch."""
    from webapp.gifts import rules

    timings: list[float] = []
    original = rules.apply_batch

    def timed(plan, rows, counts):
        began = time.perf_counter()
        original(plan, rows, counts)
        timings.append(time.perf_counter() - began)

    rss_before = peak_rss_mib()
    rules.apply_batch = timed
    try:
        with app.app_context():
            began = time.perf_counter()
            result = rules.apply_rules_task(lambda percent, message: None)
            seconds = time.perf_counter() - began
    finally:
        rules.apply_batch = original
    ordered = sorted(timings)
    return {**result, "seconds": round(seconds, 2),
            "items_per_second": round(result["items"] / seconds),
            "batch_size": rules.BATCH, "batches": len(timings),
            "batch_p50_ms": round(statistics.median(ordered) * 1000, 1),
            "batch_p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
            "peak_rss_mib_before": rss_before, "peak_rss_mib_after": peak_rss_mib()}


def run(args) -> dict:
    """Seed, preview, apply."""
    with gifts_export.instance(args) as (app, _env, _tmp):
        seeded = gifts_export.seed(app, args.items)
        print(f"seeded {seeded['items']:,} items and {seeded['labels']:,} labels "
              f"in {seeded['seconds']} s; {add_demo_rules(app)} rules")
        preview_figures = previews(app, args.repeat)
        applied = apply(app)
    database = "postgresql" if args.database_url else "sqlite"
    return {"settings": {"items": args.items, "repeat": args.repeat, "database": database,
                         "python": sys.version.split()[0]},
            "seed": seeded, "preview": preview_figures, "apply": applied}


def report(results: dict) -> None:
    """Print the apply figures (the previews were printed as they ran)."""
    settings, figures = results["settings"], results["apply"]
    print(f"\nCurate apply rules: {settings['items']:,} items, {settings['database']}")
    print(f"{figures['items']:,} pending items, {figures['labelled']:,} labelled by "
          f"{figures['rules']} rules, {figures['labels']:,} labels written, "
          f"{figures['removed']:,} replaced")
    print(f"{figures['seconds']} s in total, {figures['items_per_second']:,} items/s; "
          f"{figures['batches']} batches of {figures['batch_size']}: p50 "
          f"{figures['batch_p50_ms']} ms, p95 {figures['batch_p95_ms']} ms; peak RSS "
          f"{figures['peak_rss_mib_before']} -> {figures['peak_rss_mib_after']} MiB")


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the bench, print and save the results."""
    parser = argparse.ArgumentParser(prog="python -m bench.gifts_rules", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="items in the instance")
    parser.add_argument("--repeat", type=int, default=5, help="runs per preview")
    parser.add_argument("--database-url", help="local PostgreSQL server to make a database on")
    args = parser.parse_args(argv)
    if args.items < 100 or args.repeat < 1:
        parser.error("--items must be at least 100 and --repeat at least 1")
    results = run(args)
    report(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"gifts_rules-{results['settings']['database']}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
