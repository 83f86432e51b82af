"""Fault injection: the disk fills up, a training process is killed, an artefact is tampered
with, Redis is down. In each case the active model keeps serving and the fault is reported
plainly; once the fault is gone, the next retrain works.
"""

from __future__ import annotations

import errno
import os
import signal

import pytest

from ml import store
from tests.support import add_nights, demo_year_nights, wait_for_job
from tests.web.test_access_matrix import SAMPLE_ARGS
from webapp import jobs, registry
from webapp.extensions import db
from webapp.ml_bridge import isolation

REDIS_DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused


@pytest.fixture
def nights(app):
    with app.app_context():
        add_nights(demo_year_nights())


def retrain(app, **params):
    """Run a dough retrain through the real job machinery (thread backend); return the job."""
    with app.app_context():
        job, _ = jobs.enqueue("retrain", {"kind": "dough", "trained_by": "tester", **params},
                              dedupe_key="retrain:dough", subject="dough")
        return wait_for_job(job.id, timeout=60)


def active_version(app) -> str | None:
    with app.app_context():
        row = registry.active_version("dough")
        return row.version if row else None


def served_version(client) -> str | None:
    """The dough version that answers a prediction request (logged in as a host)."""
    response = client.get("/pizzeria/predict?reservations=20")
    assert response.status_code == 200
    return response.headers.get("X-Model-Version")


def dough_files(tmp_path) -> list[str]:
    """Every file in MODEL_DIR/dough, hidden temporary files included."""
    return sorted(os.listdir(tmp_path / "models" / "dough"))


def versions_in_registry(app) -> dict[str, str]:
    with app.app_context():
        return {row.version: row.status for row in registry.versions("dough")}


# --- 1. Disk full while an artefact is written ---------------------------------------------------

class FullFile:
    """A file being written on a full disk: half the bytes land, then ENOSPC."""

    def __init__(self, handle):
        self._handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._handle.close()

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def write(self, data):
        """Write the first half of ``data``, then fail as a full disk does."""
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()  # the partial bytes really reach the temporary file
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDisk:
    """Stands in for ``os`` inside ``ml.store``: the ``fail_on``-th file opened for writing
    runs out of space."""

    def __init__(self, fail_on: int):
        self._fail_on = fail_on
        self.opened = 0

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, *args, **kwargs):
        """Open ``fd`` as ``os.fdopen`` does; the chosen file's write runs out of space."""
        handle = os.fdopen(fd, *args, **kwargs)
        self.opened += 1
        return FullFile(handle) if self.opened == self._fail_on else handle


@pytest.mark.parametrize("fail_on", [1, 2], ids=["model-file", "metadata-file"])
def test_a_full_disk_fails_the_retrain_and_leaves_the_active_model(
        app, client, auth, nights, tmp_path, monkeypatch, fail_on):
    auth.login("host")
    good = retrain(app)
    assert good.status == "succeeded", good.error
    first = good.result["version"]
    assert served_version(client) == first
    before = dough_files(tmp_path)

    disk = FullDisk(fail_on)
    monkeypatch.setattr(store, "os", disk)
    failed = retrain(app)
    assert disk.opened == fail_on  # the fault really was hit, at the file it was meant for
    assert failed.status == "failed"
    assert "No space left on device" in failed.error and "OSError" in failed.error
    # Neither the partial temporary file nor a half-published version is left behind.
    assert dough_files(tmp_path) == before
    assert versions_in_registry(app) == {first: "active"}
    assert active_version(app) == first
    assert served_version(client) == first

    monkeypatch.undo()
    again = retrain(app)
    assert again.status == "succeeded", again.error
    assert again.result["activated"]  # same data and settings: within the gate's margin
    assert served_version(client) == again.result["version"] != first


# --- 2. The training process is killed ----------------------------------------------------------

def die(data, **params):
    """A fit whose process is killed mid-way (the out-of-memory killer, an operator)."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_training_process_fails_the_job_and_the_next_retrain_works(
        app, client, auth, nights, tmp_path, monkeypatch):
    auth.login("host")
    first = retrain(app).result["version"]
    before = dough_files(tmp_path)

    monkeypatch.setattr("webapp.ml_bridge.run_training",
                        lambda train, data, **params: isolation.run_training(die, data))
    killed = retrain(app)
    assert killed.status == "failed"
    assert "TrainingProcessDied" in killed.error and "active model is unchanged" in killed.error
    assert dough_files(tmp_path) == before
    assert versions_in_registry(app) == {first: "active"}
    assert served_version(client) == first

    monkeypatch.undo()
    again = retrain(app)
    assert again.status == "succeeded", again.error
    assert again.result["activated"]
    assert served_version(client) == again.result["version"] != first


# --- 3. A tampered artefact ---------------------------------------------------------------------
# tests/web/test_models_platform.py covers a tampered version activated by hand while a worker
# serves another one. Here the gate itself promotes the version, the file is damaged before this
# worker loads it, and the admin must be able to see why it is not served.

def flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_tampered_active_version_is_refused_and_the_admin_sees_why(
        app, client, auth, nights, tmp_path):
    auth.login("admin")
    first = retrain(app).result["version"]
    assert served_version(client) == first  # this worker has loaded the first version

    promoted = retrain(app)
    assert promoted.result["activated"], promoted.result  # same settings: passes the gate
    second = promoted.result["version"]
    flip_a_byte(tmp_path / "models" / "dough" / f"{second}.joblib")

    assert served_version(client) == first  # refused; the old model keeps serving
    with app.app_context():
        row = registry.get_version("dough", second)
        assert "changed after publishing" in row.load_error
        assert f"worker {os.getpid()}" in row.load_error
        error = row.load_error
    page = client.get("/admin/models")
    assert page.status_code == 200
    assert error.encode() in page.data  # the full text, shown under the version

    # A worker started after the damage has no old model to fall back on: it says why plainly
    # (no 5xx), and a rollback makes it serve the good version.
    from tests.web.conftest import AuthActions
    from webapp import create_app

    late_app = create_app(app.config)
    try:
        late_client = late_app.test_client()
        AuthActions(late_app, late_client).login("host")
        response = late_client.get("/pizzeria/predict?reservations=20")
        assert response.status_code == 200 and "X-Model-Version" not in response.headers
        assert f"dough model {second} could not be loaded".encode() in response.data
        assert client.post("/admin/models/dough/rollback").status_code == 303
        assert active_version(app) == first
        assert served_version(late_client) == first
    finally:
        with late_app.app_context():
            db.session.remove()
            db.engine.dispose()


# --- 4. Redis down with the rq backend ----------------------------------------------------------

@pytest.fixture
def redis_down(app_config):
    """The app uses RQ, and Redis refuses connections."""
    app_config.update(JOBS_BACKEND="rq", REDIS_URL=REDIS_DOWN)
    return app_config


def real_args(app) -> dict:
    """URL arguments naming rows that exist (after the demo load), where there are any."""
    from webapp.auth.models import User
    from webapp.gifts import models as gifts
    from webapp.pizzeria.models import Night
    from webapp.tavern.models import Game, GameplayStyle

    tables = {"user_id": User, "night_id": Night, "game_id": Game, "style_id": GameplayStyle,
              "item_id": gifts.Item, "rule_id": gifts.Rule, "group_id": gifts.LabelGroup,
              "label_id": gifts.Label, "client_id": gifts.Client, "gift_id": gifts.Gift,
              "line_id": gifts.GiftLine, "decision_id": gifts.LabelDecision}
    args = dict(SAMPLE_ARGS)
    with app.app_context():
        for name, model in tables.items():
            first = db.session.scalar(db.select(model.id).order_by(model.id).limit(1))
            if first is not None:
                args[name] = first
        args["version"] = registry.active_version("dough").version
    return args


def get_urls(app, args: dict) -> list[str]:
    """Every GET route, with its URL arguments taken from ``args``."""
    from flask import url_for

    with app.test_request_context():
        return sorted({url_for(rule.endpoint, **{a: args[a] for a in rule.arguments})
                       for rule in app.url_map.iter_rules() if "GET" in rule.methods})


def test_with_redis_down_every_page_still_renders(redis_down, app, client, auth, runner):
    result = runner.invoke(args=["demo", "load"])  # trains in place: no queue is needed
    assert result.exit_code == 0, result.output
    auth.login("admin")
    urls = get_urls(app, SAMPLE_ARGS) + get_urls(app, real_args(app))
    assert len(urls) > 60
    broken = []
    for url in urls:
        for htmx in (False, True):
            response = client.get(url, headers={"HX-Request": "true"} if htmx else {})
            response.close()  # static files are streamed
            ok = response.status_code < 500 or (
                response.status_code == 503 and b"unavailable" in response.data)
            if not ok:
                broken.append((url, htmx, response.status_code))
    assert not broken
    # The crawl really ran on the rq backend, against a Redis that does not answer.
    with app.app_context():
        assert type(jobs.backend()).__name__ == "RQBackend"


def test_with_redis_down_applying_rules_says_so(redis_down, app, client, htmx_client, auth):
    auth.login("staff")
    response = htmx_client.post("/gifts/rules/apply")
    assert response.status_code == 503
    assert f"The job queue (Redis at {REDIS_DOWN}) is unavailable".encode() in response.data
    response = client.post("/gifts/rules/apply", follow_redirects=True)
    assert response.status_code == 200
    assert b"job queue" in response.data and b"is unavailable" in response.data
    with app.app_context():
        assert {job.status for job in db.session.query(jobs.Job)} == {"failed"}
