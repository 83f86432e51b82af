"""What every trainer hands back, whatever the model kind.

:class:`TrainedModel` is the plain record that crosses from a training function to
:func:`ml.store.publish`; :func:`data_hash` fingerprints the rows a model was trained on, so two
artefacts can be compared by their data as well as by their metrics.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Iterable
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A fitted model with the facts needed to publish it.

    Parameters
    ----------
    model : object
        The fitted model. It must have ``predict(smoke_input)`` and be picklable by joblib.
    metrics : dict
        Hold-out metrics, for example ``{"mae": ..., "rmse": ..., "r2": ...}``.
    params : dict
        The training settings, JSON-serialisable.
    training_rows : int
        Number of rows the published model was fitted on.
    data_hash : str
        :func:`data_hash` of those rows.
    smoke_input : list
        A small JSON-serialisable input for ``model.predict``. Its output is recorded at
        publish time and checked again at every load.
    """

    model: object
    metrics: dict
    params: dict
    training_rows: int
    data_hash: str
    smoke_input: list


def data_hash(rows: Iterable[Any]) -> str:
    """Fingerprint training rows, in order.

    Parameters
    ----------
    rows : iterable
        Rows made of dataclasses, dicts, sequences, numpy values, dates and JSON scalars.

    Returns
    -------
    str
        SHA-256 hex digest of a canonical JSON form. Row order counts, because a chronological
        split depends on it; ``1`` and ``1.0`` differ, because they are different data.

    Raises
    ------
    TypeError
        If a row holds a value with no canonical form.
    """
    canonical = json.dumps([_canonical(row) for row in rows], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> Any:
    """Turn ``value`` into JSON-ready data that means the same on every run and platform."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, np.ndarray | np.generic):
        return _canonical(value.tolist())
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot fingerprint a {type(value).__name__} in training rows")
