"""Background jobs behind one API, whatever runs them.

``JOBS_BACKEND=thread`` (default) runs jobs one at a time in a thread of the web process.
``JOBS_BACKEND=rq`` sends job ids to Redis, where ``flask jobs worker`` processes on any host run
the same task functions. The UI only reads the ``job`` table, so it behaves the same either way.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.jobs.models import Job
from webapp.jobs.runner import _finish, reap_stale_jobs, run_job

log = logging.getLogger(__name__)


class QueueUnavailable(RuntimeError):
    """The job queue cannot take work (Redis down); the message says so plainly."""


class ThreadBackend:
    """A single-worker executor in this process: jobs run one at a time, in order."""

    def __init__(self, app):
        self._app = app
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-job")

    def submit(self, job_id: str) -> None:
        """Queue ``job_id`` on the executor."""
        self._executor.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        with self._app.app_context():
            try:
                run_job(self._app, job_id)
            finally:
                db.session.remove()

    def shutdown(self) -> None:
        """Wait for the running job and stop (tests and clean exits)."""
        self._executor.shutdown(wait=True)


class RQBackend:
    """Redis + RQ: any number of ``flask jobs worker`` processes, on any host."""

    def __init__(self, app):
        from redis import Redis
        from rq import Queue

        connection = Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=2)
        self.queue = Queue(app.config["RQ_QUEUE"], connection=connection)

    def submit(self, job_id: str) -> None:
        """Put ``job_id`` on the Redis queue; QueueUnavailable when Redis does not answer."""
        from redis.exceptions import RedisError

        try:
            self.queue.enqueue(
                "webapp.jobs.worker.perform", job_id, job_id=job_id,
                job_timeout=current_app.config["JOB_TIMEOUT_SECONDS"],
            )
        except RedisError as error:
            raise QueueUnavailable(
                f"The job queue (Redis at {current_app.config['REDIS_URL']}) is unavailable: "
                f"{error}. Nothing was started."
            ) from error

    def shutdown(self) -> None:
        """Nothing to stop in the web process: the workers run elsewhere."""


BACKENDS = {"thread": ThreadBackend, "rq": RQBackend}


def backend():
    """This app's backend, created on first use (never at import or start-up)."""
    app = current_app._get_current_object()
    jobs = app.extensions.setdefault("curate_jobs", {})
    if "backend" not in jobs:
        jobs["backend"] = BACKENDS[app.config["JOBS_BACKEND"]](app)
    return jobs["backend"]


def enqueue(kind: str, params: dict, dedupe_key: str | None = None,
            created_by: str | None = None, subject: str | None = None) -> tuple[Job, bool]:
    """Start a job, or return the unfinished one with the same ``dedupe_key``.

    Returns ``(job, created)``. Raises QueueUnavailable (and marks the job failed) when the
    backend cannot take it.
    """
    reap_stale_jobs(current_app.config["JOB_STALE_SECONDS"])
    for _ in range(3):  # the running twin may finish between our insert and our lookup
        job = Job(kind=kind, subject=subject, params=params, dedupe_key=dedupe_key,
                  created_by=created_by)
        db.session.add(job)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            twin = db.session.scalar(select(Job).where(Job.dedupe_key == dedupe_key))
            if twin is not None:
                return twin, False
            continue
        _submit(job)
        return job, True
    raise RuntimeError(f"Could not start or find the job for {dedupe_key!r}.")


def _submit(job: Job) -> None:
    try:
        backend().submit(job.id)
    except QueueUnavailable as error:
        _finish(job.id, "failed", message="Failed", error=str(error))
        raise


def get_job(job_id: str) -> Job | None:
    """The job with ``job_id``, fresh from the database."""
    db.session.expire_all()
    return db.session.get(Job, job_id)


def running_job(dedupe_key: str) -> Job | None:
    """The unfinished job holding ``dedupe_key``, if any."""
    return db.session.scalar(select(Job).where(Job.dedupe_key == dedupe_key))


def latest_job(kind: str, subject: str) -> Job | None:
    """The newest job of ``kind`` about ``subject`` (e.g. the latest retrain of "dough")."""
    query = (select(Job).where(Job.kind == kind, Job.subject == subject)
             .order_by(Job.created_at.desc(), Job.id).limit(1))
    return db.session.scalar(query)


def recent_failures(kind: str, subject: str, limit: int = 3) -> list[Job]:
    """The newest failed jobs of ``kind`` about ``subject``."""
    query = (select(Job).where(Job.kind == kind, Job.subject == subject, Job.status == "failed")
             .order_by(Job.created_at.desc()).limit(limit))
    return list(db.session.scalars(query))


__all__ = [
    "Job", "QueueUnavailable", "backend", "enqueue", "get_job", "latest_job",
    "reap_stale_jobs", "recent_failures", "run_job", "running_job",
]
