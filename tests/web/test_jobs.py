"""Jobs: the thread backend, dedupe, stale jobs, failing tasks."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from tests.support import clear_tables, wait_for_job
from webapp import jobs
from webapp.auth.models import utcnow
from webapp.extensions import db
from webapp.jobs.models import Job
from webapp.jobs.runner import TASKS, register_task


@pytest.fixture
def gate():
    """A task that waits until the test opens the gate, so a job stays 'running'."""
    opened, started = threading.Event(), threading.Event()

    def blocking_task(progress, **params):
        progress(50, "Waiting at the gate")
        started.set()
        assert opened.wait(10), "the test never opened the gate"
        return {"echo": params}

    register_task("test-block", blocking_task)
    yield opened, started
    opened.set()
    TASKS.pop("test-block", None)


def test_job_runs_in_the_background_and_records_its_result(app, gate):
    opened, started = gate
    with app.app_context():
        job, created = jobs.enqueue("test-block", {"x": 1}, dedupe_key="k", created_by="me")
        assert created and job.status == "queued"
        assert started.wait(5)
        running = jobs.get_job(job.id)
        assert running.status == "running" and running.progress == 50
        assert running.heartbeat_at is not None
        opened.set()
        done = wait_for_job(job.id)
        assert done.status == "succeeded" and done.result == {"echo": {"x": 1}}
        assert done.progress == 100 and done.dedupe_key is None and done.finished_at


def test_second_press_returns_the_running_job(app, gate):
    opened, started = gate
    with app.app_context():
        first, created_first = jobs.enqueue("test-block", {}, dedupe_key="retrain:dough")
        second, created_second = jobs.enqueue("test-block", {}, dedupe_key="retrain:dough")
        assert created_first and not created_second
        assert second.id == first.id
        assert db.session.query(Job).count() == 1
        opened.set()
        wait_for_job(first.id)
        third, created_third = jobs.enqueue("test-block", {}, dedupe_key="retrain:dough")
        assert created_third and third.id != first.id  # the key is free once the job is done
        wait_for_job(third.id)


def test_concurrent_presses_start_one_job(app, gate):
    opened, _ = gate
    results = []

    def press():
        with app.app_context():
            job, created = jobs.enqueue("test-block", {}, dedupe_key="retrain:dough")
            results.append((job.id, created))
            db.session.remove()

    threads = [threading.Thread(target=press) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    opened.set()


def test_job_that_raises_is_marked_failed_with_its_error(app):
    def broken(progress, **params):
        progress(30, "About to fail")
        raise ZeroDivisionError("the sums went wrong")

    register_task("test-broken", broken)
    try:
        with app.app_context():
            job, _ = jobs.enqueue("test-broken", {}, dedupe_key="broken")
            done = wait_for_job(job.id)
            assert done.status == "failed"
            assert done.error == "ZeroDivisionError: the sums went wrong"
            assert done.dedupe_key is None  # a retry can start
    finally:
        TASKS.pop("test-broken", None)


def test_unknown_task_kind_fails_clearly(app):
    with app.app_context():
        job, _ = jobs.enqueue("no-such-task", {})
        done = wait_for_job(job.id)
        assert done.status == "failed" and "No task is registered" in done.error


def test_stale_job_is_marked_failed_and_frees_its_key(app):
    with app.app_context():
        long_ago = utcnow() - timedelta(minutes=10)
        db.session.add(Job(id="dead" * 8, kind="retrain", status="running", progress=40,
                           dedupe_key="retrain:dough", created_at=long_ago,
                           heartbeat_at=long_ago))
        db.session.add(Job(id="live" * 8, kind="retrain", status="running",
                           heartbeat_at=utcnow(), dedupe_key="retrain:games"))
        db.session.commit()
        assert jobs.reap_stale_jobs(60) == 1
        dead, live = jobs.get_job("dead" * 8), jobs.get_job("live" * 8)
        assert dead.status == "failed" and "No heartbeat for over 60 s" in dead.error
        assert dead.dedupe_key is None
        assert live.status == "running"


def test_enqueue_reaps_a_stale_job_holding_the_key(app):
    register_task("test-quick", lambda progress, **params: {"ok": True})
    try:
        with app.app_context():
            long_ago = utcnow() - timedelta(hours=1)
            db.session.add(Job(id="dead" * 8, kind="test-quick", status="queued",
                               dedupe_key="quick", created_at=long_ago))
            db.session.commit()
            job, created = jobs.enqueue("test-quick", {}, dedupe_key="quick")
            assert created and job.id != "dead" * 8
            assert wait_for_job(job.id).status == "succeeded"
    finally:
        TASKS.pop("test-quick", None)


def test_rq_backend_with_redis_down_says_so_and_marks_the_job_failed(app_config, tmp_path):
    from webapp import create_app

    app_config.update(JOBS_BACKEND="rq", REDIS_URL="redis://127.0.0.1:1/0")
    app = create_app(app_config)
    with app.app_context():
        with pytest.raises(jobs.QueueUnavailable, match="job queue .* is unavailable"):
            jobs.enqueue("retrain", {"kind": "dough"}, dedupe_key="retrain:dough")
        job = db.session.query(Job).one()
        assert job.status == "failed" and "unavailable" in job.error
        assert job.dedupe_key is None
        db.session.remove()
        clear_tables(db)  # this app is not the `app` fixture, which would clean up itself
        db.engine.dispose()


def test_reap_command_marks_stale_jobs_failed(app, runner):
    with app.app_context():
        long_ago = utcnow() - timedelta(minutes=5)
        db.session.add(Job(id="gone" * 8, kind="retrain", status="running",
                           created_at=long_ago, heartbeat_at=long_ago))
        db.session.commit()
    result = runner.invoke(args=["jobs", "reap"])
    assert result.exit_code == 0 and "Marked 1 stale job(s) failed." in result.output
    with app.app_context():
        assert jobs.get_job("gone" * 8).status == "failed"
