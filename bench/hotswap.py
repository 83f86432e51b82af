"""Hot-swap benchmark: how long until every gunicorn worker serves a newly activated model.

Builds a throwaway instance (temp SQLite file, or a fresh PostgreSQL database), serves it with
``gunicorn -k sync`` on 127.0.0.1, and drives ``GET /pizzeria/predict`` from logged-in clients,
first without swaps (baseline), then while this process retrains and activates dough models.

    .venv/bin/python -m bench.hotswap [--duration 20] [--cycles 20] [--workers 2] [--clients 8]
                                      [--baseline SECONDS]
                                      [--database-url postgresql+psycopg://postgres@127.0.0.1/db]

``suite()`` runs it for ``python -m bench`` with the defaults and a 5 s baseline.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from bench.suite import Goal, suite_args

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv running this also holds flask and gunicorn
HOST = "127.0.0.1"
USERNAME, PASSWORD = "bench", secrets.token_urlsafe(12)
LAG_LIMIT = 1.5  # seconds; workers ask the registry every MODEL_CHECK_SECONDS (default 1.0)
SETTLE_TIMEOUT = 5.0
METHOD = (
    "lag = end of the last answer carrying an old version among requests SENT after the "
    "activation commit, minus the commit time (0 if there was none). Workers are told apart by "
    "gunicorn's access log (pid), joined on an X-Bench-Id request header; sync workers close "
    "every connection, so any worker may take any request. A swap is measured once every "
    "worker has answered such a request with the new version; after 5 s it is a miss. "
    "bound = first new-version answer from the slowest worker, an upper limit on the lag."
)


@dataclass
class Sample:
    """One request: when it was sent and answered, its status and the model version served."""

    id: int
    sent: float
    recv: float
    status: int
    version: str | None

    @property
    def ok(self) -> bool:
        """A 200 with a model version; anything else counts as a failed request."""
        return self.status == 200 and bool(self.version)


@dataclass
class Swap:
    """One retrain + activation, and how long the workers took to follow it."""

    version: str
    params: str
    by_gate: bool
    committed: float
    lag: float | None = None
    bound: float | None = None
    stale_answers: int = 0
    per_worker: dict = field(default_factory=dict)


class Client:
    """One logged-in browser: its session cookie and its own HTTP connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=10)
        self.cookies = SimpleCookie()

    def request(self, method: str, path: str, body: str | None = None, headers=None):
        """Send one request and return (response, body).

        Sync workers close the connection after each answer; http.client reconnects by itself.
        """
        cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in self.cookies.items())
        try:
            self.conn.request(method, path, body, {**(headers or {}), "Cookie": cookie})
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # a half-used connection cannot be reused
            raise
        for header in response.headers.get_all("Set-Cookie") or []:
            self.cookies.load(header)
        return response, data

    def login(self) -> None:
        """Log in through the form, CSRF token included, as a browser would."""
        _, page = self.request("GET", "/login")
        token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page)
        if token is None:
            raise SystemExit("no csrf_token in the login form")
        form = {"username": USERNAME, "password": PASSWORD, "csrf_token": token[1].decode()}
        response, _ = self.request("POST", "/login", urlencode(form),
                                   {"Content-Type": "application/x-www-form-urlencoded"})
        if response.status != 303:
            raise SystemExit(f"login answered {response.status}, expected 303")


class Load:
    """Every client asks for predictions in its own thread until the ``with`` block ends."""

    def __init__(self, clients: list[Client], workers: set[str] = frozenset(),
                 path=lambda rng: f"/pizzeria/predict?reservations={rng.randrange(60)}") -> None:
        self.samples: list[Sample] = []  # list.append is atomic, so the threads share one list
        self._path = path  # rng -> the URL each request asks for
        self.began = self.seconds = 0.0
        self.workers, self.cpu = workers, {}
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._drive, args=(client, random.Random(n)),
                                          daemon=True) for n, client in enumerate(clients)]

    def __enter__(self) -> Load:
        self.cpu = cpu_seconds(self.workers)
        self.began = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()  # bounded by the 10 s socket timeout
        self.seconds = time.monotonic() - self.began
        used = {key: value - self.cpu[key] for key, value in cpu_seconds(self.workers).items()}
        used["other"] = used.pop("machine") - used["bench"] - used["workers"]
        # As a share of every core, so a saturated machine shows as ~100% in total.
        self.cpu = {key: 100 * value / (self.seconds * os.cpu_count()) for key, value in
                    used.items()}

    def _drive(self, client: Client, rng: random.Random) -> None:
        headers = {"HX-Request": "true"}  # the fragment htmx asks for while the host types
        while not self._stop.is_set():
            headers["X-Bench-Id"] = str(request_id := next(self._ids))
            sent = time.monotonic()
            try:
                response, _ = client.request("GET", self._path(rng), None, headers)
                status, version = response.status, response.getheader("X-Model-Version")
            except (OSError, http.client.HTTPException):
                status, version = 0, None
            self.samples.append(Sample(request_id, sent, time.monotonic(), status, version))


def cpu_seconds(pids) -> dict[str, float]:
    """CPU seconds used so far by the whole machine, by this process and by ``pids`` (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as handle:
        user, nice, system, idle, iowait, irq, softirq, steal = map(
            int, handle.readline().split()[1:9])
    workers = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:  # utime and stime follow comm's ")"
                workers += sum(map(int, handle.read().rsplit(")", 1)[1].split()[11:13]))
        except FileNotFoundError:
            pass  # a worker that died: the missed swaps will say so, the report must still print
    return {"machine": (user + nice + system + irq + softirq + steal) / tick,
            "bench": time.process_time(), "workers": workers / tick}


class AccessLog:
    """Which worker answered which request, read from gunicorn's access log as it grows."""

    FORMAT = "%({x-bench-id}i)s %(p)s"  # gunicorn writes %(p)s as <pid>

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid_of: dict[int, str] = {}
        self._offset = 0

    def poll(self) -> dict[int, str]:
        """Read the lines written since the last call; return request id -> worker pid."""
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        complete = chunk.rfind(b"\n") + 1  # a half-written last line is read next time
        self._offset += complete
        for line in chunk[:complete].decode().splitlines():
            request_id, _, pid = line.partition(" ")
            if request_id.isdigit():  # /login and /healthz carry no id
                self.pid_of[int(request_id)] = pid.strip("<>")
        return self.pid_of


@contextmanager
def database(base_url: str | None, tmp: Path):
    """Yield the URL of an empty database: a SQLite file in ``tmp``, or a new PostgreSQL
    database with a random name on ``base_url``'s (local) server, dropped afterwards."""
    if not base_url:
        yield f"sqlite:///{tmp / 'bench.sqlite3'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    from webapp.config import normalise_database_url

    url = make_url(normalise_database_url(base_url))
    if url.host not in (None, HOST, "localhost"):
        raise SystemExit(f"refusing to create a database on {url.host}: the bench stays local")
    name = f"curate_bench_{uuid.uuid4().hex[:12]}"
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(env: dict):
    """Migrate, load the demo nights, add the bench user and activate a first dough model.

    Returns the in-process app that retrains during the swap phase.
    """
    from webapp import create_app
    from webapp.auth.service import create_user
    from webapp.ml_bridge import retrain_task

    for command in (["db", "upgrade"], ["demo", "load"]):
        done = subprocess.run([BIN / "flask", "--app", "wsgi", *command], cwd=ROOT, env=env,
                              capture_output=True, text=True)  # demo passwords stay unprinted
        if done.returncode:
            raise SystemExit(f"flask {' '.join(command)} failed:\n{done.stderr}")
    app = create_app({"SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"],
                      "MODEL_DIR": env["MODEL_DIR"], "SECRET_KEY": env["SECRET_KEY"]})
    with app.app_context():
        create_user(USERNAME, "host", PASSWORD)
        retrain_task(lambda percent, message: None, kind="dough", trained_by="bench")
    return app


def healthy(port: int) -> bool:
    """True when /healthz answers 200."""
    try:
        return Client(port).request("GET", "/healthz")[0].status == 200
    except OSError:
        return False  # not listening yet


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Stop a child we started: TERM, then KILL after 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def gunicorn(env: dict, workers: int, tmp: Path):
    """Serve the instance on a free loopback port; yield (port, access log); always stop it."""
    port = free_port()
    log, output = AccessLog(tmp / "access.log"), tmp / "gunicorn.log"
    import gunicorn as package

    # gunicorn 27 opens a control socket in ~/.gunicorn by default, shared with scripts/serve.
    private = ["--no-control-socket"] if package.version_info >= (27,) else []
    with open(output, "wb") as sink:
        server = subprocess.Popen(
            [BIN / "gunicorn", "-w", str(workers), "-k", "sync", "-b", f"{HOST}:{port}",
             "--access-logfile", str(log.path), "--access-logformat", AccessLog.FORMAT,
             *private, "wsgi:app"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True)  # Ctrl+C reaches only us, and we stop gunicorn cleanly
    try:
        deadline = time.monotonic() + 30
        while not healthy(port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"gunicorn did not start:\n{output.read_text()[-3000:]}")
            time.sleep(0.1)
        yield port, log
    finally:
        stop(server)
        # Keep the server's log (errors, swaps) after the temp dir is gone.
        (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(output, ROOT / "bench" / "results" / "hotswap-gunicorn.log")


def swap_once(app, cycle: int, load: Load, log: AccessLog, workers: set[str]) -> Swap:
    """Retrain and activate a new dough version, then wait until every worker serves it."""
    from webapp import registry
    from webapp.ml_bridge import retrain_task

    # Alternating linear and polynomial makes the gate keep some candidates: both paths run.
    model_type, degree = ("polynomial", "linear")[cycle % 2], 2 + (cycle // 2) % 2
    with app.app_context():
        result = retrain_task(lambda percent, message: None, kind="dough", trained_by="bench",
                              model_type=model_type, degree=degree)
        if not result["activated"]:
            registry.activate("dough", result["version"], "bench", reason="bench")
        start = len(load.samples)  # taken before the timestamp, so no later request is missed
        committed = time.monotonic()
    swap = Swap(result["version"], f"{model_type}/{degree}", result["activated"], committed)
    while time.monotonic() < committed + SETTLE_TIMEOUT:
        pid_of = log.poll()
        fresh = {pid_of.get(s.id) for s in load.samples[start:]
                 if s.sent >= committed and s.version == swap.version}
        if workers <= fresh:
            break
        time.sleep(0.02)
    return swap


def measure_lags(swaps: list[Swap], samples: list[Sample], pid_of: dict[int, str],
                 workers: set[str]) -> None:
    """Fill in each swap's lag, bound and per-worker times from the requests sent after it."""
    ends = [swap.committed for swap in swaps[1:]] + [math.inf]
    for number, (swap, end) in enumerate(zip(swaps, ends, strict=True)):
        # A request sent just before the next commit may be answered by the next version:
        # that is not stale, so stale means "older than this swap", not "other than it".
        current = {later.version for later in swaps[number:]}
        end = min(end, swap.committed + SETTLE_TIMEOUT)
        window = [s for s in samples if swap.committed <= s.sent < end and s.ok]
        swap.stale_answers = sum(s.version not in current for s in window)
        for s in window:  # in the order the answers arrived
            times = swap.per_worker.setdefault(pid_of.get(s.id), {"last_stale": None,
                                                                  "first_fresh": None})
            since = round(s.recv - swap.committed, 4)
            if s.version not in current:
                times["last_stale"] = max(times["last_stale"] or 0.0, since)
            elif times["first_fresh"] is None:
                times["first_fresh"] = since
        seen = [swap.per_worker.get(pid, {}).get("first_fresh") for pid in workers]
        if None not in seen:  # otherwise a worker never followed: a miss, lag stays None
            swap.lag = max(swap.per_worker[pid]["last_stale"] or 0.0 for pid in workers)
            swap.bound = max(seen)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


def phase_stats(load: Load) -> dict:
    """Requests, failures, throughput and latency of one phase."""
    latencies = [s.recv - s.sent for s in load.samples if s.ok]
    return {"seconds": load.seconds, "requests": len(load.samples),
            "failed": len(load.samples) - len(latencies),
            "rps": len(load.samples) / load.seconds,
            "p50_ms": 1000 * percentile(latencies, 0.50),
            "p99_ms": 1000 * percentile(latencies, 0.99), "cpu_percent": load.cpu}


@contextmanager
def instance(args):
    """A throwaway Curate served by gunicorn; yield (in-process app, port, access log)."""
    from webapp.config import ENV_KEYS
    from webapp.extensions import db

    with tempfile.TemporaryDirectory(prefix="curate-bench-") as tmp_name, \
            database(args.database_url, Path(tmp_name)) as url:
        tmp = Path(tmp_name)
        # Only our settings: an inherited CURATE_ENV=production would make cookies Secure.
        env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
        env.update(DATABASE_URL=url, MODEL_DIR=str(tmp / "models"),
                   SECRET_KEY=secrets.token_hex(32))
        app = prepare(env)
        try:
            with gunicorn(env, args.workers, tmp) as (port, log):
                yield app, port, log
        finally:
            with app.app_context():
                db.engine.dispose()  # before the PostgreSQL database is dropped


def measure(app, port: int, log: AccessLog, args) -> dict:
    """Log the clients in, warm up, run the baseline and the swap phase; return the results."""
    clients = [Client(port) for _ in range(args.clients)]
    for client in clients:
        client.login()
    with Load(clients) as warmup:  # every worker loads the first model
        time.sleep(1.0)
    time.sleep(0.2)  # let the workers write their last access-log lines
    pid_of = log.poll()
    workers = {pid_of[s.id] for s in warmup.samples if s.id in pid_of}
    if len(workers) != args.workers:
        raise SystemExit(f"saw {len(workers)} workers in the access log, not {args.workers}")
    with Load(clients, workers) as baseline:
        # getattr: callers that build their own args (the suite, other benches) may omit it.
        time.sleep(getattr(args, "baseline", None) or max(10.0, args.duration / 2))
    # The workers use the same default: MODEL_CHECK_SECONDS is no environment variable.
    check = app.config["MODEL_CHECK_SECONDS"]
    swaps, slot = [], args.duration / args.cycles
    with Load(clients, workers) as swapping:
        for cycle in range(args.cycles):
            # A random delay of up to one check interval lands each activation at any point
            # of the workers' polling cycle, not always at the same one.
            wait = swapping.began + cycle * slot - time.monotonic()
            time.sleep(max(0.0, wait) + random.uniform(0, check))
            swaps.append(swap_once(app, cycle, swapping, log, workers))
        time.sleep(max(0.0, swapping.began + args.duration - time.monotonic()))
    time.sleep(0.2)
    measure_lags(swaps, swapping.samples, log.poll(), workers)
    for swap in swaps:
        swap.committed = round(swap.committed - swapping.began, 3)  # seconds into the phase
    return {"settings": {**vars(args), "database": "postgresql" if args.database_url
                         else "sqlite", "host": HOST, "model_check_seconds": check,
                         "method": METHOD},
            "baseline": phase_stats(baseline), "with_swaps": phase_stats(swapping),
            "workers": sorted(workers), "swaps": [asdict(swap) for swap in swaps]}


def summary(results: dict) -> dict:
    """Measured lags and bounds, missed swaps, failed requests; whether the lags meet the goal."""
    base, swapped = results["baseline"], results["with_swaps"]
    lags = [swap["lag"] for swap in results["swaps"] if swap["lag"] is not None]
    bounds = [swap["bound"] for swap in results["swaps"] if swap["bound"] is not None]
    misses = len(results["swaps"]) - len(lags)
    return {"lags": lags, "bounds": bounds, "misses": misses,
            "lag_ok": misses == 0 and bool(lags) and max(lags) <= LAG_LIMIT,
            "failed": base["failed"] + swapped["failed"],
            "requests": base["requests"] + swapped["requests"]}


def report(results: dict) -> bool:
    """Print the tables; return True when nothing failed and every lag is within the limit."""
    base, swapped, settings = results["baseline"], results["with_swaps"], results["settings"]
    facts = summary(results)
    lags, bounds, misses = facts["lags"], facts["bounds"], facts["misses"]
    by_gate = sum(swap["by_gate"] for swap in results["swaps"])
    print(f"\nCurate hot-swap bench: {settings['database']}, gunicorn -k sync "
          f"-w {settings['workers']}, {settings['clients']} client threads, "
          f"MODEL_CHECK_SECONDS={settings['model_check_seconds']} (default)\n")
    print(f"{'':<20}{'baseline':>12}{'with swaps':>14}{'swaps/baseline':>16}")
    for label, key, fmt in (("seconds", "seconds", ".1f"), ("requests", "requests", ",d"),
                            ("failed", "failed", ",d"), ("requests/s", "rps", ",.0f"),
                            ("p50 latency (ms)", "p50_ms", ".2f"),
                            ("p99 latency (ms)", "p99_ms", ".2f")):
        ratio = f"{swapped[key] / base[key]:>16.2f}" if key in ("rps", "p50_ms", "p99_ms") else ""
        print(f"{label:<20}{base[key]:>12{fmt}}{swapped[key]:>14{fmt}}{ratio}")
    for name, phase in (("baseline", base), ("with swaps", swapped)):
        cpu = phase["cpu_percent"]
        print(f"CPU {name:<11} gunicorn workers {cpu['workers']:3.0f}%, bench process "
              f"{cpu['bench']:3.0f}%, rest of the machine {cpu['other']:3.0f}%  (% of all cores)")
    print(f"\nswaps: {len(results['swaps'])} ({by_gate} promoted by the gate, "
          f"{len(results['swaps']) - by_gate} activated explicitly), measured {len(lags)}, "
          f"missed {misses}; workers: {len(results['workers'])}")
    for label, values in (("lag (s)", lags), ("bound (s)", bounds)):
        if values:
            print(f"{label:<10} min {min(values):.3f}  median {statistics.median(values):.3f}  "
                  f"p95 {percentile(values, 0.95):.3f}  max {max(values):.3f}  "
                  f"<= {LAG_LIMIT} s: {sum(v <= LAG_LIMIT for v in values)}/{len(values)}")
    print(f"\nmethod: {METHOD}")
    passed = facts["failed"] == 0 and facts["lag_ok"]
    print(f"\nresult: {'PASS' if passed else 'FAIL'} (needs 0 failed requests, no missed swap "
          f"and max lag <= {LAG_LIMIT} s)")
    return passed


def suite(database_url: str | None = None) -> list[Goal]:
    """The suite's two lines: failed requests, and how soon every worker follows a swap.

    20 cycles in the 20 s swap phase as in the default run; the baseline is cut to 5 s
    (about 65 s in all on a 2-core machine, most of it building and serving the instance).
    """
    args = suite_args(database_url, duration=20.0, cycles=20, workers=2, clients=8,
                    baseline=5.0)
    with instance(args) as (app, port, log):
        results = measure(app, port, log, args)
    facts = summary(results)
    base, swapped, lags = results["baseline"], results["with_swaps"], facts["lags"]
    cycles = len(results["swaps"])
    failures = Goal(
        "hotswap", f"failed requests across {cycles} retrain+activate cycles under load",
        f"{facts['failed']} of {facts['requests']:,} ({base['failed']} in the {base['seconds']:.0f}"
        f" s baseline, {swapped['failed']} with swaps; {args.clients} clients, "
        f"{args.workers} sync workers)", "0 failed", facts["failed"] == 0,
        {"baseline": base, "with_swaps": swapped})
    spread = (f"max {max(lags):.2f} s (median {statistics.median(lags):.2f}, p95 "
              f"{percentile(lags, 0.95):.2f}), " if lags else "no swap measured, ")
    lag = Goal(
        "hotswap", "every worker serves the new version after activation",
        f"{spread}{len(lags)}/{cycles} swaps measured, {facts['misses']} missed",
        f"max lag <= {LAG_LIMIT} s, no missed swap", facts["lag_ok"],
        {"lags": lags, "bounds": facts["bounds"], "misses": facts["misses"],
         "method": METHOD, "model_check_seconds": results["settings"]["model_check_seconds"]})
    return [failures, lag]


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the bench, print and save the results; 0 when it passed."""
    parser = argparse.ArgumentParser(prog="python -m bench.hotswap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="swap phase seconds (>=20)")
    parser.add_argument("--cycles", type=int, default=20, help="retrain+activate cycles (>=20)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--baseline", type=float, default=None,
                        help="seconds of load without swaps (default: max(10, duration / 2))")
    parser.add_argument("--database-url", help="local PostgreSQL server to make a database on")
    args = parser.parse_args(argv)
    args.duration, args.cycles = max(args.duration, 20.0), max(args.cycles, 20)
    # SIGTERM unwinds like Ctrl+C, through the finally blocks that stop gunicorn.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        with instance(args) as (app, port, log):
            results = measure(app, port, log, args)
    except KeyboardInterrupt:
        print("interrupted: gunicorn stopped, the throwaway instance removed", file=sys.stderr)
        return 130
    passed = report(results)
    out = ROOT / "bench" / "results" / f"hotswap-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**results, "passed": passed}, indent=2, default=str))
    print(f"results: {out.relative_to(ROOT)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
