"""Live gift proposals with a 10k-item catalogue, side by side with the bare fragment.

``python -m bench.gifts_proposals [--items 10000] [--seconds 5] [--rounds 3] [--workers 2]``
``python -m bench.gifts_proposals --in-process [--items 10000] [--requests 300]``

Builds a throwaway instance (like ``bench.predict``), adds ``--items`` synthetic items from
``ml.gift_items`` with their labels, then alternates rounds of ``GET /gifts/brief/proposals``
(a random brief per request: occasion, budget band, 0–2 themes, maybe an exclusion) and of the
bare fragment ``GET /pizzeria/predict`` from logged-in htmx clients. Reports throughput and
p50/p99 latency of each. Goal: proposals p99 <= 100 ms.

``--in-process`` serves nothing: it times ``--requests`` of each endpoint through Flask's test
client, one after the other, and counts their SQL statements: the cost of one request with
no HTTP server, no concurrency and no client in the way (what a profile of the view sees).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import tempfile
import time
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

from bench.hotswap import PASSWORD, USERNAME, Client, database, instance, prepare
from bench.predict import BARE, run_phase

RESULTS = Path(__file__).parent / "results"
GOAL_P99_MS = 100.0
OCCASIONS = ("onboarding", "retention", "client appreciation", "conference")
THEMES = ("coffee", "tea", "wellness", "sustainability", "local", "tech", "sweets", "home")
BUDGETS = ((15, 30), (30, 60), (50, 90), (80, 150))


def brief_path(rng) -> str:
    """A random brief as the proposals fragment's URL."""
    low, high = rng.choice(BUDGETS)
    args = [("occasion", rng.choice(OCCASIONS)), ("budget_min", low), ("budget_max", high),
            ("recipients", rng.randint(5, 60))]
    args += [("themes", theme) for theme in rng.sample(THEMES, rng.randint(0, 2))]
    if rng.random() < 0.3:
        args.append(("exclude", "perishable"))
    return "/gifts/brief/proposals?" + urlencode(args)


def seed_items(app, count: int) -> int:
    """Add ``count`` synthetic items with their (human) labels, in batches; make the bench
    user staff (gifts are staff-only; staff may use the pizzeria's bare fragment too)."""
    from ml.gift_items import DEMO_GROUPS, generate_items
    from webapp.auth.service import find_user
    from webapp.extensions import db
    from webapp.gifts.models import Item, ItemLabel, Label, LabelGroup, name_key

    with app.app_context():
        find_user(USERNAME).role = "staff"
        labels = {}
        for position, (group_name, (multi, names)) in enumerate(DEMO_GROUPS.items()):
            group = db.session.query(LabelGroup).filter_by(name=group_name).one_or_none()
            if group is None:
                group = LabelGroup(name=group_name, name_key=name_key(group_name), multi=multi,
                                   position=position)
                db.session.add(group)
                db.session.flush()
            for index, name in enumerate(names):
                label = db.session.query(Label).filter_by(group_id=group.id, name=name) \
                    .one_or_none()
                if label is None:
                    label = Label(group_id=group.id, name=name, name_key=name_key(name),
                                  position=index)
                    db.session.add(label)
                    db.session.flush()
                labels[f"{group_name}:{name}"] = label.id
        for index, row in enumerate(generate_items(count, seed=99)):
            item = Item(sku=f"B{index}-{row['sku']}"[:100], name=row["name"],
                        name_key=name_key(row["name"]), description=row["description"],
                        vendor=row["vendor"], vendor_key=name_key(row["vendor"]),
                        category=row["category"], unit_price=Decimal(str(row["price"])),
                        local=row["local"], sustainable=row["sustainable"],
                        brandable=row["brandable"], perishable=row["perishable"],
                        source="bench", status="accepted")
            item.labels = [ItemLabel(label_id=labels[name], source="human", created_by="bench")
                           for name in row["labels"] if name in labels]
            db.session.add(item)
            if index % 2000 == 1999:
                db.session.commit()
        db.session.commit()
    return count


@contextmanager
def app_only(database_url: str | None):
    """A throwaway Curate like :func:`bench.hotswap.instance`'s, without gunicorn: yield the
    in-process app."""
    from webapp.config import ENV_KEYS
    from webapp.extensions import db

    with tempfile.TemporaryDirectory(prefix="curate-bench-") as tmp_name, \
            database(database_url, Path(tmp_name)) as url:
        env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
        env.update(DATABASE_URL=url, MODEL_DIR=str(Path(tmp_name) / "models"),
                   SECRET_KEY=secrets.token_hex(32))
        app = prepare(env)
        try:
            yield app
        finally:
            with app.app_context():
                db.engine.dispose()


def per_request(app, requests: int) -> dict[str, dict]:
    """Milliseconds and SQL statements per request of each endpoint, through the test client
    (best of three runs of ``requests`` requests, after a warm-up)."""
    from sqlalchemy import event

    from webapp.extensions import db

    client = app.test_client()
    token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', client.get("/login").data)
    client.post("/login", data={"username": USERNAME, "password": PASSWORD,
                                "csrf_token": token[1].decode()})
    headers = {"HX-Request": "true"}
    endpoints = {"bare fragment": BARE, "proposals": brief_path}
    statements: list[str] = []
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    results = {}
    for name, path in endpoints.items():
        rng = random.Random(1)
        paths = [path(rng) for _ in range(requests)]
        for url in paths[:20]:  # warm-up: the catalogue and the models load
            if client.get(url, headers=headers).status_code != 200:
                raise SystemExit(f"{url} did not answer 200")
        runs = []
        for _ in range(3):
            statements.clear()
            started = time.perf_counter()
            for url in paths:
                client.get(url, headers=headers)
            runs.append((time.perf_counter() - started) / requests * 1000)
        results[name] = {"ms": min(runs), "statements": len(statements) / requests}
    return results


def main_in_process(args) -> int:
    """``--in-process``: seed, time both endpoints through the test client, print."""
    with app_only(args.database_url) as app:
        seed_items(app, args.items)
        results = per_request(app, args.requests)
    print(f"catalogue: {args.items} items; {args.requests} requests per run, best of 3, "
          "one at a time through Flask's test client")
    print(f"{'endpoint':<16}{'ms/request':>12}{'SQL/request':>13}")
    for name, row in results.items():
        print(f"{name:<16}{row['ms']:>12.2f}{row['statements']:>13.1f}")
    ratio = results["bare fragment"]["ms"] / results["proposals"]["ms"]
    print(f"\nproposals cost {1 / ratio:.1f}x the bare fragment per request "
          f"(CPU-bound, a throughput ratio of about {ratio:.2f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Seed, measure, report; exit 1 when the goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--duration", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--in-process", action="store_true",
                        help="time each endpoint through the test client instead (no server)")
    parser.add_argument("--requests", type=int, default=300,
                        help="requests per timed run with --in-process")
    args = parser.parse_args(argv)
    if args.in_process:
        return main_in_process(args)
    with instance(args) as (app, port, _log):
        started = time.monotonic()
        seed_items(app, args.items)
        seeding = time.monotonic() - started
        clients = [Client(port) for _ in range(args.clients)]
        for client in clients:
            client.login()
        run_phase(clients, brief_path, 2.0)  # warm-up: every worker builds its catalogue
        rounds = {"bare fragment": [], "proposals": []}
        for _ in range(args.rounds):
            rounds["bare fragment"].append(run_phase(clients, BARE, args.seconds))
            rounds["proposals"].append(run_phase(clients, brief_path, args.seconds))
    summary = {name: {key: sorted(r[key] for r in results)[len(results) // 2]
                      for key in results[0]} for name, results in rounds.items()}
    print(f"catalogue: {args.items} items (seeded in {seeding:.1f} s), "
          f"{args.workers} workers, {args.clients} clients")
    print(f"{'endpoint':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for name, row in summary.items():
        print(f"{name:<16}{row['rps']:>10.0f}{row['p50']:>10.2f}{row['p99']:>10.2f}"
              f"{row['failed']:>8.0f}")
    proposals = summary["proposals"]
    met = proposals["p99"] <= GOAL_P99_MS and not proposals["failed"]
    ratio = proposals["rps"] / summary["bare fragment"]["rps"]
    print(f"\nproposals p99 {proposals['p99']:.1f} ms (goal <= {GOAL_P99_MS:.0f} ms): "
          f"{'met' if met else 'NOT met'}; throughput {ratio:.2f}x the bare fragment")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"gifts-proposals-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"settings": vars(args), "summary": summary,
                               "ratio": ratio}, indent=2))
    print(f"results: {out}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
