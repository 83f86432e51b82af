"""Training in a child process, at a lower CPU priority, so the web workers are not starved.

With ``JOBS_BACKEND=thread`` (the one-machine default) a retrain runs in a thread of a web
worker. Fitting a model holds the interpreter for seconds at a time, so the requests that worker
serves meanwhile would wait for it. Here only the fit itself moves to a child process: the
job thread still reads the data, publishes the artefact and records the version, and it waits
on the child without holding anything up. The child runs with ``nice`` ``JOB_NICE``, so on a
busy machine the web workers get the CPU first.

The children are forked from a ``forkserver`` that has already imported the ML libraries (a
child starts in tens of milliseconds) and never from the threaded web worker itself. Each child
trains once and exits, so a 1M-row fit gives its memory back. The train functions are the
model kinds' own, picklable by reference; their exceptions reach the job unchanged.

With ``JOBS_BACKEND=rq`` the work-horse RQ forks per job is already a process of its own, and
``flask jobs worker`` lowers its own priority, so training runs there in place.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from flask import current_app

#: Modules the forkserver imports once, so that each training child starts warm.
PRELOAD = ["numpy", "sklearn", "ml.dough", "ml.games", "ml.label_model", "ml.gift_model",
           "webapp.ml_bridge.dough", "webapp.ml_bridge.games", "webapp.ml_bridge.labels",
           "webapp.ml_bridge.gift_model"]

_lock = threading.Lock()
_executors: dict[int, ProcessPoolExecutor] = {}  # by niceness (one in practice)


class TrainingProcessDied(RuntimeError):
    """The training child was killed (out of memory, a signal) before it returned."""


def lower_priority(nice: int) -> None:
    """Make this process ``nice`` steps nicer (a no-op for 0)."""
    if nice:
        os.nice(nice)


def _executor(nice: int) -> ProcessPoolExecutor:
    """This process's executor for training children, created on first use."""
    with _lock:
        executor = _executors.get(nice)
        if executor is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            executor = ProcessPoolExecutor(max_workers=1, mp_context=context,
                                           initializer=lower_priority, initargs=(nice,),
                                           max_tasks_per_child=1)
            _executors[nice] = executor
        return executor


def _forget(nice: int, executor: ProcessPoolExecutor) -> None:
    """Drop a broken executor, so the next retrain starts a fresh one."""
    with _lock:
        if _executors.get(nice) is executor:
            del _executors[nice]
    executor.shutdown(wait=False, cancel_futures=True)


def run_training(train: Callable[..., object], data, **params) -> object:
    """``train(data, **params)``: in a child process for the thread backend, else in place."""
    config = current_app.config
    if config["JOBS_BACKEND"] != "thread" or not config["TRAIN_IN_CHILD_PROCESS"]:
        return train(data, **params)
    nice = int(config["JOB_NICE"])
    executor = _executor(nice)
    try:
        return executor.submit(train, data, **params).result()
    except BrokenProcessPool as error:
        _forget(nice, executor)
        raise TrainingProcessDied(
            "The training process stopped before it finished (killed, or out of memory). "
            "The active model is unchanged; retrain to try again.") from error


def shutdown() -> None:
    """Stop the training children (tests and clean exits)."""
    with _lock:
        executors = list(_executors.values())
        _executors.clear()
    for executor in executors:
        executor.shutdown(wait=True)
