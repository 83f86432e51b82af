"""A live-preview endpoint vs the app's bare fragment endpoint, side by side in one run.

``python -m bench.predict [--target dough|games] [--seconds 5] [--rounds 3] [--workers 2]``

The bare fragment is ``GET /pizzeria/predict`` without a query: the same stack (gunicorn sync
workers, session login, Jinja block rendering) with no model call. ``dough`` drives the live
dough prediction; ``games`` the tavern's live top 5 (which also renders five suggestions with
covers, reasons and pick forms). Rounds alternate so that machine noise hits both alike.
Goal: the live endpoint's throughput >= 0.85x the bare fragment's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench.hotswap import Client, Load, instance, percentile

RESULTS = Path(__file__).parent / "results"
BARE = lambda rng: "/pizzeria/predict"  # noqa: E731 - a table of tiny URL makers
STYLES = ("Action", "Adventure", "Fighting", "Platformer", "Puzzle", "RPG", "Shooter", "Sport")
TARGETS = {
    "dough": lambda rng: f"/pizzeria/predict?reservations={rng.randrange(60)}",
    "games": lambda rng: "/tavern/suggestions?" + "&".join(
        [f"budget={rng.choice(('cheap', 'standard', 'premium'))}"]
        + [f"gameplay={style}" for style in rng.sample(STYLES, rng.randint(0, 3))]),
}
GOAL = 0.85


def run_phase(clients: list[Client], path, seconds: float) -> dict:
    """Drive ``path`` for ``seconds``; return requests/s, p50/p99 (ms) and failures."""
    with Load(clients, path=path) as load:
        time.sleep(seconds)
    latencies = [1000 * (s.recv - s.sent) for s in load.samples if s.status == 200]
    return {"rps": len(latencies) / load.seconds,
            "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
            "failed": sum(s.status != 200 for s in load.samples)}


def measure(port: int, args) -> dict:
    """Alternate the two endpoints for ``args.rounds`` rounds; return per-endpoint medians."""
    endpoints = {"bare fragment": BARE, "prediction": TARGETS[args.target]}
    clients = [Client(port) for _ in range(args.clients)]
    for client in clients:
        client.login()
    run_phase(clients, endpoints["prediction"], 1.0)  # warm-up: every worker loads the model
    rounds = {name: [] for name in endpoints}
    for _ in range(args.rounds):
        for name, path in endpoints.items():
            rounds[name].append(run_phase(clients, path, args.seconds))
    return {name: {key: statistics.median(r[key] for r in results) for key in results[0]}
            for name, results in rounds.items()}


def report(summary: dict) -> bool:
    """Print the table; True when the goal is met."""
    bare, pred = summary["bare fragment"], summary["prediction"]
    ratio = pred["rps"] / bare["rps"]
    print(f"{'endpoint':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for name, row in summary.items():
        print(f"{name:<16}{row['rps']:>10.0f}{row['p50']:>10.2f}{row['p99']:>10.2f}"
              f"{row['failed']:>8.0f}")
    met = ratio >= GOAL and not pred["failed"] and not bare["failed"]
    print(f"\nprediction / bare fragment throughput: {ratio:.2f}x "
          f"(goal >= {GOAL}x): {'met' if met else 'NOT met'}")
    return met


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON next to the other results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(TARGETS), default="dough")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--duration", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    with instance(args) as (_app, port, _log):
        summary = measure(port, args)
    met = report(summary)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"predict-{args.target}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"settings": vars(args), "summary": summary}, indent=2))
    print(f"results: {out}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
