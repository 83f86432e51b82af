"""Every live-preview endpoint against the bare fragment, driven by wrk, side by side in one run.

    .venv/bin/python -m bench.live [--seconds 5] [--rounds 2] [--workers 2] [--connections 8]
                                   [--items 10000] [--only dough,games,labels,gifts,retrain]
                                   [--database-url postgresql+psycopg://postgres@127.0.0.1/db]

One throwaway instance (``bench.hotswap.instance``: migrations, ``flask demo load``, a dough
model) gets ``--items`` more gift items, then a gunicorn server (``-k sync``, ``--workers``) is
driven by **wrk** (Debian's ``wrk`` package: a C load generator, so the client costs the
2-core machine little) with ``--connections`` concurrent connections of one logged-in admin
session, sending ``HX-Request: true`` as htmx does. Each request takes the next URL from a list
of random but realistic inputs (reservations, budgets and styles, item titles, briefs).

- **Live previews**: for each endpoint, rounds alternate the bare fragment
  (``GET /pizzeria/predict``: the same stack, login and block rendering, no model) with the
  endpoint, so machine noise hits both alike. Goal: throughput >= 0.85x the bare fragment's,
  and p99 <= 25 ms (gift proposals: <= 100 ms).
- **Retrain**: the dough preview's p99 alone, then while an admin's Retrain button is pressed
  again and again (``POST /admin/models/labels/retrain``: a retrain is always running, in the
  instance's job backend), then alone again. Goal: p99 with a retrain <= 2x the p99 without.

Results are printed and written to ``bench/results/live-<stamp>.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from bench.gifts_proposals import brief_path, seed_items
from bench.hotswap import USERNAME, Client, instance
from bench.predict import STYLES
from bench.suite import Goal

RESULTS = Path(__file__).parent / "results"
BARE = "/pizzeria/predict"
RATIO_GOAL = 0.85
RETRAIN_GOAL = 2.0
RETRAIN_KIND = "labels"


def dough_path(rng: random.Random) -> str:
    """Tonight's reservations, as the host types them."""
    return f"/pizzeria/predict?reservations={rng.randrange(1, 80)}"


def games_path(rng: random.Random) -> str:
    """A budget and 0-3 ticked gameplay styles."""
    args = [("budget", rng.choice(("cheap", "standard", "premium")))]
    args += [("gameplay", style) for style in rng.sample(STYLES, rng.randint(0, 3))]
    return "/tavern/suggestions?" + urlencode(args)


@functools.cache
def synthetic_items() -> tuple[dict, ...]:
    """500 synthetic gift items (made once): what staff type into the labeller."""
    from ml.gift_items import generate_items

    return tuple(generate_items(500, seed=123))


def labels_path(rng: random.Random) -> str:
    """An item's title as staff type it (a prefix), sometimes with its vendor and price."""
    row = rng.choice(synthetic_items())
    args = [("title", row["name"][:rng.randint(3, len(row["name"]))])]
    if rng.random() < 0.3:
        args += [("vendor", row["vendor"]), ("price", f"{row['price']:.2f}")]
    return "/gifts/labels/try/suggestions?" + urlencode(args)


#: endpoint -> (what it is, URL maker, p99 limit in ms)
ENDPOINTS = {
    "dough": ("dough prediction", dough_path, 25.0),
    "games": ("tavern top 5", games_path, 25.0),
    "labels": ("label suggestion", labels_path, 25.0),
    "gifts": ("gift proposals (10k items)", brief_path, 100.0),
}


class Wrk:
    """Runs wrk against one server with one session cookie, over a list of URLs."""

    SCRIPT = """
local paths = {%(paths)s}
local i = 0
wrk.headers["Cookie"] = "%(cookie)s"
wrk.headers["HX-Request"] = "true"
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "max_us": %%d, '
    .. '"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""

    def __init__(self, port: int, cookie: str, connections: int, tmp: Path) -> None:
        self.url, self.cookie, self.connections, self.tmp = f"http://127.0.0.1:{port}", cookie, \
            connections, tmp
        self.binary = shutil.which("wrk")
        if self.binary is None:
            raise SystemExit("wrk is missing: sudo apt-get install -y wrk")

    def run(self, paths: list[str], seconds: float) -> dict:
        """Drive ``paths`` (in turn) for ``seconds``; return req/s, p50/p99 ms and failures."""
        script = self.tmp / "load.lua"
        script.write_text(self.SCRIPT % {
            "paths": ", ".join(f'"{path}"' for path in paths), "cookie": self.cookie})
        done = subprocess.run(
            [self.binary, "-t", "2", "-c", str(self.connections), "-d", f"{seconds:g}s",
             "--timeout", "5s", "-s", str(script), self.url], capture_output=True, text=True,
            timeout=seconds + 30)
        line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")),
                    None)
        if line is None:
            raise SystemExit(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
        raw = json.loads(line.removeprefix("RESULT "))
        failed = sum(raw[key] for key in ("connect", "read", "write", "status", "timeout"))
        return {"rps": raw["requests"] / (raw["duration_us"] / 1e6), "p50": raw["p50_us"] / 1e3,
                "p99": raw["p99_us"] / 1e3, "max": raw["max_us"] / 1e3,
                "requests": raw["requests"], "failed": failed}


def median_of(phases: list[dict]) -> dict:
    """Per-key medians of several phases (failures are summed)."""
    merged = {key: statistics.median(phase[key] for phase in phases) for key in phases[0]}
    merged["failed"] = sum(phase["failed"] for phase in phases)
    return merged


def measure_endpoint(wrk: Wrk, make_path, rounds: int, seconds: float, seed: int) -> dict:
    """Alternate the bare fragment and the endpoint; medians of each."""
    rng = random.Random(seed)
    paths = [make_path(rng) for _ in range(500)]
    wrk.run(paths, 1.0)  # warm-up: every worker loads the model and fills its caches
    bare, target = [], []
    for _ in range(rounds):
        bare.append(wrk.run([BARE], seconds))
        target.append(wrk.run(paths, seconds))
    return {"bare": median_of(bare), "endpoint": median_of(target)}


def live_goal(key: str, result: dict) -> Goal:
    """One endpoint's line of the table."""
    name, _, p99_limit = ENDPOINTS[key]
    bare, endpoint = result["bare"], result["endpoint"]
    ratio = endpoint["rps"] / bare["rps"]
    met = ratio >= RATIO_GOAL and endpoint["p99"] <= p99_limit and not (
        endpoint["failed"] or bare["failed"])
    figure = (f"{ratio:.2f}x ({endpoint['rps']:.0f} vs {bare['rps']:.0f} req/s), "
              f"p99 {endpoint['p99']:.1f} ms (bare {bare['p99']:.1f}), "
              f"{endpoint['failed']:.0f} failed")
    return Goal("live", f"{name} vs bare fragment", figure,
                f">= {RATIO_GOAL}x and p99 <= {p99_limit:g} ms", met,
                {"ratio": ratio, **result})


class Retrainer:
    """Presses an admin's Retrain button every ``interval`` s in a thread, so one always runs."""

    def __init__(self, client: Client, kind: str, interval: float = 0.3) -> None:
        self.client, self.kind, self.interval = client, kind, interval
        self.started = self.pressed = 0
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        _, page = client.request("GET", "/admin/models")
        token = re.search(rb'"X-CSRFToken"\s*:\s*"([^"]+)"', page) or re.search(
            rb'name="csrf_token"[^>]*value="([^"]+)"', page)
        if token is None:
            raise SystemExit("no CSRF token on /admin/models")
        self.token = token[1].decode()

    def __enter__(self) -> Retrainer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            response, _ = self.client.request(
                "POST", f"/admin/models/{self.kind}/retrain", "",
                {"X-CSRFToken": self.token, "HX-Request": "true",
                 "Content-Type": "application/x-www-form-urlencoded"})
            self.pressed += 1
            self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
            self.started += response.status == 202
            self._stop.wait(self.interval)


def measure_retrain(wrk: Wrk, admin: Client, kind: str, seconds: float, seed: int) -> dict:
    """The dough preview alone, with retrains running, and alone again."""
    rng = random.Random(seed)
    paths = [dough_path(rng) for _ in range(500)]
    before = wrk.run(paths, seconds)
    with Retrainer(admin, kind) as retrainer:
        time.sleep(1.0)  # the first retrain is under way
        during = wrk.run(paths, 2 * seconds)  # long enough to span a whole retrain or two
    time.sleep(3.0)  # let the last retrain finish
    after = wrk.run(paths, seconds)
    return {"kind": kind, "before": before, "during": during, "after": after,
            "retrains_started": retrainer.started, "presses": retrainer.pressed,
            "statuses": retrainer.statuses}


def retrain_goal(result: dict) -> Goal:
    """The retrain line of the table."""
    quiet = (result["before"]["p99"] + result["after"]["p99"]) / 2
    during = result["during"]["p99"]
    ratio = during / quiet
    failed = sum(result[phase]["failed"] for phase in ("before", "during", "after"))
    met = ratio <= RETRAIN_GOAL and not failed and result["retrains_started"] > 0
    figure = (f"{ratio:.2f}x (p99 {during:.1f} ms with {result['retrains_started']} "
              f"{result['kind']} retrains vs {quiet:.1f} ms without; "
              f"{result['during']['rps']:.0f} vs {result['before']['rps']:.0f} req/s), "
              f"{failed} failed")
    return Goal("live", "dough preview p99 while retraining", figure,
                f"<= {RETRAIN_GOAL}x the p99 without", met, {"ratio": ratio, **result})


def measure(args) -> list[Goal]:
    """Build the instance, seed the gift items, run every chosen measurement."""
    goals = []
    with tempfile.TemporaryDirectory(prefix="curate-live-") as tmp, \
            instance(args) as (app, port, _log):
        seed_items(app, args.items)  # (makes the bench user staff)
        promote_bench_user(app)
        client = Client(port)
        client.login()
        cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())
        wrk = Wrk(port, cookie, args.connections, Path(tmp))
        for index, key in enumerate(ENDPOINTS):
            if key in args.only:
                result = measure_endpoint(wrk, ENDPOINTS[key][1], args.rounds, args.seconds,
                                          seed=index)
                goals.append(live_goal(key, result))
                print_goal(goals[-1])
        if "retrain" in args.only:
            goals.append(retrain_goal(measure_retrain(wrk, client, args.retrain_kind, args.seconds,
                                                           seed=99)))
            print_goal(goals[-1])
    return goals


def promote_bench_user(app) -> None:
    """The bench user becomes an admin: it previews everywhere and presses Retrain."""
    from webapp.auth.service import find_user
    from webapp.extensions import db

    with app.app_context():
        find_user(USERNAME).role = "admin"
        db.session.commit()


def print_goal(goal: Goal) -> None:
    """One line as soon as it is measured (the suite prints the table at the end)."""
    verdict = {True: "met", False: "NOT met", None: "-"}[goal.met]
    print(f"{goal.name}: {goal.figure}  [{goal.target}: {verdict}]", flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line (also the suite's defaults)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3, help="bare/endpoint round pairs")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections")
    parser.add_argument("--items", type=int, default=10_000, help="gift items to add")
    parser.add_argument("--only", default=",".join([*ENDPOINTS, "retrain"]),
                        type=lambda text: set(text.split(",")), help="what to measure")
    parser.add_argument("--retrain-kind", default=RETRAIN_KIND,
                        help="the model whose Retrain is pressed during the retrain phase")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    # What bench.hotswap.instance reads.
    args.clients, args.duration = args.connections, 0.0
    return args


def suite(database_url: str | None = None) -> list[Goal]:
    """The suite's live lines: every endpoint and the retrain, with the default settings."""
    return measure(parse([] if database_url is None else ["--database-url", database_url]))


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write the JSON; exit 1 when a goal is missed."""
    args = parse(argv)
    goals = measure(args)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"live-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"settings": {**vars(args), "only": sorted(args.only)},
                               "goals": [goal.as_dict() for goal in goals]}, indent=2))
    print(f"results: {out}")
    return 0 if all(goal.met for goal in goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
