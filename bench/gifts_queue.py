"""Labelling-queue benchmark: the next-item answer with 100k items (goal p99 <= 50 ms).

Builds a throwaway instance (temp SQLite file, or a fresh PostgreSQL database), seeds it with
``--items`` synthetic gift items (``ml.gift_items.generate_items``, bulk inserts) carrying rule
suggestions and random uncertainties, serves it with ``gunicorn -k sync`` on 127.0.0.1, and
drives two requests from logged-in staff clients, at concurrency 1 and 8:

- ``skip``: the htmx POST a keypress sends (skip the shown item): the decision, the next item by
  "least certain first" (10% random picks), the progress counter, the sidebar, out of band;
- ``next``: the htmx GET of the next item alone.

    .venv/bin/python -m bench.gifts_queue [--items 100000] [--seconds 10] [--workers 2]
                                          [--database-url postgresql+psycopg://postgres@127.0.0.1/db]

``suite()`` runs it for ``python -m bench`` with 8 s per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from bench.hotswap import (
    BIN,
    HOST,
    PASSWORD,
    ROOT,
    USERNAME,
    Client,
    cpu_seconds,
    database,
    free_port,
    healthy,
    percentile,
    stop,
)
from bench.suite import Goal, suite_args

GOAL_P99_MS = 50.0
CONCURRENCY = (1, 8)
CHUNK = 5000
SUGGESTION_RULE = "bench rule"
METHOD = ("client latency = time from sending the request to reading the whole answer, per "
          "client thread on its own connection (sync workers close each connection, so every "
          "request includes a TCP connect on loopback); in the worker = gunicorn's %(D)s for the "
          "same requests (no queueing, no client); worker CPU = the workers' CPU seconds over the "
          "phase / its requests. skip = the htmx POST a Space keypress "
          "sends; next = htmx GET /gifts/queue (the item block only).")


def seed(app, items: int) -> dict:
    """The demo vocabulary, ``items`` items in bulk with rule suggestions, and the bench user."""
    from sqlalchemy import insert, select

    from ml.gift_items import DEMO_GROUPS, generate_items
    from webapp.auth.service import create_user
    from webapp.extensions import db
    from webapp.gifts.models import Item, ItemLabel, Label, LabelGroup, gifts_settings, name_key

    started = time.perf_counter()
    with app.app_context():
        create_user(USERNAME, "staff", PASSWORD)
        for position, (group_name, (multi, names)) in enumerate(DEMO_GROUPS.items()):
            group = LabelGroup(name=group_name, name_key=name_key(group_name), multi=multi,
                               position=position)
            group.labels = [Label(name=name, name_key=name_key(name), position=index)
                            for index, name in enumerate(names)]
            db.session.add(group)
        gifts_settings()
        db.session.commit()
        label_ids = {f"{group}:{name}": label_id for group, name, label_id in db.session.execute(
            select(LabelGroup.name, Label.name, Label.id).join(Label.group))}
        rng = random.Random(11)
        rows, next_id = [], 1
        for row in generate_items(items, seed=7):
            rows.append((next_id, row))
            next_id += 1
            if len(rows) == CHUNK:
                _insert_chunk(db, insert, Item, ItemLabel, rows, label_ids, rng, name_key)
                rows = []
        if rows:
            _insert_chunk(db, insert, Item, ItemLabel, rows, label_ids, rng, name_key)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as conn:  # fresh statistics, as autovacuum would give
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        else:
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()
        db.engine.dispose()
    return {"items": items, "seconds": round(time.perf_counter() - started, 1)}


def _insert_chunk(db, insert, Item, ItemLabel, rows, label_ids, rng, name_key) -> None:
    """One bulk INSERT of items and one of their suggestions (ids given, so no round trip)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    db.session.execute(insert(Item), [{
        "id": item_id, "sku": row["sku"], "name": row["name"], "name_key": name_key(row["name"]),
        "description": row["description"], "vendor": row["vendor"],
        "vendor_key": name_key(row["vendor"]), "category": row["category"],
        "unit_price": row["price"], "local": row["local"], "sustainable": row["sustainable"],
        "brandable": row["brandable"], "perishable": row["perishable"],
        "image_url": row["image_url"], "source": "bench", "source_row": item_id + 1,
        "created_at": now, "updated_at": now, "status": "pending", "skipped": False,
        "uncertainty": round(rng.random(), 4)} for item_id, row in rows])
    db.session.execute(insert(ItemLabel), [
        {"item_id": item_id, "label_id": label_ids[label], "source": "rule",
         "rule_name": SUGGESTION_RULE, "created_at": now}
        for item_id, row in rows for label in sorted(row["labels"])[:2]])


class QueueClient(Client):
    """A logged-in staff browser that knows its CSRF token and the item it is shown."""

    def start(self) -> None:
        """Log in and open the queue once, as a browser does."""
        self.login()
        _, page = self.request("GET", "/gifts/queue")
        token = re.search(rb'"X-CSRFToken": "([^"]+)"', page)
        if token is None:
            raise SystemExit("no CSRF token on the queue page")
        self.token = token[1].decode()
        self.item_id = self._item_of(page)

    @staticmethod
    def _item_of(body: bytes) -> int | None:
        found = re.search(rb'data-item-id="(\d+)"', body)
        return int(found[1]) if found else None

    def skip(self) -> int:
        """Skip the shown item (the Space key); returns the status."""
        response, body = self.request(
            "POST", f"/gifts/queue/items/{self.item_id}/decide", urlencode({"action": "skip"}),
            {"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true",
             "X-CSRFToken": self.token})
        if response.status == 200:
            self.item_id = self._item_of(body) or self.item_id
        return response.status

    def next(self) -> int:
        """Ask for the next item (htmx GET); returns the status."""
        response, body = self.request("GET", "/gifts/queue", headers={"HX-Request": "true"})
        self.item_id = self._item_of(body) or self.item_id
        return response.status


def drive(clients: list[QueueClient], action: str, seconds: float) -> dict:
    """Every client repeats ``action`` in its own thread for ``seconds``; latency stats."""
    latencies, failures = [], []
    stop = threading.Event()

    def run(client: QueueClient) -> None:
        while not stop.is_set():
            sent = time.perf_counter()
            try:
                status = getattr(client, action)()
            except OSError as error:
                failures.append(repr(error))
                continue
            if status == 200:
                latencies.append(time.perf_counter() - sent)  # list.append is atomic
            else:
                failures.append(status)

    threads = [threading.Thread(target=run, args=(client,), daemon=True) for client in clients]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {"action": action, "concurrency": len(clients), "requests": len(latencies),
            "failed": len(failures), "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(1000 * percentile(latencies, 0.50), 2),
            "p99_ms": round(1000 * percentile(latencies, 0.99), 2),
            "max_ms": round(1000 * max(latencies, default=float("nan")), 2)}


#: gunicorn's access log line: method, path, status, time in the worker (microseconds).
ACCESS_FORMAT = "%(m)s %(U)s %(s)s %(D)s"


@contextmanager
def gunicorn(env: dict, workers: int, tmp: Path):
    """Serve the instance on a free loopback port with an access log that records how long each
    request took inside the worker; yield (port, log path, master pid); always stop it."""
    port = free_port()
    log, output = tmp / "access.log", tmp / "gunicorn.log"
    import gunicorn as package

    private = ["--no-control-socket"] if package.version_info >= (27,) else []
    with open(output, "wb") as sink:
        server = subprocess.Popen(
            [BIN / "gunicorn", "-w", str(workers), "-k", "sync", "-b", f"{HOST}:{port}",
             "--access-logfile", str(log), "--access-logformat", ACCESS_FORMAT, *private,
             "wsgi:app"], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not healthy(port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"gunicorn did not start:\n{output.read_text()[-3000:]}")
            time.sleep(0.1)
        yield port, log, server.pid
    finally:
        stop(server)


def worker_times(log: Path, offset: int) -> tuple[list[float], int]:
    """Seconds spent in the worker by the 200 answers logged after ``offset``; new offset."""
    with open(log, "rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    complete = chunk.rfind(b"\n") + 1
    times = []
    for line in chunk[:complete].decode().splitlines():
        method, path, status, micros = line.split()
        if path.startswith("/gifts/queue") and status == "200":
            times.append(int(micros) / 1e6)
    return times, offset + complete


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the master's children (Linux)."""
    with open(f"/proc/{master}/task/{master}/children") as handle:
        return [int(pid) for pid in handle.read().split()]


@contextmanager
def instance(args):
    """A seeded throwaway Curate served by gunicorn; yield (port, access log, worker pids,
    seeding)."""
    from webapp import create_app
    from webapp.config import ENV_KEYS

    with tempfile.TemporaryDirectory(prefix="curate-bench-") as tmp_name, \
            database(args.database_url, Path(tmp_name)) as url:
        tmp = Path(tmp_name)
        env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
        env.update(DATABASE_URL=url, MODEL_DIR=str(tmp / "models"),
                   SECRET_KEY=secrets.token_hex(32))
        done = subprocess.run([BIN / "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                              env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"flask db upgrade failed:\n{done.stderr}")
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "MODEL_DIR": env["MODEL_DIR"],
                          "SECRET_KEY": env["SECRET_KEY"]})
        seeded = seed(app, args.items)
        with gunicorn(env, args.workers, tmp) as (port, log, master):
            yield port, log, worker_pids(master), seeded


def measure(port: int, log: Path, workers: list[int], seconds: float) -> list[dict]:
    """Skip, then next, for ``seconds`` each, at concurrency 1 and 8; one row per run."""
    rows, offset = [], 0
    for concurrency in CONCURRENCY:
        clients = [QueueClient(port) for _ in range(concurrency)]
        for client in clients:
            client.start()
        drive(clients, "next", 1.0)  # warm up: connections, templates, caches
        for action in ("skip", "next"):
            _, offset = worker_times(log, offset)
            cpu = cpu_seconds(workers)["workers"]
            row = drive(clients, action, seconds)
            time.sleep(0.3)  # let the workers write their last access-log lines
            # CPU per request hardly depends on what else runs: the cost on a quiet machine.
            cpu = cpu_seconds(workers)["workers"] - cpu
            row["worker_cpu_ms"] = round(1000 * cpu / max(row["requests"], 1), 2)
            inside, offset = worker_times(log, offset)
            row["worker_p50_ms"] = round(1000 * percentile(inside, 0.50), 2)
            row["worker_p99_ms"] = round(1000 * percentile(inside, 0.99), 2)
            rows.append(row)
    return rows


def run(args) -> dict:
    """Seed and serve an instance, measure it; the results with settings and load average."""
    with instance(args) as (port, log, workers, seeded):
        load_before = os.getloadavg()[0]
        rows = measure(port, log, workers, args.seconds)
    # Other work on the machine inflates every figure: keep the load average beside them.
    return {"settings": {**vars(args), "database": "postgresql" if args.database_url
                         else "sqlite", "method": METHOD, "cpus": os.cpu_count(),
                         "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
            "seeding": seeded, "rows": rows}


def suite(database_url: str | None = None) -> list[Goal]:
    """The suite's four lines: skip and next, at 1 and at 8 clients, with 100k items.

    8 s per measurement instead of 10 (about 75 s in all on a 2-core machine, seeding
    included). At 1 client the goal is the client's p99. At 8 clients on 2 sync workers the
    requests wait in gunicorn's queue, so the client p99 measures capacity, not the answer:
    there the goal is the p99 inside the worker, with the client p99 beside it.
    """
    results = run(suite_args(database_url, items=100_000, seconds=8.0, workers=2))
    context = {"seeding": results["seeding"], "load_average": results["settings"]["load_average"]}
    goals = []
    for row in results["rows"]:
        single = row["concurrency"] == 1
        client = f"p99 {row['p99_ms']:.1f} ms (p50 {row['p50_ms']:.1f})"
        if single:
            p99, where, figure = row["p99_ms"], "", client
        else:
            p99, where = row["worker_p99_ms"], " in the worker"
            figure = (f"p99 {p99:.1f} ms in the worker (p50 {row['worker_p50_ms']:.1f}); "
                      f"client {client} with queueing")
        figure += f"; {row['requests']:,} requests, {row['failed']} failed"
        goals.append(Goal(
            "queue", f"{row['action']} at {row['concurrency']} client"
                     f"{'' if single else 's'}, {results['settings']['items']:,} items",
            figure, f"p99{where} <= {GOAL_P99_MS:g} ms, 0 failed",
            row["failed"] == 0 and p99 <= GOAL_P99_MS, {**row, **context}))
    return goals


def report(results: dict) -> bool:
    """Print the table; True when every p99 at concurrency 1 meets the goal."""
    settings = results["settings"]
    print(f"\nCurate labelling-queue bench: {settings['database']}, {settings['items']:,} items "
          f"(seeded in {results['seeding']['seconds']} s), gunicorn -k sync "
          f"-w {settings['workers']}, {settings['seconds']} s per row; {settings['cpus']} CPUs, "
          f"load average {settings['load_average'][0]} before, "
          f"{settings['load_average'][1]} after\n")
    print(f"{'':<34}{'client latency (ms)':>27}{'in the worker (ms)':>20}{'worker CPU':>12}")
    print(f"{'request':<8}{'clients':>8}{'requests':>10}{'failed':>8}{'req/s':>9}"
          f"{'p50':>9}{'p99':>9}{'max':>9}{'p50':>10}{'p99':>10}{'ms/req':>12}")
    for row in results["rows"]:
        print(f"{row['action']:<8}{row['concurrency']:>8}{row['requests']:>10,}{row['failed']:>8}"
              f"{row['rps']:>9.1f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['max_ms']:>9.2f}"
              f"{row['worker_p50_ms']:>10.2f}{row['worker_p99_ms']:>10.2f}"
              f"{row['worker_cpu_ms']:>12.2f}")
    single = [row for row in results["rows"] if row["concurrency"] == 1]
    passed = all(row["failed"] == 0 and row["p99_ms"] <= GOAL_P99_MS for row in single)
    print(f"\nmethod: {METHOD}")
    print(f"result: {'PASS' if passed else 'FAIL'} (goal: p99 <= {GOAL_P99_MS:.0f} ms at "
          "concurrency 1, no failed request; at 8 clients on "
          f"{settings['workers']} sync workers requests queue, so p99 grows with the queue)")
    return passed


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the bench, print and save the results; 0 when it passed."""
    parser = argparse.ArgumentParser(prog="python -m bench.gifts_queue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="items to seed")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--database-url", help="local PostgreSQL server to make a database on")
    args = parser.parse_args(argv)
    results = run(args)
    passed = report(results)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gifts_queue-{results['settings']['database']}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results: {path.relative_to(ROOT)}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
