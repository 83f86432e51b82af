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
from sqlalchemy.exc import InterfaceError, OperationalError

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
                try:
                    _update(self._job_id, heartbeat_at=utcnow())
                except (OperationalError, InterfaceError):
                    # A lost connection (database restart) must not stop the beats for good:
                    # the job would then look dead and be reaped while it still runs.
                    log.warning("Job %s: heartbeat not recorded; trying again in %s s",
                                self._job_id, self._interval, exc_info=True)
                finally:
                    db.session.remove()


def run_job(app, job_id: str) -> None:
    """Run the job ``job_id`` to completion, recording progress and the outcome."""
    job = db.session.get(Job, job_id)
    if job is None or job.status != "queued":
        log.warning("Job %s is not queued (%s); not running it", job_id, job and job.status)
        return
    task, params = TASKS.get(job.kind), dict(job.params or {})
    if not _claim(job_id):
        log.warning("Job %s was taken or reaped meanwhile; not running it", job_id)
        return

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


def _claim(job_id: str) -> bool:
    """Move the job from queued to running; False when it is no longer queued.

    One conditional UPDATE, so a job the reaper failed meanwhile is not resurrected, and two
    workers handed the same id cannot both run it.
    """
    now = utcnow()
    claimed = db.session.execute(
        update(Job).where(Job.id == job_id, Job.status == "queued")
        .values(status="running", started_at=now, heartbeat_at=now, message="Started"))
    db.session.commit()
    return claimed.rowcount == 1


def _finish(job_id: str, status: str, *conditions, **values) -> int:
    """Record the outcome and free the dedupe key; return 1 if the row matched ``conditions``."""
    finished = db.session.execute(
        update(Job).where(Job.id == job_id, *conditions)
        .values(status=status, finished_at=utcnow(), dedupe_key=None, **values))
    db.session.commit()
    return finished.rowcount


UNFINISHED = ("queued", "running")


def fail_unfinished(job_id: str, error: str) -> bool:
    """Mark the job failed with ``error`` unless it already finished; True if it was marked.

    For a worker that saw the process running the job die (e.g. the work-horse SIGKILLed).
    """
    return _finish(job_id, "failed", Job.status.in_(UNFINISHED),
                   message="Failed", error=error) == 1


def reap_stale_jobs(stale_after_seconds: float, queued: bool = True) -> int:
    """Mark failed every unfinished job whose worker is gone; return how many.

    A worker that died (killed, crashed, redeployed) leaves its job running forever; this makes
    that visible and frees its dedupe key so the work can be started again. A running job is
    stale when its heartbeat stopped for ``stale_after_seconds``. A queued job is stale when it
    waited that long *and* no job showed a sign of life meanwhile: behind a long job that
    still beats, it is only waiting its turn. ``queued=False`` leaves queued jobs alone (a
    worker that is starting is about to run them).
    """
    cutoff = utcnow() - timedelta(seconds=stale_after_seconds)
    queue_stuck = queued and not _any_heartbeat_since(cutoff)
    running_stale = (Job.status == "running") & (
        db.func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at) < cutoff)
    reaped = _reap(running_stale,
                   f"No heartbeat for over {int(stale_after_seconds)} s: the worker running "
                   "this job stopped (restarted or killed). Start it again.")
    if queue_stuck:
        reaped += _reap((Job.status == "queued") & (Job.created_at < cutoff),
                        f"No worker started this job within {int(stale_after_seconds)} s (is "
                        "a job worker running?). Start it again.")
    return reaped


def _any_heartbeat_since(cutoff) -> bool:
    """True when some job beat after ``cutoff``: a worker was alive and busy meanwhile.

    A job's start and each progress step count as beats; the reaper's own verdicts do not.
    """
    beat = select(Job.id).where(Job.heartbeat_at >= cutoff).limit(1)
    return db.session.scalar(beat) is not None


def _reap(stale, error: str) -> int:
    """Fail the jobs matching ``stale``; the UPDATE re-checks it, so a job that comes back to
    life (or finishes) between the SELECT and the UPDATE is left alone."""
    ids = list(db.session.scalars(select(Job.id).where(stale)))
    return sum(_finish(job_id, "failed", stale, message="Failed", error=error) for job_id in ids)
