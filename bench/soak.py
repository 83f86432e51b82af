"""Soak: many logged-in clients on the live previews and the labelling queue while models are
retrained and activated; it passes with 0 failed requests and no lost write.

    .venv/bin/python -m bench soak [--clients 64] [--seconds 60] [--workers 2]
                                   [--worker-class sync|gthread] [--items 4000]
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/soak \\
        REDIS_URL=redis://127.0.0.1:6379/6 .venv/bin/python -m bench soak

Everything stays on loopback. The instance is built from scratch: an empty database (the one
``DATABASE_URL`` names, which must be empty and local; else a temp SQLite file), migrations,
``flask demo load``, ``--items`` more pending gift items, one staff user per client and an
admin. It is served by gunicorn (``--workers`` workers, 127.0.0.1 only) with
``JOBS_BACKEND=rq`` and one ``flask jobs worker`` when ``REDIS_URL`` is set (on a queue name of
its own), or the thread backend otherwise.

- **Clients.** Each client is a thread with its own user, session, CSRF token and connection.
  It picks, at random by weight, a live preview (dough prediction, tavern top 5, label
  suggestion, gift proposals), a look at a queue item, a queue decision (accept with labels,
  reject, skip), an edit of an item it accepted before, or a colliding decision. Most pending
  items are dealt out so that no two clients decide on the same one: there a 409 has no excuse,
  and every non-2xx/3xx answer, connection error or timeout counts as a failed request.
- **Collisions.** ``--collide`` (default 10) is the weight of decisions on a small shared pool
  of items instead: every client asks for the pool's current item, as staff who open the
  queue at the same moment see the same "least certain" item, so several decide on it at once.
  The only right outcome is one winner (2xx) and a 409 "already reviewed" for everyone else;
  those 409s are counted apart, not as failures. Two winners on one item is a lost write.
- **Admin.** Meanwhile an admin presses Retrain (label model, then dough, in turn) on the
  Models page, polls the card as the page does, and when the job has finished activates the
  new version unless the promotion gate already did. Then it waits until every gunicorn worker
  (told apart by pid in the access log) has answered a preview with the new
  ``X-Model-Version``. A label model's activation also starts the batch that rewrites the
  pending items' suggestions, while the clients decide on those items.
- **Checks** (exit code 0 only if all hold): no failed request; every accepted write (2xx) is
  in the database afterwards with the right value (the item's status, reviewer and exact human
  labels, and one ``LabelDecision`` per accepted write, none for a refused one); every shared
  item has exactly one winner; at least one retrain was activated during the window, and every
  worker served each new version; the gunicorn workers are the ones that started (none died or
  was killed for a timeout); every job finished. A retrain still running when the window ends
  keeps the load on until it is activated and served (the summary gives the real window).

The summary prints requests, failures, p50/p99 per endpoint, writes accepted vs found, and
the retrain/activation timings; the run is written to ``bench/results/soak-<stamp>.json``.
Client latencies include queueing: 64 clients on a 2-core machine wait their turn.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import itertools
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from bench.gifts_proposals import brief_path
from bench.hotswap import BIN, HOST, ROOT, Client, free_port, healthy, percentile, stop
from bench.live import dough_path, games_path, labels_path

RESULTS = ROOT / "bench" / "results"
#: What a client does, with its weight (previews ~55%, the queue ~45%, most of it writes);
#: ``--collide`` adds the weight of decisions on the shared pool.
ACTIONS = {"dough": 15, "games": 13, "labels": 15, "gifts": 12, "queue": 10, "decide": 30,
           "edit": 5}
#: The preview that carries each retrained kind's ``X-Model-Version``.
PREVIEW_OF = {"dough": "dough", "labels": "labels"}
#: Queue decisions by weight: accept (with labels), reject, skip.
DECISIONS = {"accept": 6, "reject": 2, "skip": 2}
#: Decisions on the shared pool: no skip, so that every item has exactly one winner.
COLLISIONS = {"accept": 3, "reject": 1}
#: The refusal a collision must get: "someone reviewed it meanwhile".
CONFLICT = 409
#: The access log: request id (X-Bench-Id), worker pid, status, method, path, microseconds.
ACCESS_FORMAT = "%({x-bench-id}i)s %(p)s %(s)s %(m)s %(U)s %(D)s"
#: How long every worker may take to serve a newly active version (they check every 1 s).
SETTLE_SECONDS = 15.0
CSRF = re.compile(rb'"X-CSRFToken"\s*:\s*"([^"]+)"')


@dataclass
class Sample:
    """One request: endpoint, client, when it was sent and answered, and the outcome."""

    id: int
    endpoint: str
    client: str
    sent: float
    recv: float
    status: int  # 0: no answer (connection error or timeout)
    version: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx or 3xx answer, or the 409 a collision must get; anything else failed."""
        return 200 <= self.status < 400 or (self.endpoint == "collide"
                                            and self.status == CONFLICT)


@dataclass
class Write:
    """One queue decision sent, and what the server said to it."""

    sample: int
    user: str
    item_id: int
    action: str
    label_ids: list[int]
    status: int
    shared: bool = False  # on the shared pool, where others decide on the same item

    @property
    def accepted(self) -> bool:
        """The server said the write was made (2xx)."""
        return 200 <= self.status < 300


@dataclass
class Cycle:
    """One Retrain press, its job, the activation and how soon every worker served it."""

    kind: str
    pressed: float
    press_status: int = 0
    job_id: str | None = None
    job_status: str | None = None
    job_error: str | None = None
    version: str | None = None
    by_gate: bool = False
    job_done: float | None = None
    activate_status: int | None = None
    activated: float | None = None
    active_in_db: bool = False
    served_by: dict = field(default_factory=dict)  # worker pid -> first fresh answer, s
    all_served: float | None = None

    @property
    def ok(self) -> bool:
        """Activated and served by every worker."""
        return self.active_in_db and self.all_served is not None


class Log:
    """gunicorn's access log, read as it grows: request id -> (worker pid, status)."""

    def __init__(self, path: Path) -> None:
        self.path, self._offset = path, 0
        self.by_id: dict[int, tuple[str, int]] = {}
        self.untagged_5xx: list[str] = []  # logins, health checks: requests with no id
        self._lock = threading.Lock()

    def poll(self) -> dict[int, tuple[str, int]]:
        """Read the complete lines written since the last call."""
        with self._lock:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
            complete = chunk.rfind(b"\n") + 1
            self._offset += complete
            for line in chunk[:complete].decode(errors="replace").splitlines():
                parts = line.split()
                if len(parts) < 3 or not parts[2].isdigit():
                    continue
                if parts[0].isdigit():
                    self.by_id[int(parts[0])] = (parts[1].strip("<>"), int(parts[2]))
                elif int(parts[2]) >= 500:
                    self.untagged_5xx.append(line)
            return self.by_id


class SoakClient(Client):
    """A logged-in browser with its own user, CSRF token and connection."""

    def __init__(self, port: int, username: str, password: str, timeout: float) -> None:
        super().__init__(port)
        self.conn.timeout = timeout
        self.username, self.password, self.token = username, password, ""

    def login(self) -> None:
        """Log in through the form (CSRF token included), then read the htmx CSRF header."""
        _, page = self.request("GET", "/login")
        token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page)
        if token is None:
            raise SystemExit("no csrf_token in the login form")
        form = {"username": self.username, "password": self.password,
                "csrf_token": token[1].decode()}
        response, _ = self.request("POST", "/login", urlencode(form),
                                   {"Content-Type": "application/x-www-form-urlencoded"})
        if response.status != 303:
            raise SystemExit(f"login of {self.username} answered {response.status}, not 303")
        _, page = self.request("GET", "/")
        found = CSRF.search(page)
        if found is None:
            raise SystemExit("no X-CSRFToken in hx-headers on the home page")
        self.token = found[1].decode()

    def form_headers(self) -> dict:
        """Headers of an htmx form post."""
        return {"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true",
                "X-CSRFToken": self.token}


class Recorder:
    """Every request of every thread, in one list, with ids the access log echoes."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []  # list.append is atomic: the threads share it
        self.writes: list[Write] = []
        self._ids = itertools.count(1)

    def send(self, client: SoakClient, endpoint: str, method: str, path: str,
             body: str | None = None, headers: dict | None = None) -> tuple[Sample, bytes]:
        """Send one request, record it, return (sample, body)."""
        request_id = next(self._ids)
        headers = {"HX-Request": "true", **(headers or {}), "X-Bench-Id": str(request_id)}
        sent, data = time.monotonic(), b""
        try:
            response, data = client.request(method, path, body, headers)
            sample = Sample(request_id, endpoint, client.username, sent, time.monotonic(),
                            response.status, response.getheader("X-Model-Version"))
        except (OSError, http.client.HTTPException) as error:
            sample = Sample(request_id, endpoint, client.username, sent, time.monotonic(), 0,
                            error=f"{type(error).__name__}: {error}"[:200])
        if not sample.ok and sample.error is None:
            sample.error = data[:200].decode(errors="replace")
        self.samples.append(sample)
        return sample, data


@dataclass
class Vocabulary:
    """The label groups as (multi?, label ids), to tick labels as a person would."""

    groups: list[tuple[bool, list[int]]]

    def choose(self, rng: random.Random) -> list[int]:
        """One label in a single group, one or two in a multi group; some groups left empty."""
        chosen = []
        for multi, ids in self.groups:
            if rng.random() < 0.8:
                chosen += rng.sample(ids, rng.randint(1, 2) if multi else 1)
        return sorted(chosen)


class SharedPool:
    """The items every colliding client is shown: the current one until someone decided it."""

    def __init__(self, items: list[int]) -> None:
        self.items, self._index, self._lock = items, 0, threading.Lock()

    def current(self) -> int | None:
        """The item everyone is shown now (None once the pool is used up)."""
        with self._lock:
            return self.items[self._index] if self._index < len(self.items) else None

    def decided(self, item: int) -> None:
        """``item`` left the queue: show the next one (once, whoever reports it first)."""
        with self._lock:
            if self._index < len(self.items) and self.items[self._index] == item:
                self._index += 1


class Worker(threading.Thread):
    """One client: previews, queue looks, decisions, edits and collisions until told to stop."""

    def __init__(self, client: SoakClient, items: list[int], pool: SharedPool,
                 vocabulary: Vocabulary, recorder: Recorder, stop: threading.Event,
                 seed: int, collide: int) -> None:
        super().__init__(daemon=True)
        self.actions = {**ACTIONS, "collide": collide}
        self.client, self.items, self.pool, self.vocabulary = client, items, pool, vocabulary
        self.recorder, self.stop = recorder, stop
        self.rng = random.Random(seed)
        self.accepted: list[int] = []  # items this client accepted: what it may edit
        self.ran_out = False

    def run(self) -> None:
        """Until told to stop: one action at a time, chosen by weight."""
        names, weights = list(self.actions), list(self.actions.values())
        while not self.stop.is_set():
            getattr(self, f"do_{self.rng.choices(names, weights)[0]}")()

    def _get(self, endpoint: str, path: str) -> None:
        self.recorder.send(self.client, endpoint, "GET", path)

    def do_dough(self) -> None:
        """The pizzeria's live dough prediction."""
        self._get("dough", dough_path(self.rng))

    def do_games(self) -> None:
        """The tavern's top 5 for a budget and styles."""
        self._get("games", games_path(self.rng))

    def do_labels(self) -> None:
        """Try the labeller: label suggestions for a typed title."""
        self._get("labels", labels_path(self.rng))

    def do_gifts(self) -> None:
        """Gift proposals for a brief."""
        self._get("gifts", brief_path(self.rng))

    def do_queue(self) -> None:
        """The queue's item block, showing this client's next item."""
        item = self.items[-1] if self.items else None
        self._get("queue", "/gifts/queue" + (f"?item_id={item}" if item else ""))

    def do_decide(self) -> None:
        """Accept (with labels), reject or skip this client's next item."""
        if not self.items:
            self.ran_out = True
            return self.do_queue()
        item = self.items.pop()
        action = self.rng.choices(list(DECISIONS), list(DECISIONS.values()))[0]
        labels = self.vocabulary.choose(self.rng) if action == "accept" else []
        self._write(item, action, labels)

    def do_edit(self) -> None:
        """Change the labels of an item this client accepted."""
        if not self.accepted:
            return self.do_decide()
        self._write(self.rng.choice(self.accepted), "edit", self.vocabulary.choose(self.rng))

    def do_collide(self) -> None:
        """Decide on the shared pool's current item, which others decide on too."""
        item = self.pool.current()
        if item is None:
            return self.do_decide()
        action = self.rng.choices(list(COLLISIONS), list(COLLISIONS.values()))[0]
        labels = self.vocabulary.choose(self.rng) if action == "accept" else []
        write = self._write(item, action, labels, shared=True)
        if write.accepted or write.status == CONFLICT:
            self.pool.decided(item)

    def _write(self, item: int, action: str, labels: list[int], shared: bool = False) -> Write:
        body = urlencode([("action", action), *(("label_ids", label) for label in labels)])
        sample, _ = self.recorder.send(self.client, "collide" if shared else action, "POST",
                                       f"/gifts/queue/items/{item}/decide", body,
                                       self.client.form_headers())
        write = Write(sample.id, self.client.username, item, action, labels, sample.status,
                      shared)
        self.recorder.writes.append(write)
        if write.accepted and action == "accept" and not shared:
            self.accepted.append(item)
        return write


class Admin(threading.Thread):
    """Presses Retrain, watches the job, activates, and waits for every worker to follow."""

    def __init__(self, client: SoakClient, app, recorder: Recorder, log: Log,
                 workers: set[str], kinds: list[str], window: tuple[float, float],
                 job_timeout: float) -> None:
        super().__init__(daemon=True)
        self.client, self.app, self.recorder, self.log = client, app, recorder, log
        self.workers, self.kinds, self.job_timeout = workers, kinds, job_timeout
        self.began, self.end = window
        self.cycles: list[Cycle] = []
        self.error: str | None = None

    def run(self) -> None:
        """Cycles while a whole one still fits in the window (the first one always runs)."""
        time.sleep(max(0.0, self.began + 2.0 - time.monotonic()))  # the load is under way
        longest = 0.0
        try:
            for number in itertools.count():
                if number and time.monotonic() + 1.5 * longest + 1.0 > self.end:
                    break
                started = time.monotonic()
                cycle = self.cycle(self.kinds[number % len(self.kinds)])
                self.cycles.append(cycle)
                if not cycle.ok:
                    break  # the checks will say why; more cycles would only repeat it
                longest = max(longest, time.monotonic() - started)
        except Exception as error:  # noqa: BLE001 - reported as a failed check, never lost
            self.error = f"{type(error).__name__}: {error}"

    def _db(self, query):
        from webapp.extensions import db

        with self.app.app_context():
            try:
                return query()
            finally:
                db.session.remove()

    def cycle(self, kind: str) -> Cycle:
        """One Retrain press through to every worker serving the new version."""
        from webapp import jobs, registry

        cycle = Cycle(kind, pressed=time.monotonic())
        sample, _ = self.recorder.send(self.client, "admin retrain", "POST",
                                       f"/admin/models/{kind}/retrain", "",
                                       self.client.form_headers())
        cycle.press_status = sample.status
        if sample.status not in (200, 202):
            return cycle
        cycle.job_id = self._db(lambda: jobs.latest_job("retrain", kind).id)
        deadline = time.monotonic() + self.job_timeout
        while time.monotonic() < deadline:
            time.sleep(1.0)  # as the card polls itself
            self.recorder.send(self.client, "admin card", "GET", f"/admin/models/{kind}")
            job = self._db(lambda: _job_state(jobs.get_job(cycle.job_id)))
            if job["done"]:
                cycle.job_status, cycle.job_error = job["status"], job["error"]
                cycle.version = (job["result"] or {}).get("version")
                cycle.by_gate = bool((job["result"] or {}).get("activated"))
                break
        cycle.job_done = time.monotonic()
        if cycle.job_status != "succeeded" or not cycle.version:
            return cycle
        if not cycle.by_gate:
            sample, _ = self.recorder.send(
                self.client, "admin activate", "POST",
                f"/admin/models/{kind}/versions/{cycle.version}/activate", "",
                self.client.form_headers())
            cycle.activate_status = sample.status
        cycle.activated = time.monotonic()
        active = self._db(lambda: getattr(registry.active_version(kind), "version", None))
        cycle.active_in_db = active == cycle.version
        if cycle.active_in_db and kind in PREVIEW_OF:
            self.wait_served(cycle, PREVIEW_OF[kind])
        elif cycle.active_in_db:
            cycle.all_served = cycle.activated  # no preview names this kind's version
        return cycle

    def wait_served(self, cycle: Cycle, endpoint: str) -> None:
        """Until every worker answered a request sent after the activation with the version."""
        checked = 0
        while time.monotonic() < cycle.activated + SETTLE_SECONDS:
            time.sleep(0.2)
            by_id = self.log.poll()
            samples = self.recorder.samples
            for sample in samples[checked:]:
                answered = by_id.get(sample.id)
                if (sample.endpoint == endpoint and sample.version == cycle.version
                        and sample.sent >= cycle.activated and answered is not None):
                    cycle.served_by.setdefault(answered[0],
                                               round(sample.recv - cycle.activated, 3))
            # Samples whose access-log line is not written yet are looked at again next time.
            unlogged = [i for i, s in enumerate(samples[checked:], checked) if s.id not in by_id]
            checked = unlogged[0] if unlogged else len(samples)
            if self.workers <= cycle.served_by.keys():
                cycle.all_served = max(cycle.served_by[pid] for pid in self.workers)
                return


def _job_state(job) -> dict:
    """A job row as plain data (read inside the app context)."""
    return {"done": job.done, "status": job.status, "error": job.error, "result": job.result}


# --- the instance -------------------------------------------------------------------------------

@contextmanager
def database(url: str | None, tmp: Path):
    """The database to use: ``url`` (must be local and empty), or a SQLite file in ``tmp``."""
    if not url:
        yield f"sqlite:///{tmp / 'soak.sqlite3'}"
        return
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url

    from webapp.config import normalise_database_url

    url = normalise_database_url(url)
    if make_url(url).host not in (None, HOST, "localhost"):
        raise SystemExit(f"refusing {make_url(url).host}: the soak stays on loopback")
    engine = create_engine(url)
    try:
        tables = inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise SystemExit(f"the database in DATABASE_URL is not empty ({len(tables)} tables): "
                         "give the soak a fresh one")
    yield url


def flask(env: dict, *command: str) -> None:
    """Run one ``flask`` command for the instance; stop the soak if it fails."""
    done = subprocess.run([BIN / "flask", "--app", "wsgi", *command], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # demo passwords stay unprinted
    if done.returncode:
        raise SystemExit(f"flask {' '.join(command)} failed:\n{done.stderr[-3000:]}")


def seed(app, args, run_id: str) -> dict:
    """Users (one staff per client, one admin), ``--items`` pending items; the queue's deal."""
    from sqlalchemy import insert, select

    from ml.gift_items import generate_items
    from webapp.auth.service import create_user
    from webapp.extensions import db
    from webapp.gifts.models import Item, LabelGroup, name_key

    started = time.monotonic()
    with app.app_context():
        password = secrets.token_urlsafe(12)
        staff = [create_user(f"soak-{run_id}-{n:02d}", "staff", password)[0].username
                 for n in range(args.clients)]
        admin = create_user(f"soak-{run_id}-admin", "admin", password)[0].username
        rows = [{"sku": f"SOAK-{run_id}-{n}", "name": row["name"],
                 "name_key": name_key(row["name"]), "description": row["description"],
                 "vendor": row["vendor"], "vendor_key": name_key(row["vendor"]),
                 "category": row["category"], "unit_price": row["price"], "local": row["local"],
                 "sustainable": row["sustainable"], "brandable": row["brandable"],
                 "perishable": row["perishable"], "source": "soak", "status": "pending",
                 "uncertainty": random.Random(n).random()}
                for n, row in enumerate(generate_items(args.items, seed=31))]
        for start in range(0, len(rows), 1000):
            db.session.execute(insert(Item), rows[start:start + 1000])
        db.session.commit()
        pending = list(db.session.scalars(select(Item.id).where(Item.status == "pending")))
        groups = [(group.multi, [label.id for label in group.labels])
                  for group in db.session.scalars(select(LabelGroup)) if group.labels]
        db.session.remove()
    random.Random(5).shuffle(pending)
    shared = pending[:args.shared_items] if args.collide else []
    dealt = pending[len(shared):]
    deal = [dealt[n::args.clients] for n in range(args.clients)]
    return {"password": password, "staff": staff, "admin": admin, "deal": deal,
            "shared": shared, "vocabulary": Vocabulary(groups), "pending": len(pending),
            "seconds": round(time.monotonic() - started, 1)}


@contextmanager
def serve(env: dict, args, tmp: Path):
    """gunicorn on loopback (and an RQ worker with the rq backend); yield (port, log, pids)."""
    import gunicorn as package

    port, log, output = free_port(), Log(tmp / "access.log"), tmp / "gunicorn.log"
    private = ["--no-control-socket"] if package.version_info >= (27,) else []
    threads = ["--threads", str(args.threads)] if args.worker_class == "gthread" else []
    children = []
    with open(output, "wb") as sink, open(tmp / "rq.log", "wb") as rq_sink:
        children.append(subprocess.Popen(
            [BIN / "gunicorn", "-w", str(args.workers), "-k", args.worker_class, *threads,
             "-b", f"{HOST}:{port}", "--timeout", "60", "--access-logfile", str(log.path),
             "--access-logformat", ACCESS_FORMAT, *private, "wsgi:app"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True))
        if env.get("JOBS_BACKEND") == "rq":
            children.append(subprocess.Popen(
                [BIN / "flask", "--app", "wsgi", "jobs", "worker"], cwd=ROOT, env=env,
                stdout=rq_sink, stderr=subprocess.STDOUT, start_new_session=True))
    try:
        deadline = time.monotonic() + 30
        while not healthy(port):
            if time.monotonic() > deadline or children[0].poll() is not None:
                raise SystemExit(f"gunicorn did not start:\n{output.read_text()[-3000:]}")
            time.sleep(0.1)
        time.sleep(1.0)  # every worker is booted, not only the first
        yield port, log, worker_pids(children[0].pid)
    finally:
        for child in reversed(children):
            stop(child)
        RESULTS.mkdir(parents=True, exist_ok=True)
        for name in ("gunicorn.log", "rq.log"):  # errors and tracebacks outlive the temp dir
            if (tmp / name).exists() and (tmp / name).stat().st_size:  # rq.log: rq only
                (RESULTS / f"soak-{name}").write_bytes((tmp / name).read_bytes())


def worker_pids(master: int) -> set[str]:
    """The gunicorn workers: the master's children (Linux)."""
    with open(f"/proc/{master}/task/{master}/children") as handle:
        return set(handle.read().split())


@contextmanager
def instance(args):
    """The whole instance, served; yield (in-process app, port, access log, pids, seeded)."""
    from webapp import create_app
    from webapp.config import ENV_KEYS
    from webapp.extensions import db

    run_id = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="curate-soak-") as tmp_name, \
            database(args.database_url, Path(tmp_name)) as url:
        tmp = Path(tmp_name)
        # Only our settings: an inherited CURATE_ENV=production would make cookies Secure.
        env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
        env.update(DATABASE_URL=url, MODEL_DIR=str(tmp / "models"),
                   SECRET_KEY=secrets.token_hex(32), JOBS_BACKEND="thread")
        if args.redis_url:
            # A queue of its own: jobs left on a shared Redis by other runs are not ours.
            env.update(JOBS_BACKEND="rq", REDIS_URL=args.redis_url, RQ_QUEUE=f"soak-{run_id}")
        flask(env, "db", "upgrade")
        flask(env, "demo", "load")
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "MODEL_DIR": env["MODEL_DIR"],
                          "SECRET_KEY": env["SECRET_KEY"], "JOBS_BACKEND": env["JOBS_BACKEND"],
                          "REDIS_URL": env.get("REDIS_URL", ""),
                          "RQ_QUEUE": env.get("RQ_QUEUE", "curate")})
        seeded = seed(app, args, run_id)
        try:
            with serve(env, args, tmp) as (port, log, pids):
                yield app, port, log, pids, seeded, env["JOBS_BACKEND"]
        finally:
            with app.app_context():
                db.engine.dispose()


# --- the run ------------------------------------------------------------------------------------

def log_in(port: int, names: list[str], password: str, timeout: float) -> list[SoakClient]:
    """Every client logs in, eight at a time (password hashing is the slow part)."""
    clients = [SoakClient(port, name, password, timeout) for name in names]
    pending = list(clients)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                client = pending.pop()
            client.login()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if any(not client.token for client in clients):
        raise SystemExit("a client could not log in")
    return clients


def wait_for_jobs(app, timeout: float) -> list[str]:
    """Wait until no job is queued or running (retrains, suggestion batches); the stragglers."""
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.jobs.models import Job

    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            left = [f"{job.kind} {job.subject} {job.status}" for job in db.session.scalars(
                select(Job).where(Job.status.in_(("queued", "running"))))]
            db.session.remove()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def run(args) -> dict:
    """Build and serve the instance, soak it, check the database; the results."""
    with instance(args) as (app, port, log, pids, seeded, backend):
        clients = log_in(port, seeded["staff"], seeded["password"], args.timeout)
        admin = log_in(port, [seeded["admin"]], seeded["password"], args.timeout)[0]
        recorder, halt = Recorder(), threading.Event()
        pool = SharedPool(seeded["shared"])
        threads = [Worker(client, items, pool, seeded["vocabulary"], recorder, halt, seed=n,
                          collide=args.collide)
                   for n, (client, items) in enumerate(zip(clients, seeded["deal"], strict=True))]
        began = time.monotonic()
        keeper = Admin(admin, app, recorder, log, pids, args.kinds,
                       (began, began + args.seconds), args.job_timeout)
        for thread in [*threads, keeper]:
            thread.start()
        time.sleep(args.seconds)
        keeper.join(timeout=args.job_timeout + SETTLE_SECONDS + 30)  # a cycle under way ends
        halt.set()
        for thread in threads:
            thread.join()
        window = time.monotonic() - began
        stragglers = wait_for_jobs(app, args.job_timeout)
        time.sleep(0.5)  # the last access-log lines
        log.poll()
        after = worker_pids_alive(pids)
        verdict = verify(app, recorder.writes, seeded["staff"])
    return {"settings": {**vars(args), "database": "postgresql" if args.database_url
                         else "sqlite", "jobs_backend": backend, "host": HOST,
                         "load_average_after": os.getloadavg()},
            "seeding": {key: seeded[key] for key in ("pending", "seconds")},
            "window_seconds": round(window, 1), "workers": sorted(pids),
            "workers_alive_after": sorted(after), "samples": recorder.samples,
            "writes": recorder.writes, "verify": verdict, "cycles": keeper.cycles,
            "admin_error": keeper.error, "stragglers": stragglers,
            "untagged_5xx": log.untagged_5xx, "ran_out": sum(t.ran_out for t in threads),
            "access": log.by_id}


def worker_pids_alive(pids: set[str]) -> set[str]:
    """Those of ``pids`` still running."""
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


# --- the checks ---------------------------------------------------------------------------------

def expected_states(writes: list[Write]) -> tuple[dict, dict, set]:
    """From the writes in the order sent: item -> expected state, item -> the decisions that
    must exist (action, user), and the items a write without an answer left in doubt."""
    states, decisions, doubtful = {}, defaultdict(list), set()
    for write in sorted(writes, key=lambda w: w.sample):
        if write.status == 0:
            doubtful.add(write.item_id)  # sent, unanswered: made or not, nobody knows
        if not write.accepted:
            continue
        decisions[write.item_id].append((write.action, write.user))
        before = states.get(write.item_id, {})
        if write.action == "skip":
            states[write.item_id] = {"status": "pending", "skipped": True,
                                     "reviewed_by": before.get("reviewed_by")}
        elif write.action == "reject":
            states[write.item_id] = {"status": "rejected", "skipped": False,
                                     "reviewed_by": write.user}
        else:  # accept, edit: exactly the ticked labels, all human
            states[write.item_id] = {"status": "accepted", "skipped": False,
                                     "reviewed_by": write.user,
                                     "labels": sorted((label, "human")
                                                      for label in write.label_ids)}
    return states, decisions, doubtful


def conflict(write: Write) -> bool:
    """A collision's expected refusal: a 409 on the shared pool."""
    return write.shared and write.status == CONFLICT


def verify(app, writes: list[Write], users: list[str]) -> dict:
    """Every accepted write is in the database with its value; no refused write is."""
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.gifts.models import Item, ItemLabel, LabelDecision

    states, expected, doubtful = expected_states(writes)
    touched = sorted({write.item_id for write in writes})
    with app.app_context():
        items, labels, found = {}, defaultdict(list), defaultdict(list)
        for start in range(0, len(touched), 500):
            chunk = touched[start:start + 500]
            for row in db.session.execute(select(Item.id, Item.status, Item.skipped,
                                                 Item.reviewed_by).where(Item.id.in_(chunk))):
                items[row.id] = {"status": row.status, "skipped": bool(row.skipped),
                                 "reviewed_by": row.reviewed_by}
            for row in db.session.execute(select(ItemLabel.item_id, ItemLabel.label_id,
                                                 ItemLabel.source)
                                          .where(ItemLabel.item_id.in_(chunk))):
                labels[row.item_id].append((row.label_id, row.source))
        for row in db.session.execute(select(LabelDecision.item_id, LabelDecision.action,
                                             LabelDecision.created_by)
                                      .where(LabelDecision.created_by.in_(users))
                                      .order_by(LabelDecision.id)):
            found[row.item_id].append((row.action, row.created_by))
        db.session.remove()
    wrong, missing, extra = [], [], []
    for item_id in touched:
        if item_id in doubtful:
            continue  # reported as in doubt; a failed request already fails the run
        if found.get(item_id, []) != expected.get(item_id, []):
            (missing if len(found.get(item_id, [])) < len(expected.get(item_id, []))
             else extra).append({"item": item_id, "expected": expected.get(item_id, []),
                                 "found": found.get(item_id, [])})
        state = states.get(item_id)
        if state is None:
            continue
        actual = {**items.get(item_id, {}), "labels": sorted(labels.get(item_id, []))}
        differs = {key: {"expected": value, "found": actual.get(key)}
                   for key, value in state.items() if actual.get(key) != value}
        if differs:
            wrong.append({"item": item_id, **differs})
    accepted = [write for write in writes if write.accepted]
    decisions_found = sum(len(found.get(item_id, [])) for item_id in touched)
    winners = Counter(write.item_id for write in accepted if write.shared)
    return {"sent": len(writes), "accepted": len(accepted),
            "refused": sum(0 < write.status and not write.accepted and not conflict(write)
                           for write in writes),
            "conflicts": sum(conflict(write) for write in writes),
            "shared_items": len({write.item_id for write in writes if write.shared}),
            "shared_won": len(winners),
            "double_winners": sorted(item for item, count in winners.items() if count > 1),
            "unanswered": sum(write.status == 0 for write in writes),
            "items": len(touched), "decisions_expected": len(accepted),
            "decisions_found": decisions_found, "in_doubt": sorted(doubtful),
            "missing": missing, "extra": extra, "wrong": wrong,
            "by_action": dict(Counter(write.action for write in accepted))}


def endpoint_stats(samples: list[Sample]) -> dict[str, dict]:
    """Requests, failures and p50/p99/max (ms) per endpoint."""
    by = defaultdict(list)
    for sample in samples:
        by[sample.endpoint].append(sample)
    stats = {}
    for endpoint, group in sorted(by.items(), key=lambda kv: -len(kv[1])):
        latencies = [1000 * (s.recv - s.sent) for s in group if s.ok]
        stats[endpoint] = {"requests": len(group), "failed": sum(not s.ok for s in group),
                           "p50_ms": percentile(latencies, 0.50),
                           "p99_ms": percentile(latencies, 0.99),
                           "max_ms": max(latencies, default=float("nan"))}
    return stats


def checks(results: dict) -> list[tuple[str, bool, str]]:
    """(check, passed, figure) for every promise of the soak."""
    samples, verdict, cycles = results["samples"], results["verify"], results["cycles"]
    failed = [s for s in samples if not s.ok]
    five = sum(status >= 500 for _, status in results["access"].values())
    activated = [c for c in cycles if c.active_in_db]
    return [
        ("no failed request", not failed and not results["untagged_5xx"],
         f"{len(failed)} failed of {len(samples):,} (server log: {five} tagged 5xx, "
         f"{len(results['untagged_5xx'])} untagged)"),
        ("every accepted write is in the database, with its value",
         not (verdict["missing"] or verdict["wrong"] or verdict["in_doubt"]),
         f"{verdict['accepted']:,} accepted, {verdict['decisions_found']:,} decisions found "
         f"(expected {verdict['decisions_expected']:,}); {len(verdict['missing'])} items with a "
         f"decision missing, {len(verdict['wrong'])} with a wrong value, "
         f"{len(verdict['in_doubt'])} in doubt"),
        ("no refused write left a trace", not verdict["extra"],
         f"{verdict['refused'] + verdict['conflicts']} refused, {len(verdict['extra'])} items "
         "with an extra decision"),
        ("a collision has one winner, the others get 409", not verdict["double_winners"],
         f"{verdict['shared_items']} shared items, {verdict['shared_won']} won, "
         f"{verdict['conflicts']} refused with 409, {len(verdict['double_winners'])} with two "
         "or more winners (a lost write)"),
        ("a retrain was activated during the window", bool(activated) and
         results["admin_error"] is None,
         f"{len(activated)} of {len(cycles)} cycles activated"
         + (f"; admin error: {results['admin_error']}" if results["admin_error"] else "")),
        ("every worker served each new version", bool(cycles) and all(c.ok for c in cycles),
         f"{sum(c.ok for c in cycles)} of {len(cycles)} versions served by all "
         f"{len(results['workers'])} workers within {SETTLE_SECONDS:g} s"),
        ("no gunicorn worker died", results["workers_alive_after"] == results["workers"],
         f"{len(results['workers_alive_after'])} of {len(results['workers'])} still running"),
        ("every job finished", not results["stragglers"],
         ", ".join(results["stragglers"]) or "none left queued or running"),
    ]


def report(results: dict) -> bool:
    """Print the summary; True when every check holds."""
    settings, verdict = results["settings"], results["verify"]
    print(f"\nCurate soak: {settings['clients']} clients for {settings['seconds']:g} s "
          f"(window {results['window_seconds']} s), {settings['database']}, jobs "
          f"{settings['jobs_backend']}, gunicorn -k {settings['worker_class']} "
          f"-w {settings['workers']} on {settings['host']}; {results['seeding']['pending']:,} "
          f"pending items dealt out; load average after "
          f"{settings['load_average_after'][0]:.1f}\n")
    stats = endpoint_stats(results["samples"])
    print(f"{'endpoint':<16}{'requests':>10}{'failed':>8}{'req/s':>8}{'p50 ms':>9}"
          f"{'p99 ms':>9}{'max ms':>9}")
    for endpoint, row in stats.items():
        print(f"{endpoint:<16}{row['requests']:>10,}{row['failed']:>8}"
              f"{row['requests'] / results['window_seconds']:>8.1f}{row['p50_ms']:>9.1f}"
              f"{row['p99_ms']:>9.1f}{row['max_ms']:>9.1f}")
    total = len(results["samples"])
    print(f"{'all':<16}{total:>10,}{sum(r['failed'] for r in stats.values()):>8}"
          f"{total / results['window_seconds']:>8.1f}")
    failed = [s for s in results["samples"] if not s.ok]
    for sample in failed[:20]:
        print(f"  FAILED {sample.endpoint} by {sample.client} at "
              f"{sample.sent - results['samples'][0].sent:.1f} s: status {sample.status} "
              f"{(sample.error or '')[:120]!r}")
    if len(failed) > 20:
        print(f"  ... and {len(failed) - 20} more (all in the JSON)")
    print(f"\nwrites: {verdict['sent']:,} sent, {verdict['accepted']:,} accepted "
          f"({', '.join(f'{k} {v}' for k, v in sorted(verdict['by_action'].items()))}), "
          f"{verdict['refused']} refused, {verdict['unanswered']} unanswered, "
          f"{verdict['conflicts']} collisions refused with 409; on "
          f"{verdict['items']:,} items; in the database: {verdict['decisions_found']:,} "
          f"decisions of {verdict['decisions_expected']:,}, {len(verdict['wrong'])} items "
          f"with a wrong value")
    for problem in (verdict["missing"] + verdict["extra"] + verdict["wrong"])[:10]:
        print(f"  {problem}")
    start = results["samples"][0].sent if results["samples"] else 0.0
    print("\nretrain cycles (s into the window):")
    for cycle in results["cycles"]:
        job = (f"job {cycle.job_status} in {cycle.job_done - cycle.pressed:.1f} s"
               if cycle.job_done else "no job")
        how = ("by the gate" if cycle.by_gate else
               f"by the admin (answer {cycle.activate_status})")
        served = (f"every worker within {cycle.all_served:.2f} s "
                  f"({', '.join(f'{p} {t:.2f}' for p, t in sorted(cycle.served_by.items()))})"
                  if cycle.all_served is not None else f"served by {sorted(cycle.served_by)}")
        print(f"  {cycle.kind:<7} pressed at {cycle.pressed - start:5.1f} (answer "
              f"{cycle.press_status}), {job}, version {cycle.version}, activated {how}, "
              f"{served}" + (f"; error {cycle.job_error}" if cycle.job_error else ""))
    if results["ran_out"]:
        print(f"  note: {results['ran_out']} clients ran out of items to decide on")
    print()
    passed = True
    for name, ok, figure in checks(results):
        passed &= ok
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {figure}")
    print(f"\nresult: {'PASS' if passed else 'FAIL'}")
    return passed


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64, help="concurrent logged-in clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="the soak window")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (>= 2)")
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="sync")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--items", type=int, default=4000,
                        help="pending gift items added to the demo's, dealt out to the clients")
    parser.add_argument("--collide", type=int, default=10,
                        help="weight of decisions on the shared pool (0: no collisions; the "
                             f"other actions weigh {sum(ACTIONS.values())} in all)")
    parser.add_argument("--shared-items", type=int, default=300,
                        help="pending items in the shared pool")
    parser.add_argument("--kinds", default="labels,dough", type=lambda text: text.split(","),
                        help="the models retrained in turn")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="client timeout in seconds (a timeout is a failed request)")
    parser.add_argument("--job-timeout", type=float, default=180.0,
                        help="seconds a retrain (or the last jobs) may take")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="an EMPTY local database (default: $DATABASE_URL, else SQLite)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                        help="use JOBS_BACKEND=rq with this Redis (default: $REDIS_URL)")
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers must be at least 2: the soak checks that workers follow swaps")
    return args


def main(argv: list[str] | None = None) -> int:
    """Soak, print, write the JSON; 0 only when every check holds."""
    args = parse(argv)
    # SIGTERM unwinds like Ctrl+C, through the finally blocks that stop gunicorn.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    results = run(args)
    passed = report(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"soak-{stamp}.json"
    failed = [asdict(s) for s in results["samples"] if not s.ok]
    out.write_text(json.dumps({
        "passed": passed, "settings": results["settings"], "seeding": results["seeding"],
        "window_seconds": results["window_seconds"],
        "endpoints": endpoint_stats(results["samples"]), "failed": failed,
        "writes": results["verify"], "cycles": [asdict(c) for c in results["cycles"]],
        "checks": [{"check": n, "passed": ok, "figure": f} for n, ok, f in checks(results)]},
        indent=2, default=str))
    print(f"results: {out.relative_to(ROOT)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
