from __future__ import annotations

import threading
from collections import Counter

import pytest

from ml.holder import LoadFailed, ModelHolder, ModelUnavailable, NotTrained, Served


class Clock:
    """A hand-moved clock, so interval behaviour is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Registry:
    """Plays the database's active-version pointer and the artefact loader, counting calls."""

    def __init__(self, active: str | None = None) -> None:
        self.active = active
        self.reads = 0
        self.loads: Counter[str] = Counter()
        self.broken: set[str] = set()
        self.down = False
        self.lock = threading.Lock()

    def active_version(self) -> tuple[str, str] | None:
        self.reads += 1
        if self.down:
            raise ConnectionError("database is down")
        return None if self.active is None else (self.active, f"sha-{self.active}")

    def loader(self, version: str, sha256: str) -> str:
        assert sha256 == f"sha-{version}"
        with self.lock:
            self.loads[version] += 1
        if version in self.broken:
            raise RuntimeError(f"cannot load {version}")
        return f"model-{version}"


def _holder(registry, clock=None, errors=None, interval=1.0):
    return ModelHolder(
        "dough",
        registry.active_version,
        registry.loader,
        check_interval=interval,
        clock=clock or Clock(),
        on_load_error=None if errors is None else lambda *report: errors.append(report),
    )


def test_not_trained_when_nothing_is_active():
    holder = _holder(Registry())
    with pytest.raises(NotTrained, match="^dough model not trained yet$"):
        holder.get()
    assert holder.served_version is None
    assert issubclass(NotTrained, ModelUnavailable)


def test_cold_start_loads_the_active_version():
    registry = Registry("v1")
    holder = _holder(registry)
    assert holder.get() == Served("v1", "model-v1")
    assert holder.served_version == "v1"


def test_swaps_when_the_version_changes_and_never_reloads_the_same_one():
    clock, registry = Clock(), Registry("v1")
    holder = _holder(registry, clock)
    for _ in range(5):
        assert holder.get().version == "v1"
        clock.now += 2
    registry.active = "v2"
    clock.now += 2
    for _ in range(5):
        assert holder.get() == Served("v2", "model-v2")
        clock.now += 2
    assert registry.loads == {"v1": 1, "v2": 1}


def test_rollback_loads_the_older_version_again():
    clock, registry = Clock(), Registry("v1")
    holder = _holder(registry, clock)
    holder.get()
    registry.active, clock.now = "v2", 5
    holder.get()
    registry.active, clock.now = "v1", 10
    assert holder.get().version == "v1"
    assert registry.loads == {"v1": 2, "v2": 1}


def test_checks_at_most_once_per_interval():
    clock, registry = Clock(), Registry("v1")
    holder = _holder(registry, clock, interval=1.0)
    holder.get()
    registry.active = "v2"
    for step in range(10):
        clock.now = step * 0.099
        assert holder.get().version == "v1"
    assert registry.reads == 1
    clock.now = 1.0
    assert holder.get().version == "v2"
    assert registry.reads == 2


def test_invalidate_forces_a_check():
    clock, registry = Clock(), Registry("v1")
    holder = _holder(registry, clock)
    holder.get()
    registry.active = "v2"
    holder.invalidate()
    assert holder.get().version == "v2"


def test_a_failed_load_keeps_the_old_model_and_is_reported_once():
    clock, registry, errors = Clock(), Registry("v1"), []
    holder = _holder(registry, clock, errors)
    holder.get()
    registry.active = "v2"
    registry.broken.add("v2")
    for _ in range(5):
        clock.now += 2
        assert holder.get() == Served("v1", "model-v1")
    assert registry.loads["v2"] == 1
    assert [(kind, version, str(exc)) for kind, version, exc in errors] == [
        ("dough", "v2", "cannot load v2")
    ]
    registry.active = "v3"
    clock.now += 2
    assert holder.get().version == "v3"


def test_invalidate_can_retry_a_failed_version():
    clock, registry, errors = Clock(), Registry("v1"), []
    holder = _holder(registry, clock, errors)
    registry.broken.add("v1")
    with pytest.raises(LoadFailed, match="dough model v1 could not be loaded: cannot load v1"):
        holder.get()
    registry.broken.clear()
    holder.invalidate()
    with pytest.raises(LoadFailed):
        holder.get()
    holder.invalidate(retry_failed=True)
    assert holder.get().version == "v1"
    assert registry.loads["v1"] == 2
    assert len(errors) == 1


def test_a_failing_reporter_does_not_fail_the_request():
    clock, registry = Clock(), Registry("v1")

    def reporter(kind, version, exc):
        raise ConnectionError("database is down")

    holder = ModelHolder(
        "dough", registry.active_version, registry.loader, clock=clock, on_load_error=reporter
    )
    holder.get()
    registry.active, clock.now = "v2", 5
    registry.broken.add("v2")
    assert holder.get().version == "v1"


def test_an_unreachable_database_keeps_the_current_model():
    clock, registry = Clock(), Registry("v1")
    holder = _holder(registry, clock)
    holder.get()
    registry.down, clock.now = True, 5
    assert holder.get().version == "v1"
    registry.down, registry.active, clock.now = False, "v2", 10
    assert holder.get().version == "v2"


def test_an_unreachable_database_is_raised_when_nothing_is_loaded():
    registry = Registry("v1")
    registry.down = True
    holder = _holder(registry)
    for _ in range(2):
        with pytest.raises(ConnectionError, match="database is down"):
            holder.get()
    assert registry.reads == 2
    registry.down = False
    assert holder.get().version == "v1"


def test_a_disappearing_active_version_keeps_the_current_model():
    clock, registry = Clock(), Registry("v1")
    holder = _holder(registry, clock)
    holder.get()
    registry.active, clock.now = None, 5
    assert holder.get().version == "v1"


def test_readers_are_not_blocked_by_a_load_in_progress():
    clock, registry = Clock(), Registry("v1")
    started, release = threading.Event(), threading.Event()

    def slow_loader(version, sha256):
        if version == "v2":
            started.set()
            assert release.wait(5)
        return registry.loader(version, sha256)

    holder = ModelHolder("dough", registry.active_version, slow_loader, clock=clock)
    holder.get()
    registry.active, clock.now = "v2", 5
    loading = threading.Thread(target=holder.get)
    loading.start()
    assert started.wait(5)
    # The loading thread holds the lock; this call must return at once with the old model.
    assert holder.get() == Served("v1", "model-v1")
    release.set()
    loading.join(5)
    assert holder.get().version == "v2"
    assert registry.loads == {"v1": 1, "v2": 1}


def test_cold_start_readers_wait_for_one_load():
    registry = Registry("v1")
    gate = threading.Barrier(8)

    def slow_loader(version, sha256):
        threading.Event().wait(0.05)
        return registry.loader(version, sha256)

    holder = ModelHolder("dough", registry.active_version, slow_loader, clock=Clock())
    results, failures = [], []

    def read():
        gate.wait(5)
        try:
            results.append(holder.get())
        except Exception as exc:  # collected so the assertion names it
            failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert failures == []
    assert results == [Served("v1", "model-v1")] * 8
    assert registry.loads == {"v1": 1}


def test_many_readers_while_the_version_changes():
    registry = Registry("v0")
    holder = ModelHolder("dough", registry.active_version, registry.loader, check_interval=0.0)
    versions = [f"v{i}" for i in range(6)]
    stop = threading.Event()
    failures: list[BaseException] = []
    seen: list[list[int]] = [[] for _ in range(8)]

    def read(slot):
        try:
            while not stop.is_set():
                served = holder.get()
                assert served.model == f"model-{served.version}"
                seen[slot].append(int(served.version[1:]))
        except BaseException as exc:  # collected so the assertion names it
            failures.append(exc)

    def served_soon(version):
        for _ in range(500):
            if holder.served_version == version:
                return True
            threading.Event().wait(0.002)
        return False

    threads = [threading.Thread(target=read, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for version in versions:
        registry.active = version
        assert served_soon(version), f"readers never picked up {version}"
    stop.set()
    for thread in threads:
        thread.join(5)
    assert failures == []
    assert registry.loads == dict.fromkeys(versions, 1)
    for history in seen:
        assert history == sorted(history), "a reader saw an older version after a newer one"
