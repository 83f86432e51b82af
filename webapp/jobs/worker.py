"""The RQ side: the function workers run, and ``flask jobs worker``.

A task builds its own app context from the worker's app, so it runs exactly as in the thread
backend (``run_job``). RQ forks a work-horse per job: a crash in training cannot take the worker
down. When the horse is killed (the out-of-memory killer, ``kill -9``), the worker marks its job
failed at once (``horse_killed``). When the worker dies with it, nobody is left to say so: the
job's heartbeat stops, and the reaper marks it failed after ``JOB_STALE_SECONDS`` (the Models
page, the next retrain, ``flask jobs reap``, or the next worker to start).
"""

from __future__ import annotations

import os
import signal

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from webapp.extensions import db
from webapp.jobs.runner import fail_unfinished, reap_stale_jobs, run_job
from webapp.ml_bridge.isolation import lower_priority

jobs_cli = AppGroup("jobs", help="Background jobs.")

_worker_app = {}  # the app of this worker process, set once by `flask jobs worker`


def perform(job_id: str) -> None:
    """RQ entry point: run ``job_id`` inside the worker's app context."""
    app = _worker_app.get("app")
    if app is None:  # a worker started with plain `rq worker`: build the app from the env
        from webapp import create_app

        app = _worker_app.setdefault("app", create_app())
    with app.app_context():
        try:
            run_job(app, job_id)
        finally:
            db.session.remove()


def describe_exit(wait_status: int | None) -> str:
    """How a work-horse ended, from its ``waitpid`` status ("killed by SIGKILL", "exit code 1")."""
    if wait_status is not None and os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    if wait_status is not None and os.WIFEXITED(wait_status):
        return f"exit code {os.WEXITSTATUS(wait_status)}"
    return "an unknown cause"


def horse_killed(rq_job, _pid, wait_status, _rusage) -> None:
    """RQ's ``work_horse_killed_handler``: the process running the job died before finishing.

    Runs in the worker, which survived its horse, so the job is failed now rather than after
    ``JOB_STALE_SECONDS``. RQ job ids are Curate job ids (see ``RQBackend.submit``).
    """
    with _worker_app["app"].app_context():
        try:
            fail_unfinished(rq_job.id, (
                f"The process running this job stopped before it finished "
                f"({describe_exit(wait_status)}; out of memory, or stopped by an operator). "
                "Anything it had not saved is lost; start it again."))
        finally:
            db.session.remove()


@jobs_cli.command("reap")
@with_appcontext
def reap_command() -> None:
    """Mark failed the jobs whose worker died (no heartbeat for JOB_STALE_SECONDS)."""
    reaped = reap_stale_jobs(current_app.config["JOB_STALE_SECONDS"])
    click.echo(f"Marked {reaped} stale job(s) failed.")


@jobs_cli.command("worker")
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run an RQ worker for Curate's queue (JOBS_BACKEND=rq)."""
    from redis import Redis
    from rq import Queue, Worker

    app = current_app._get_current_object()
    if app.config["JOBS_BACKEND"] != "rq":
        raise click.ClickException(
            "JOBS_BACKEND is 'thread': jobs run inside the web process and need no worker. "
            "Set JOBS_BACKEND=rq and REDIS_URL to use separate workers."
        )
    _worker_app["app"] = app
    # Training here must not take the CPU from web workers on the same host.
    lower_priority(int(app.config["JOB_NICE"]))
    # Running jobs with no heartbeat belong to a worker that died; queued ones are what this
    # worker is about to run, however long they waited for it.
    reaped = reap_stale_jobs(app.config["JOB_STALE_SECONDS"], queued=False)
    if reaped:
        click.echo(f"Marked {reaped} stale job(s) failed.")
    connection = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue(app.config["RQ_QUEUE"], connection=connection)
    click.echo(f"Worker listening on {app.config['REDIS_URL']} queue {queue.name!r}")
    worker = Worker([queue], connection=connection, work_horse_killed_handler=horse_killed)
    worker.work(burst=burst, with_scheduler=False)
