"""Gifts export benchmark: stream 100k items with their labels, and show that it streams.

Builds a throwaway instance (temp SQLite file, or a fresh PostgreSQL database), bulk-inserts
``--items`` synthetic items (``ml.gift_items``) with about four labels each (human on the
accepted fifth, rule and model suggestions on the rest), then downloads
``GET /gifts/export/download`` in CSV and JSONL:

1. in-process, through Flask's test client: total seconds, time to the first byte and to the
   first page of rows, and Python's peak allocated memory (tracemalloc, a second pass) after
   10%, 50% and 100% of the rows: flat when the export streams;
2. with ``--gunicorn``, from a ``gunicorn -k sync -w 1`` server on 127.0.0.1 (the helpers of
   ``bench/hotswap.py``): the same timings over HTTP and the worker's resident memory (RSS)
   before and at its peak during the download.

    .venv/bin/python -m bench.gifts_export [--items 100000] [--gunicorn]
                                           [--timeout 30]
                                           [--database-url postgresql+psycopg://postgres@127.0.0.1/db]

Results are printed and written to ``bench/results/gifts_export-<sqlite|postgresql>.json``.
``suite()`` runs the gunicorn downloads alone, for ``python -m bench``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert

from bench import hotswap
from bench.suite import Goal, suite_args
from ml.gift_items import generate_items
from webapp.auth.models import utcnow
from webapp.extensions import db
from webapp.gifts.models import Item, ItemLabel, name_key

ROOT = hotswap.ROOT
RESULTS = ROOT / "bench" / "results"
BATCH = 5000
#: The share of items a person has accepted (their labels are human).
ACCEPTED = 0.2
FORMATS = ("csv", "jsonl")
#: Memory checkpoints: the share of rows streamed when the peak is read.
CHECKPOINTS = (0.1, 0.5, 1.0)
#: The suite's size and what "streams" means there: the first byte soon, the memory flat.
SUITE_ITEMS = 100_000
TTFB_LIMIT_MS = 1000.0
RSS_LIMIT_MIB = 50.0


def seed(app, n: int) -> dict:
    """Insert ``n`` items with labels in bulk; return the row counts and seconds taken."""
    from webapp.demo.gifts import GiftsDemoResult, ensure_vocabulary

    began = time.perf_counter()
    rng = random.Random(1)
    labels_total = 0
    with app.app_context():
        labels = {name: label.id for name, label in ensure_vocabulary(GiftsDemoResult()).items()}
        db.session.commit()
        batch = []
        for row, item in enumerate(generate_items(n, seed=11), start=1):
            batch.append((row, item))
            if len(batch) == BATCH or row == n:
                labels_total += _insert_batch(batch, labels, rng, utcnow())
                batch = []
    return {"items": n, "labels": labels_total,
            "seconds": round(time.perf_counter() - began, 2)}


def _insert_batch(batch: list, labels: dict[str, int], rng: random.Random, now) -> int:
    """One batch of items and then their labels."""
    accepted = {row for row, _ in batch if rng.random() < ACCEPTED}
    # RETURNING in parameter order gives each row's id without a lookup (source_row has no
    # index, so reading ids back by it would scan the table once per batch).
    # Core inserts on the tables: SQLAlchemy sends them as multi-row INSERTs ("insertmanyvalues")
    # rather than one round trip per row.
    items = Item.__table__
    ids = db.session.scalars(insert(items).returning(items.c.id, sort_by_parameter_order=True), [{
        "sku": item["sku"], "name": item["name"], "name_key": name_key(item["name"]),
        "description": item["description"], "vendor": item["vendor"],
        "vendor_key": name_key(item["vendor"]), "category": item["category"],
        "unit_price": Decimal(str(item["price"])), "local": item["local"],
        "sustainable": item["sustainable"], "brandable": item["brandable"],
        "perishable": item["perishable"], "image_url": item["image_url"], "source": "bench",
        "source_row": row, "status": "accepted" if row in accepted else "pending",
        "reviewed_by": "staff" if row in accepted else None,
        "reviewed_at": now if row in accepted else None} for row, item in batch]).all()
    rows = []
    for item_id, (row, item) in zip(ids, batch, strict=True):
        for name in item["labels"]:
            rows.append(_label_row(item_id, labels[name], name, row in accepted, rng, now))
    db.session.execute(insert(ItemLabel.__table__), rows)
    db.session.commit()
    return len(rows)


def _label_row(item_id: int, label_id: int, name: str, human: bool, rng, now) -> dict:
    """A label row with believable provenance: human, a rule, or the model (occasions)."""
    # Every row has every key: a Core executemany needs the same columns in each row.
    row = {"item_id": item_id, "label_id": label_id, "created_at": now, "created_by": None,
           "rule_name": None, "model_version": None, "confidence": None}
    if human:
        return {**row, "source": "human", "created_by": "staff"}
    if name.startswith("occasion:"):
        return {**row, "source": "model", "model_version": "bench-1",
                "confidence": round(rng.uniform(0.5, 0.99), 4)}
    return {**row, "source": "rule", "rule_name": f"Bench rule for {name}"}


def stream_in_process(client, fmt: str, rows: int, trace: bool) -> dict:
    """Download one export through the test client; timings, or memory when ``trace``."""
    marks = {max(1, int(rows * share)): share for share in CHECKPOINTS}
    peaks, seen, size, first, first_rows = {}, 0, 0, None, None
    if trace:
        tracemalloc.start()
    began = time.perf_counter()
    response = client.get(f"/gifts/export/download?format={fmt}", buffered=False)
    if response.status_code != 200 or not response.is_streamed:
        raise SystemExit(f"export answered {response.status_code}, streamed "
                         f"{response.is_streamed}")
    for chunk in response.response:
        now = time.perf_counter()
        first = first if first is not None else now - began
        data = chunk if isinstance(chunk, bytes) else chunk.encode()
        size += len(data)
        lines = data.count(b"\n")
        if lines and first_rows is None and (fmt == "jsonl" or seen or lines > 1):
            first_rows = now - began
        seen += lines
        if trace:
            for mark, share in marks.items():
                if share not in peaks and seen >= mark:
                    peaks[share] = tracemalloc.get_traced_memory()[1]
    total = time.perf_counter() - began
    response.close()
    result = {"rows": seen - (1 if fmt == "csv" else 0), "bytes": size}
    if trace:
        tracemalloc.stop()
        result["peak_mib_at"] = {f"{int(share * 100)}%": round(peak / 2**20, 2)
                                 for share, peak in sorted(peaks.items())}
    else:
        result.update(seconds=round(total, 3), ttfb_ms=round(first * 1000, 2),
                      first_rows_ms=round((first_rows or total) * 1000, 2))
    return result


def rss_kib(pid: str) -> int | None:
    """The process's resident set size in KiB; None once it has gone (killed by a time-out)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key == "VmRSS":
            return int(rest.split()[0])
    return None  # a zombie has no memory left to report


def stream_over_http(port: int, cookies: str, fmt: str, pid: str) -> dict:
    """Download one export from gunicorn, sampling the worker's RSS while it streams.

    A download cut short (gunicorn kills a sync worker busy for longer than its ``--timeout``)
    is reported as truncated, with the rows that arrived.
    """
    samples, done = [], threading.Event()

    def sample() -> None:
        while not done.is_set():
            if (rss := rss_kib(pid)) is not None:
                samples.append(rss)
            time.sleep(0.02)

    before = rss_kib(pid) or 0
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    conn = http.client.HTTPConnection(hotswap.HOST, port, timeout=300)
    began = time.perf_counter()
    conn.request("GET", f"/gifts/export/download?format={fmt}", headers={"Cookie": cookies})
    response = conn.getresponse()
    first, size, lines, truncated = None, 0, 0, False
    try:
        while chunk := response.read1(65536):
            first = first if first is not None else time.perf_counter() - began
            size += len(chunk)
            lines += chunk.count(b"\n")
    except (http.client.IncompleteRead, ConnectionError):
        truncated = True
    total = time.perf_counter() - began
    done.set()
    watcher.join()
    conn.close()
    if response.status != 200:
        raise SystemExit(f"gunicorn export answered {response.status}")
    return {"rows": lines - (1 if fmt == "csv" else 0), "bytes": size, "truncated": truncated,
            "seconds": round(total, 3), "ttfb_ms": round((first or total) * 1000, 2),
            "worker_rss_mib_before": round(before / 1024, 1),
            "worker_rss_mib_peak": round(max(samples + [before]) / 1024, 1)}


def worker_pid(client, log, tag: int) -> str:
    """The pid of the worker that answers a tagged request (there is one worker)."""
    client.request("GET", "/gifts/export", headers={"X-Bench-Id": str(tag)})
    deadline = time.monotonic() + 5
    while (pid := log.poll().get(tag)) is None:
        if time.monotonic() > deadline:
            raise SystemExit("could not find the gunicorn worker's pid in the access log")
        time.sleep(0.1)
    return pid


def gunicorn_pass(env: dict, tmp: Path, timeout: int) -> dict:
    """Serve the instance with one sync worker and download each format from it.

    The worker is looked up before each download: a time-out may have replaced it.
    """
    results = {}
    env = {**env, "GUNICORN_CMD_ARGS": f"--timeout {timeout}"}
    with hotswap.gunicorn(env, 1, tmp) as (port, log):
        client = hotswap.Client(port)
        client.login()
        cookies = "; ".join(f"{name}={m.value}" for name, m in client.cookies.items())
        for tag, fmt in enumerate(FORMATS, start=1):
            results[fmt] = stream_over_http(port, cookies, fmt, worker_pid(client, log, tag))
    return results


@contextmanager
def instance(args):
    """A migrated throwaway instance; yield (in-process app, env, temp dir)."""
    from webapp import create_app
    from webapp.config import ENV_KEYS

    with tempfile.TemporaryDirectory(prefix="curate-bench-") as tmp_name, \
            hotswap.database(args.database_url, Path(tmp_name)) as url:
        tmp = Path(tmp_name)
        env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
        env.update(DATABASE_URL=url, MODEL_DIR=str(tmp / "models"),
                   SECRET_KEY=secrets.token_hex(32))
        done = subprocess.run([hotswap.BIN / "flask", "--app", "wsgi", "db", "upgrade"],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"flask db upgrade failed:\n{done.stderr}")
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "MODEL_DIR": env["MODEL_DIR"],
                          "SECRET_KEY": env["SECRET_KEY"], "WTF_CSRF_ENABLED": False})
        try:
            yield app, env, tmp
        finally:
            with app.app_context():
                db.engine.dispose()  # before the PostgreSQL database is dropped


def seed_with_user(app, items: int) -> dict:
    """Seed ``items`` items and add the staff user who exports; the seeding's figures."""
    from webapp.auth.service import create_user

    seeded = seed(app, items)
    with app.app_context():
        create_user(hotswap.USERNAME, "staff", hotswap.PASSWORD)
    return seeded


def run(args) -> dict:
    """Seed, then measure in-process (and over gunicorn when asked)."""
    with instance(args) as (app, env, tmp):
        seeded = seed_with_user(app, args.items)
        print(f"seeded {seeded['items']:,} items and {seeded['labels']:,} labels "
              f"in {seeded['seconds']} s")
        client = app.test_client()
        response = client.post("/login", data={"username": hotswap.USERNAME,
                                               "password": hotswap.PASSWORD})
        if response.status_code != 303:
            raise SystemExit(f"login answered {response.status_code}")
        in_process = {}
        for fmt in FORMATS:
            timing = stream_in_process(client, fmt, args.items, trace=False)
            memory = stream_in_process(client, fmt, args.items, trace=True)
            in_process[fmt] = {**timing, **{"peak_mib_at": memory["peak_mib_at"]}}
            print(f"in-process {fmt}: {timing['rows']:,} rows, {timing['bytes'] / 2**20:.1f} MiB"
                  f" in {timing['seconds']} s")
        over_http = gunicorn_pass(env, tmp, args.timeout) if args.gunicorn else None
    database = "postgresql" if args.database_url else "sqlite"
    return {"settings": {"items": args.items, "database": database, "gunicorn": args.gunicorn,
                         "gunicorn_timeout": args.timeout, "python": sys.version.split()[0]},
            "seed": seeded, "in_process": in_process, "gunicorn": over_http}


def report(results: dict) -> None:
    """Print the figures as a table."""
    settings = results["settings"]
    print(f"\nCurate gifts export bench: {settings['items']:,} items, {settings['database']}\n")
    print(f"{'':<22}{'rows':>10}{'MiB':>8}{'seconds':>9}{'ttfb ms':>9}{'1st rows ms':>12}"
          f"  tracemalloc peak MiB at 10% / 50% / 100% of rows")
    for fmt, figures in results["in_process"].items():
        peaks = " / ".join(f"{value:.2f}" for value in figures["peak_mib_at"].values())
        print(f"{'in-process ' + fmt:<22}{figures['rows']:>10,}{figures['bytes'] / 2**20:>8.1f}"
              f"{figures['seconds']:>9.2f}{figures['ttfb_ms']:>9.1f}"
              f"{figures['first_rows_ms']:>12.1f}  {peaks}")
    for fmt, figures in (results["gunicorn"] or {}).items():
        print(f"{'gunicorn ' + fmt:<22}{figures['rows']:>10,}{figures['bytes'] / 2**20:>8.1f}"
              f"{figures['seconds']:>9.2f}{figures['ttfb_ms']:>9.1f}{'':>12}  worker RSS "
              f"{figures['worker_rss_mib_before']} MiB before, "
              f"{figures['worker_rss_mib_peak']} MiB peak"
              f"{'  TRUNCATED: the worker timed out' if figures['truncated'] else ''}")


def suite(database_url: str | None = None) -> list[Goal]:
    """The suite's lines: each format of a 100k-item export streams from a gunicorn worker.

    Over HTTP only (the in-process pass and its tracemalloc rerun are skipped), with the
    ``--timeout 120`` of ``scripts/serve``; about 60 s on a 2-core machine, a third of it
    seeding. Streams = the first byte within TTFB_LIMIT_MS, the worker's RSS growth within
    RSS_LIMIT_MIB, and every row delivered.
    """
    args = suite_args(database_url, items=SUITE_ITEMS)
    with instance(args) as (app, env, tmp):
        seeded = seed_with_user(app, args.items)
        over_http = gunicorn_pass(env, tmp, timeout=120)
    goals = []
    for fmt, r in over_http.items():
        growth = r["worker_rss_mib_peak"] - r["worker_rss_mib_before"]
        complete = r["rows"] == args.items and not r["truncated"]
        goals.append(Goal(
            "export", f"{args.items:,}-item {fmt.upper()} export streams (gunicorn worker)",
            f"TTFB {r['ttfb_ms']:.0f} ms, worker RSS +{growth:.1f} MiB, {r['seconds']:.1f} s "
            f"for {r['rows']:,} rows ({r['bytes'] / 2**20:.0f} MiB)"
            f"{'' if complete else ', INCOMPLETE'}",
            f"TTFB <= {TTFB_LIMIT_MS:g} ms, RSS growth <= {RSS_LIMIT_MIB:g} MiB, every row",
            r["ttfb_ms"] <= TTFB_LIMIT_MS and growth <= RSS_LIMIT_MIB and complete,
            {**r, "rss_growth_mib": round(growth, 1), "seed": seeded}))
    return goals


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the bench, print and save the results."""
    parser = argparse.ArgumentParser(prog="python -m bench.gifts_export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="items to export")
    parser.add_argument("--gunicorn", action="store_true",
                        help="also download from a gunicorn sync worker and watch its RSS")
    parser.add_argument("--timeout", type=int, default=30,
                        help="gunicorn --timeout in seconds (30 is gunicorn's default)")
    parser.add_argument("--database-url", help="local PostgreSQL server to make a database on")
    args = parser.parse_args(argv)
    if args.items < 10:
        parser.error("--items must be at least 10")
    results = run(args)
    report(results)
    target = RESULTS / f"gifts_export-{results['settings']['database']}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults written to {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
