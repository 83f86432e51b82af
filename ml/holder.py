"""A per-process model cache that follows the active version and swaps without blocking readers.

Each worker process keeps one :class:`ModelHolder` per model kind. The database says which
version is active; the holder asks at most once per ``check_interval`` and, when the answer
changes, loads the new version and swaps a single reference. Requests already holding the old
:class:`Served` pair finish on it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Served:
    """A model and the version it was loaded as, kept together so they never disagree.

    Parameters
    ----------
    version : str
        The artefact version.
    model : object
        The loaded model.
    """

    version: str
    model: object


class ModelUnavailable(Exception):
    """No model of this kind can be served yet."""


class NotTrained(ModelUnavailable):
    """Nothing has been loaded and no version is active.

    Parameters
    ----------
    kind : str
        The model kind.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(f"{kind} model not trained yet")
        self.kind = kind


class LoadFailed(ModelUnavailable):
    """Nothing has been loaded and the active version failed to load.

    Parameters
    ----------
    kind : str
        The model kind.
    version : str
        The version that failed.
    error : Exception
        Why it failed.
    """

    def __init__(self, kind: str, version: str, error: Exception) -> None:
        super().__init__(f"{kind} model {version} could not be loaded: {error}")
        self.kind = kind
        self.version = version
        self.error = error


class ModelHolder:
    """Serve the active version of one model kind, reloading when it changes.

    Parameters
    ----------
    kind : str
        Model kind, used in messages and reports.
    active_version : callable
        ``active_version() -> (version, sha256) | None``: the active version and its recorded
        digest, or None when nothing has been trained. In the app this queries the database.
    loader : callable
        ``loader(version, sha256) -> model``, raising when the artefact cannot be used. In the
        app this is ``store.load(...).model``.
    check_interval : float, default 1.0
        Least time, in ``clock`` units, between two calls to ``active_version``.
    clock : callable, default time.monotonic
        Source of the current time.
    on_load_error : callable, optional
        ``on_load_error(kind, version, exc)``, called once per version that fails to load, for
        instance to mark it failed in the database. Failures are logged either way.

    Notes
    -----
    Only one thread checks or loads at a time, under a lock that readers try without waiting:
    while another thread is loading, a reader gets the model already served. A reader waits
    only at a cold start, when there is nothing to serve. The active version is read inside the
    lock, so two threads never load the same version. A version that fails to load is not tried
    again, so a broken artefact costs one attempt, not one per interval.
    """

    def __init__(
        self,
        kind: str,
        active_version: Callable[[], tuple[str, str] | None],
        loader: Callable[[str, str], object],
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_load_error: Callable[[str, str, Exception], None] | None = None,
    ) -> None:
        if not check_interval >= 0:
            raise ValueError(f"check_interval must be 0 or more, got {check_interval!r}")
        self.kind = kind
        self._active_version = active_version
        self._loader = loader
        self._check_interval = check_interval
        self._clock = clock
        self._on_load_error = on_load_error
        self._lock = threading.Lock()
        self._served: Served | None = None
        self._next_check: float | None = None
        self._last_active: tuple[str, str] | None = None
        self._failed: dict[str, Exception] = {}

    @property
    def served_version(self) -> str | None:
        """The version being served, or None before the first load."""
        served = self._served
        return None if served is None else served.version

    def get(self) -> Served:
        """Return the model to use for one request.

        Returns
        -------
        Served
            The version and model; keep this pair for the whole request.

        Raises
        ------
        NotTrained
            If nothing has been loaded and no version is active.
        LoadFailed
            If nothing has been loaded and the active version failed to load.
        Exception
            Whatever ``active_version`` raised, if nothing has been loaded yet.
        """
        served = self._served
        # With nothing to serve, go through the lock even when no check is due: another
        # thread may be loading the first model right now, and this reader should wait for it.
        if served is None or self._check_due():
            self._refresh(wait=served is None)
            served = self._served
        if served is None:
            raise self._unavailable()
        return served

    def invalidate(self, retry_failed: bool = False) -> None:
        """Make the next :meth:`get` check the active version, whatever the interval.

        Parameters
        ----------
        retry_failed : bool, default False
            Also forget versions that failed to load, so they are tried again (for example
            after an operator has restored a damaged file).
        """
        if retry_failed:
            self._failed = {}
        self._next_check = None

    def _check_due(self) -> bool:
        next_check = self._next_check
        return next_check is None or self._clock() >= next_check

    def _refresh(self, wait: bool) -> None:
        if not self._lock.acquire(blocking=wait):
            return
        try:
            # Another thread may have checked while this one waited for the lock.
            if not self._check_due():
                return
            self._next_check = self._clock() + self._check_interval
            active = self._read_active()
            if active is not None:
                self._load_if_new(*active)
        finally:
            self._lock.release()

    def _read_active(self) -> tuple[str, str] | None:
        try:
            active = self._active_version()
        except Exception:
            if self._served is None:
                # With nothing to serve the caller must see the real error, so the next call
                # should ask again rather than wait out the interval.
                self._next_check = None
                raise
            logger.warning(
                "could not read the active %s model version; still serving %s",
                self.kind,
                self.served_version,
                exc_info=True,
            )
            return None
        self._last_active = active
        return active

    def _load_if_new(self, version: str, sha256: str) -> None:
        if version == self.served_version or version in self._failed:
            return
        try:
            model = self._loader(version, sha256)
        except Exception as exc:
            self._failed[version] = exc
            self._report_failure(version, exc)
            return
        self._served = Served(version=version, model=model)
        logger.info("serving %s model %s", self.kind, version)

    def _report_failure(self, version: str, exc: Exception) -> None:
        logger.error(
            "could not load %s model %s; still serving %s: %s",
            self.kind,
            version,
            self.served_version,
            exc,
        )
        if self._on_load_error is None:
            return
        try:
            self._on_load_error(self.kind, version, exc)
        except Exception:
            # A broken report must not fail the request being served; it is logged instead.
            logger.exception("on_load_error failed for %s model %s", self.kind, version)

    def _unavailable(self) -> ModelUnavailable:
        active = self._last_active
        if active is not None and active[0] in self._failed:
            return LoadFailed(self.kind, active[0], self._failed[active[0]])
        return NotTrained(self.kind)
