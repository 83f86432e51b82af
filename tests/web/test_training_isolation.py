"""Training runs in a nicer child process with the thread backend, so web workers keep serving."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support import add_nights, demo_year_nights, wait_for_job
from webapp import jobs, registry
from webapp.ml_bridge import isolation


def where_and_how_nice(data, **params) -> dict:
    """A stand-in fit: which process ran it, at what niceness, with what arguments."""
    return {"pid": os.getpid(), "nice": os.nice(0), "data": data, "params": params}


def refuse(data, **params):
    """A fit that fails the way a real one does on bad data."""
    raise ValueError(f"cannot fit {data!r}")


def die(data, **params):
    """A fit whose process is killed (the out-of-memory killer, an operator)."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_thread_backend_fits_in_a_nicer_child_process(app):
    with app.app_context():
        result = isolation.run_training(where_and_how_nice, [1, 2], degree=3)
    assert result["pid"] != os.getpid()
    assert result["nice"] == min(19, os.nice(0) + app.config["JOB_NICE"])
    assert result["data"] == [1, 2] and result["params"] == {"degree": 3}


@pytest.mark.parametrize("setting", [{"TRAIN_IN_CHILD_PROCESS": False}, {"JOBS_BACKEND": "rq"}])
def test_training_runs_in_place_when_switched_off_or_already_in_a_worker(app, setting):
    app.config.update(setting)
    with app.app_context():
        assert isolation.run_training(where_and_how_nice, None)["pid"] == os.getpid()


def test_a_failing_fit_raises_its_own_error(app):
    with app.app_context(), pytest.raises(ValueError, match="cannot fit 'bad'"):
        isolation.run_training(refuse, "bad")


def test_a_killed_training_process_fails_clearly_and_the_next_one_works(app):
    with app.app_context():
        with pytest.raises(isolation.TrainingProcessDied, match="active model is unchanged"):
            isolation.run_training(die, None)
        assert isolation.run_training(where_and_how_nice, None)["pid"] != os.getpid()


def test_a_retrain_job_fits_in_a_child_and_publishes(app, monkeypatch):
    calls = []
    real = isolation.run_training
    monkeypatch.setattr("webapp.ml_bridge.run_training",
                        lambda train, data, **kw: calls.append(kw) or real(train, data, **kw))
    with app.app_context():
        add_nights(demo_year_nights())
        job, _ = jobs.enqueue("retrain", {"kind": "dough", "trained_by": "test"},
                              subject="dough")
        done = wait_for_job(job.id, timeout=60)
        assert done.status == "succeeded", done.error
        assert registry.active_version("dough") is not None
    # The settings were read in the job's app context and handed to the child as arguments.
    assert "excluded_weekdays" in calls[0]
