"""JOBS_BACKEND=rq for real: Redis on this machine and a real `flask jobs worker` process.

Skipped loudly without Redis on a developer machine; under CI=true a missing Redis fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.support import add_nights, demo_year_nights, skip_or_fail, wait_for_job
from webapp import PROJECT_ROOT, jobs, registry

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def app_config(app_config):
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except RedisError as error:
        skip_or_fail(f"Redis is not reachable at {REDIS_URL} ({error}); start it with "
                     "`redis-server --daemonize yes` to test the rq backend")
    app_config.update(JOBS_BACKEND="rq", REDIS_URL=REDIS_URL,
                      RQ_QUEUE=f"curate-test-{uuid.uuid4().hex[:8]}")
    return app_config


def run_worker(app, timeout: float = 90) -> subprocess.CompletedProcess:
    """Run `flask jobs worker --burst` in its own process, on the test's database and queue."""
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "MODEL_DIR": app.config["MODEL_DIR"],
        "SECRET_KEY": "test-secret",
        "JOBS_BACKEND": "rq",
        "REDIS_URL": REDIS_URL,
        "RQ_QUEUE": app.config["RQ_QUEUE"],
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker", "--burst"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def press_retrain(htmx_client, **data):
    return htmx_client.post("/admin/models/dough/retrain",
                            data={"model_type": "polynomial", "degree": "2", **data})


def test_retrain_runs_on_an_rq_worker_process(app, htmx_client, auth):
    auth.login("admin")
    with app.app_context():
        add_nights(demo_year_nights())
    response = press_retrain(htmx_client)
    assert response.status_code == 202
    assert b'hx-trigger="every 1s"' in response.data  # queued: the card polls
    with app.app_context():
        job = jobs.latest_job("retrain", "dough")
        assert job.status == "queued"  # nothing runs it in this process
    worker = run_worker(app)
    assert worker.returncode == 0, worker.stderr
    with app.app_context():
        done = wait_for_job(job.id, timeout=10)
        assert done.status == "succeeded", done.error
        assert registry.active_version("dough").version == done.result["version"]
    response = htmx_client.get("/pizzeria/predict?reservations=20")
    assert response.headers["X-Model-Version"] == done.result["version"]


def test_a_failing_task_on_the_worker_is_marked_failed(app, htmx_client, auth):
    auth.login("admin")  # no nights: the task raises inside the worker
    assert press_retrain(htmx_client).status_code == 202
    worker = run_worker(app)
    assert worker.returncode == 0, worker.stderr
    with app.app_context():
        job = wait_for_job(jobs.latest_job("retrain", "dough").id, timeout=10)
        assert job.status == "failed"
        assert "need at least 4 training nights" in job.error
        assert registry.active_version("dough") is None


def test_worker_refuses_to_start_with_the_thread_backend(app):
    env = {**os.environ, "JOBS_BACKEND": "thread",
           "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": "x"}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker"],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "need no worker" in result.stderr
