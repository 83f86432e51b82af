"""The one crossing point between the web app and ``ml/``.

ORM rows become plain data on the way in; predictions and metrics become template data on the
way out. Each model kind is described by a ``KindSpec``; the retrain task, the per-process
``ModelHolder`` and the promotion gate are shared by every kind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from ml import store
from ml.evaluation import passes_gate
from ml.holder import ModelHolder, ModelUnavailable, Served
from webapp import registry
from webapp.extensions import db
from webapp.ml_bridge.isolation import run_training


@dataclass(frozen=True)
class KindSpec:
    """How to train one model kind and how to judge it."""

    kind: str
    title: str
    description: str
    load_data: Callable[[], list]
    #: ``train(data, **train_context(), **params)``: a plain function of its arguments (no app
    #: context), so that it can run in a child process (``isolation.run_training``).
    train: Callable[..., object]
    #: The settings ``train`` needs from the database, read in the job's own app context.
    train_context: Callable[[], dict] = dict
    primary_metric: str = "mae"
    lower_is_better: bool = True
    param_form: type | None = None
    metric_labels: dict = field(default_factory=dict)
    #: Values accepted by ``flask models train KIND --algorithm``.
    algorithms: tuple[str, ...] = ()
    #: The ``train`` keyword that ``--algorithm`` sets (the dough model calls it model_type).
    algorithm_param: str = "algorithm"
    #: Called with the version each time a version of this kind becomes active (by the gate,
    #: an admin or the CLI), e.g. to recompute batch suggestions; None for most kinds.
    #: It may return the background job it started, so a command can wait for it.
    after_activation: Callable[[str], object] | None = None


KINDS: dict[str, KindSpec] = {}


def register_kind(spec: KindSpec) -> None:
    """Make ``spec.kind`` trainable and servable."""
    KINDS[spec.kind] = spec


def get_spec(kind: str) -> KindSpec:
    """The spec of ``kind``; LookupError with the known kinds when it is unknown."""
    if kind not in KINDS:
        raise LookupError(f"Unknown model kind {kind!r}. Known: {', '.join(sorted(KINDS))}.")
    return KINDS[kind]


def model_dir() -> Path:
    """Where this app keeps artefacts."""
    return Path(current_app.config["MODEL_DIR"])


def holder(kind: str) -> ModelHolder:
    """This process's holder for ``kind``, created on first use."""
    app = current_app._get_current_object()
    holders = app.extensions.setdefault("curate_holders", {})
    if kind not in holders:
        directory = model_dir()
        holders[kind] = ModelHolder(
            kind,
            active_version=lambda: _active_pointer(kind),
            loader=lambda version, sha: store.load(directory, kind, version, sha).model,
            check_interval=app.config["MODEL_CHECK_SECONDS"],
            on_load_error=lambda k, version, error: registry.record_load_error(
                k, version, f"worker {os.getpid()}: {error}"),
        )
    return holders[kind]


def _active_pointer(kind: str) -> tuple[str, str] | None:
    """The holder's poll; on a database error the session is rolled back so the request can go
    on (the holder keeps serving its current model and logs the error)."""
    try:
        return registry.active_pointer(kind)
    except SQLAlchemyError:
        db.session.rollback()
        raise


def serve(kind: str) -> Served:
    """The model this worker serves for ``kind`` (ModelUnavailable when there is none)."""
    return holder(kind).get()


def served_versions() -> dict[str, str | None]:
    """What this worker serves for each kind it has loaded (for the header badge)."""
    holders = current_app.extensions.get("curate_holders", {})
    return {kind: h.served_version for kind, h in holders.items()}


def activated(kind: str, version: str) -> object | None:
    """Tell ``kind`` that ``version`` just became active (runs its ``after_activation`` hook).

    Every place that activates a version calls this after the activation committed: the gate
    in :func:`promote_if_better`, the Models page (activate, roll back) and ``flask models``.
    Returns what the hook returned (the job it started, if any), or None without a hook.
    """
    hook = get_spec(kind).after_activation
    return None if hook is None else hook(version)


def _activate(kind: str, version: str, by: str | None, reason: str) -> None:
    registry.activate(kind, version, by, reason=reason)
    activated(kind, version)


@dataclass(frozen=True)
class Decision:
    """What the promotion gate decided about a candidate."""

    activated: bool
    reason: str


def promote_if_better(kind: str, candidate, by: str | None) -> Decision:
    """Activate ``candidate`` when it is no worse than the active model by more than the margin."""
    spec = get_spec(kind)
    champion = registry.active_version(kind)
    metric = spec.primary_metric
    new = candidate.metrics.get(metric)
    old = champion.metrics.get(metric) if champion else None
    margin = current_app.config["PROMOTION_MARGIN"]
    if champion is None:  # it passed verification, and there is nothing to compare it with
        _activate(kind, candidate.version, by, reason="first model")
        return Decision(True, "first model")
    if new is None:
        # Without a hold-out (e.g. no picks yet) there is nothing to compare: promote only when
        # the active model could not be measured either, since the new one has the latest data.
        if old is not None:
            return Decision(False, f"kept as candidate: no hold-out {metric} to compare with "
                                   f"the active {_number(old)}")
        reason = f"no hold-out {metric} on either model; the newer data wins"
        _activate(kind, candidate.version, by, reason=reason)
        return Decision(True, reason)
    new_value = float("nan") if new is None else new
    if not passes_gate(new_value, old, margin, lower_is_better=spec.lower_is_better):
        return Decision(False, f"kept as candidate: {metric} {_number(new)} is worse than the "
                               f"active {_number(old)} by more than {margin:.0%}")
    reason = f"passed gate: {metric} {_number(new)} vs {_number(old)}"
    _activate(kind, candidate.version, by, reason=reason)
    return Decision(True, reason)


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def retrain_task(progress, kind: str, trained_by: str | None = None, **params) -> dict:
    """Job task: train ``kind``, publish the artefact, verify it, and apply the gate.

    A failure at any step raises (the job is marked failed) and leaves the active model alone:
    only a verified artefact is ever recorded, and only the gate or an admin activates it.
    """
    spec = get_spec(kind)
    progress(5, "Reading training data")
    data = spec.load_data()
    progress(25, f"Training on {len(data)} rows")
    trained = run_training(spec.train, data, **spec.train_context(), **params)
    progress(60, "Publishing the artefact")
    meta = store.publish(model_dir(), kind, trained)
    path = str(model_dir() / kind / f"{meta.version}.joblib")
    row = registry.add_candidate(kind, meta, path, trained_by)
    progress(75, "Verifying checksum, library versions and smoke test")
    try:
        store.load(model_dir(), kind, meta.version, meta.sha256)
    except store.ArtefactError as error:
        registry.mark_failed(row, str(error))
        raise
    progress(90, "Comparing with the active model")
    decision = promote_if_better(kind, row, trained_by)
    return {"version": meta.version, "activated": decision.activated, "reason": decision.reason,
            "metrics": dict(meta.metrics)}


def register_kinds() -> None:
    """Register every model kind Curate has (called by create_app)."""
    from webapp.ml_bridge import dough, games, gift_model, labels

    register_kind(dough.SPEC)
    register_kind(games.SPEC)
    register_kind(labels.SPEC)
    register_kind(gift_model.SPEC)


__all__ = ["KINDS", "KindSpec", "ModelUnavailable", "Served", "activated", "get_spec", "holder",
           "register_kinds", "retrain_task", "serve", "served_versions"]
