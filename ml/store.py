"""Versioned model artefacts, published atomically and verified before use.

Layout: ``<model_dir>/<kind>/<version>.joblib`` holds the pickled model and
``<model_dir>/<kind>/<version>.json`` its metadata (:class:`ArtefactMeta`). Each file is written
to a temporary file in the same folder and moved into place with :func:`os.replace`, the model
first and the metadata last, so a metadata file's presence means the artefact is complete. An
artefact is immutable: a version is never overwritten.

Security: unpickling runs code. Load only files this app wrote itself, never an uploaded model.
:func:`load` checks the SHA-256 of the file's bytes against the metadata (and against the
database's copy, when given) *before* unpickling, and unpickles exactly the bytes it checked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import io
import json
import math
import os
import platform
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn

from ml.training import TrainedModel

KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
"""Allowed model kinds (used as a folder name)."""

VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9T_.-]{0,63}")
"""Allowed versions (used as a file name; the first character may not be a dot or dash)."""

SMOKE_TOLERANCE = 1e-9
"""Relative and absolute tolerance when comparing numeric smoke-test outputs."""

CHECKED_LIBRARIES = ("python", "numpy", "scikit-learn")
"""Libraries whose major.minor version must match between publishing and loading."""


# Field annotations are strings under postponed evaluation; these are the JSON types they name.
_JSON_TYPES = {"str": str, "int": int, "dict": dict, "list": list}


class ArtefactError(Exception):
    """Base class for every reason an artefact cannot be published or loaded."""


class InvalidName(ArtefactError, ValueError):
    """A kind or version is not a safe file-system name."""


class ArtefactExists(ArtefactError):
    """The version is already published; artefacts are immutable."""


class ArtefactMissing(ArtefactError):
    """The model file or its metadata is not there."""


class ArtefactTampered(ArtefactError):
    """The model file's SHA-256 differs from the recorded one."""


class LibraryMismatch(ArtefactError):
    """The artefact was made with library versions this process does not run."""


class ArtefactCorrupt(ArtefactError):
    """The metadata is unreadable or the model cannot be unpickled."""


class SmokeTestFailed(ArtefactError):
    """The loaded model no longer gives the outputs it gave when it was published."""


@dataclasses.dataclass(frozen=True)
class ArtefactMeta:
    """Metadata written beside a model file.

    Parameters
    ----------
    kind : str
        Model kind, such as ``"dough"``.
    version : str
        Version, unique within the kind.
    sha256 : str
        SHA-256 hex digest of the model file's bytes.
    created_at : str
        ISO 8601 UTC time of publishing.
    libraries : dict
        Versions of ``python``, ``numpy``, ``scikit-learn`` and ``joblib`` at publishing.
    training_rows : int
        Rows the model was fitted on.
    data_hash : str
        Fingerprint of those rows.
    metrics : dict
        Hold-out metrics; non-finite numbers are stored as None, so the file is strict JSON.
    params : dict
        Training settings.
    smoke_input : list
        Input for the smoke test.
    smoke_output : list
        The model's output for ``smoke_input`` at publishing.
    """

    kind: str
    version: str
    sha256: str
    created_at: str
    libraries: dict
    training_rows: int
    data_hash: str
    metrics: dict
    params: dict
    smoke_input: list
    smoke_output: list

    def to_dict(self) -> dict[str, Any]:
        """Return the metadata as a JSON-ready dict.

        Returns
        -------
        dict
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtefactMeta:
        """Build metadata from :meth:`to_dict` output.

        Parameters
        ----------
        data : dict
            Must hold exactly the dataclass's fields.

        Returns
        -------
        ArtefactMeta

        Raises
        ------
        ValueError
            If ``data`` is not a dict, fields are missing or unexpected, or a field has the
            wrong JSON type.
        """
        if not isinstance(data, dict):
            raise ValueError(f"metadata must be a JSON object, got {type(data).__name__}")
        fields = {field.name: _JSON_TYPES[field.type] for field in dataclasses.fields(cls)}
        missing, extra = sorted(fields.keys() - data.keys()), sorted(data.keys() - fields.keys())
        if missing or extra:
            raise ValueError(f"metadata fields missing: {missing}, unexpected: {extra}")
        wrong = sorted(name for name, kind in fields.items() if not isinstance(data[name], kind))
        if wrong:
            raise ValueError(f"metadata fields with the wrong type: {wrong}")
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class LoadedArtefact:
    """A verified artefact.

    Parameters
    ----------
    meta : ArtefactMeta
        Its metadata.
    model : object
        The unpickled model, which passed its smoke test.
    """

    meta: ArtefactMeta
    model: object


def new_version() -> str:
    """Make a new version string that sorts by creation time.

    Returns
    -------
    str
        A UTC timestamp plus 32 random bits in hex, such as ``"20261127T104512Z-3f9a1c2b"``.
        The random part keeps versions made in the same second by different workers apart.
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(4)}"


def running_libraries() -> dict[str, str]:
    """Report the versions of the libraries that pickled models depend on.

    Returns
    -------
    dict
        ``python``, ``numpy``, ``scikit-learn`` and ``joblib`` versions.
    """
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
    }


def publish(
    model_dir: str | os.PathLike[str],
    kind: str,
    trained: TrainedModel,
    version: str | None = None,
) -> ArtefactMeta:
    """Write a trained model and its metadata as a new, immutable artefact.

    Parameters
    ----------
    model_dir : path-like
        Root folder of all artefacts; created if needed.
    kind : str
        Model kind, matching :data:`KIND_PATTERN`.
    trained : TrainedModel
        The model and its facts. ``trained.model.predict(trained.smoke_input)`` is run now and
        its output recorded for the load-time smoke test.
    version : str, optional
        Version to publish under, matching :data:`VERSION_PATTERN`; defaults to
        :func:`new_version`.

    Returns
    -------
    ArtefactMeta
        The metadata as written.

    Raises
    ------
    InvalidName
        If ``kind`` or ``version`` is not a safe name.
    ArtefactExists
        If the version is already there.
    """
    version = new_version() if version is None else version
    model_path, meta_path = _paths(model_dir, kind, version)
    smoke_output = _plain(trained.model.predict(trained.smoke_input))
    model_path.parent.mkdir(parents=True, exist_ok=True)
    _reserve(model_path, meta_path, kind, version)
    try:
        payload = io.BytesIO()
        joblib.dump(trained.model, payload)
        data = payload.getvalue()
        _write_atomically(model_path, data)
        meta = ArtefactMeta(
            kind=kind,
            version=version,
            sha256=hashlib.sha256(data).hexdigest(),
            created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            libraries=running_libraries(),
            training_rows=int(trained.training_rows),
            data_hash=trained.data_hash,
            metrics=_plain(trained.metrics),
            params=_plain(trained.params),
            smoke_input=_plain(trained.smoke_input),
            smoke_output=smoke_output,
        )
        text = json.dumps(meta.to_dict(), indent=2, sort_keys=True, allow_nan=False)
        _write_atomically(meta_path, text.encode("utf-8"))
    except BaseException:
        # The reservation must not outlive a failed publish, or the version stays blocked.
        if not meta_path.exists():
            model_path.unlink(missing_ok=True)
        raise
    return meta


def load(
    model_dir: str | os.PathLike[str],
    kind: str,
    version: str,
    expected_sha256: str | None = None,
) -> LoadedArtefact:
    """Verify and load an artefact.

    Checks run in this order, and unpickling happens only after the bytes are known to be the
    ones this app wrote: both files exist inside ``model_dir``; the metadata parses; the file's
    SHA-256 matches the metadata and ``expected_sha256``; the Python, numpy and scikit-learn
    major.minor versions match this process; the bytes unpickle; the smoke test reproduces the
    recorded output.

    Parameters
    ----------
    model_dir : path-like
        Root folder of all artefacts.
    kind : str
        Model kind.
    version : str
        Version to load.
    expected_sha256 : str, optional
        The digest recorded elsewhere (the database's copy), which guards against the file and
        its metadata being replaced together.

    Returns
    -------
    LoadedArtefact

    Raises
    ------
    InvalidName, ArtefactMissing, ArtefactCorrupt, ArtefactTampered, LibraryMismatch,
    SmokeTestFailed
        All subclasses of :class:`ArtefactError`, with a message naming the kind, the version
        and the problem.
    """
    model_path, meta_path = _paths(model_dir, kind, version)
    label = f"{kind} model {version}"
    meta = _read_meta(meta_path, label)
    data = _read_bytes(model_path, label)
    _check_digest(hashlib.sha256(data).hexdigest(), meta.sha256, expected_sha256, label)
    _check_libraries(meta.libraries, label)
    try:
        model = joblib.load(io.BytesIO(data))
    except Exception as exc:  # unpickling can fail in any number of ways; all mean corrupt
        raise ArtefactCorrupt(f"{label} could not be unpickled: {exc!r}") from exc
    _smoke_test(model, meta, label)
    return LoadedArtefact(meta=meta, model=model)


def list_versions(model_dir: str | os.PathLike[str], kind: str) -> list[ArtefactMeta]:
    """List a kind's complete artefacts.

    Parameters
    ----------
    model_dir : path-like
        Root folder of all artefacts.
    kind : str
        Model kind.

    Returns
    -------
    list of ArtefactMeta
        Sorted by version (which sorts by creation time for :func:`new_version` versions).
        Empty when the kind has no folder yet.

    Raises
    ------
    ArtefactCorrupt
        If a metadata file cannot be read.
    """
    folder = _kind_dir(model_dir, kind)
    if not folder.is_dir():
        return []
    metas = [
        _read_meta(path, f"{kind} model {path.stem}")
        for path in folder.glob("*.json")
        if VERSION_PATTERN.fullmatch(path.stem)
    ]
    return sorted(metas, key=lambda meta: meta.version)


def delete_temp_files(
    model_dir: str | os.PathLike[str], min_age_seconds: float = 60.0
) -> list[Path]:
    """Remove temporary files left by publishes that crashed.

    Parameters
    ----------
    model_dir : path-like
        Root folder of all artefacts.
    min_age_seconds : float, default 60
        Only files older than this are removed, so a publish running in another process right
        now keeps its temporary file.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    root = Path(model_dir)
    if not root.is_dir():
        return []
    cutoff = time.time() - min_age_seconds
    removed = []
    for path in root.glob("*/*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime <= cutoff:
                path.unlink()
                removed.append(path)
    return removed


def _kind_dir(model_dir: str | os.PathLike[str], kind: str) -> Path:
    if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
        raise InvalidName(f"model kind {kind!r} is not allowed; use {KIND_PATTERN.pattern}")
    return Path(model_dir) / kind


def _paths(model_dir: str | os.PathLike[str], kind: str, version: str) -> tuple[Path, Path]:
    """Return the model and metadata paths, refusing any name that could leave ``model_dir``."""
    folder = _kind_dir(model_dir, kind)
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise InvalidName(
            f"{kind} model version {version!r} is not allowed; use {VERSION_PATTERN.pattern}"
        )
    root = Path(model_dir).resolve()
    model_path, meta_path = folder / f"{version}.joblib", folder / f"{version}.json"
    # The patterns already exclude separators; resolving also catches a symlinked kind folder
    # that points elsewhere.
    for path in (model_path, meta_path):
        if not path.resolve().is_relative_to(root):
            raise InvalidName(f"{kind} model {version} resolves outside the model folder")
    return model_path, meta_path


def _reserve(model_path: Path, meta_path: Path, kind: str, version: str) -> None:
    """Claim the version's file name so that two publishers of one version cannot both win."""
    message = f"{kind} model {version} already exists; artefacts are never overwritten"
    if meta_path.exists():
        raise ArtefactExists(message)
    try:
        fd = os.open(model_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise ArtefactExists(message) from None
    os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _read_meta(meta_path: Path, label: str) -> ArtefactMeta:
    try:
        text = meta_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtefactMissing(f"{label} has no metadata file ({meta_path.name})") from None
    try:
        return ArtefactMeta.from_dict(json.loads(text))
    except (ValueError, TypeError) as exc:
        raise ArtefactCorrupt(f"{label} has unreadable metadata: {exc}") from exc


def _read_bytes(model_path: Path, label: str) -> bytes:
    try:
        return model_path.read_bytes()
    except FileNotFoundError:
        raise ArtefactMissing(f"{label} has no model file ({model_path.name})") from None


def _check_digest(actual: str, recorded: str, expected: str | None, label: str) -> None:
    if actual != str(recorded).lower():
        raise ArtefactTampered(
            f"{label} was changed after publishing: its SHA-256 is {actual}, "
            f"the metadata says {recorded}"
        )
    if expected is not None and actual != expected.lower():
        raise ArtefactTampered(
            f"{label} is not the file the database recorded: its SHA-256 is {actual}, "
            f"the database says {expected}"
        )


def _check_libraries(recorded: dict, label: str) -> None:
    running = running_libraries()
    for name in CHECKED_LIBRARIES:
        if _major_minor(recorded.get(name)) != _major_minor(running[name]):
            raise LibraryMismatch(
                f"{label} was made with {name} {recorded.get(name)} but this process runs "
                f"{running[name]}; retrain it here"
            )


def _major_minor(version: object) -> tuple[str, ...] | None:
    if not isinstance(version, str):
        return None
    return tuple(version.split(".")[:2])


def _smoke_test(model: object, meta: ArtefactMeta, label: str) -> None:
    try:
        output = _plain(model.predict(meta.smoke_input))
    except Exception as exc:  # any failure to predict means the model is unusable
        raise SmokeTestFailed(f"{label} failed its smoke test: predict raised {exc!r}") from exc
    if not _same_output(output, meta.smoke_output):
        raise SmokeTestFailed(
            f"{label} failed its smoke test: predicted {output} for {meta.smoke_input}, "
            f"but {meta.smoke_output} when published"
        )


def _same_output(actual: Any, expected: Any) -> bool:
    """Compare smoke outputs: numbers within :data:`SMOKE_TOLERANCE`, anything else exactly."""
    try:
        left = np.asarray(actual, dtype=float)
        right = np.asarray(expected, dtype=float)
    except (TypeError, ValueError):
        return actual == expected
    if left.shape != right.shape:
        return False
    return bool(
        np.allclose(left, right, rtol=SMOKE_TOLERANCE, atol=SMOKE_TOLERANCE, equal_nan=True)
    )


def _plain(value: Any) -> Any:
    """Convert numpy values and containers to JSON-ready Python; non-finite floats become None."""
    if isinstance(value, np.ndarray | np.generic):
        return _plain(value.tolist())
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
