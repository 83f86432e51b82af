"""Running a job: status, progress and heartbeat bookkeeping around a task function.

A task is a plain function ``task(progress, **params) -> dict``. ``run_job`` is what both
backends call, inside an app context; it never lets an exception escape silently: a task that
raises marks its job failed with the error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update

from webapp.auth.models import utcnow
from webapp.extensions import db
from webapp.jobs.models import Job

log = logging.getLogger(__name__)

#: kind -> task function; features register their tasks in create_app.
TASKS: dict[str, Callable[..., dict]] = {}


def register_task(kind: str, task: Callable[..., dict]) -> None:
    """Make ``task`` runnable as jobs of ``kind``."""
    TASKS[kind] = task


def _update(job_id: str, **values) -> None:
    """Write job fields in their own short transaction, visible to every process at once."""
    db.session.execute(update(Job).where(Job.id == job_id).values(**values))
    db.session.commit()


class Heartbeat:
    """Beats every ``interval`` seconds in a thread, so a long step never looks stale."""

    def __init__(self, app, job_id: str, interval: float):
        self._app, self._job_id, self._interval = app, job_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"heartbeat-{job_id[:8]}"
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._app.app_context():
                _update(self._job_id, heartbeat_at=utcnow())
                db.session.remove()


def run_job(app, job_id: str) -> None:
    """Run the job ``job_id`` to completion, recording progress and the outcome."""
    job = db.session.get(Job, job_id)
    if job is None or job.status != "queued":
        log.warning("Job %s is not queued (%s); not running it", job_id, job and job.status)
        return
    task, params = TASKS.get(job.kind), dict(job.params or {})
    now = utcnow()
    _update(job_id, status="running", started_at=now, heartbeat_at=now, message="Started")

    def progress(percent: int, message: str) -> None:
        _update(job_id, progress=max(0, min(100, int(percent))), message=message[:300],
                heartbeat_at=utcnow())

    try:
        if task is None:
            raise LookupError(f"No task is registered for jobs of kind {job.kind!r}.")
        with Heartbeat(app, job_id, app.config["JOB_HEARTBEAT_SECONDS"]):
            result = task(progress, **params)
    except Exception as error:  # any failure must land in the job row, never vanish
        db.session.rollback()
        log.exception("Job %s (%s) failed", job_id, job.kind)
        _finish(job_id, "failed", message="Failed", error=f"{type(error).__name__}: {error}")
        return
    _finish(job_id, "succeeded", message="Done", result=result, progress=100)


def _finish(job_id: str, status: str, **values) -> None:
    _update(job_id, status=status, finished_at=utcnow(), dedupe_key=None, **values)


def reap_stale_jobs(stale_after_seconds: float) -> int:
    """Mark failed every unfinished job whose heartbeat stopped; return how many.

    A worker that died (killed, crashed, redeployed) leaves its job queued or running forever;
    this makes that visible and frees its dedupe key so the work can be started again.
    """
    cutoff = utcnow() - timedelta(seconds=stale_after_seconds)
    last_sign_of_life = db.func.coalesce(Job.heartbeat_at, Job.created_at)
    stale = select(Job.id).where(
        Job.status.in_(("queued", "running")), last_sign_of_life < cutoff
    )
    ids = list(db.session.scalars(stale))
    for job_id in ids:
        _finish(job_id, "failed", message="Failed",
                error=f"No heartbeat for over {int(stale_after_seconds)} s: the worker running "
                      "this job stopped (restarted or killed). Start it again.")
    return len(ids)
