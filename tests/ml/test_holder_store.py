"""The holder serving real artefacts from the store, as a web worker does."""

from __future__ import annotations

import hashlib
import json

import pytest

from ml import store
from ml.dough import train_dough
from ml.holder import ModelHolder
from ml.store import ArtefactCorrupt, ArtefactTampered, LibraryMismatch
from ml.synthetic import generate_year


class Pointer:
    """The database's active-version row: (version, sha256) or None."""

    def __init__(self) -> None:
        self.active: tuple[str, str] | None = None

    def __call__(self) -> tuple[str, str] | None:
        return self.active


def flip_a_byte(tmp_path, version):
    """Change the published bytes: a tampered or bit-rotted file."""
    path = tmp_path / "dough" / f"{version}.joblib"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01
    path.write_bytes(bytes(data))
    return None


def claim_other_sklearn(tmp_path, version):
    """Metadata from a host with another scikit-learn: a library mismatch."""
    meta_path = tmp_path / "dough" / f"{version}.json"
    meta = json.loads(meta_path.read_text())
    meta["libraries"]["scikit-learn"] = "0.1.0"
    meta_path.write_text(json.dumps(meta))
    return None


def truncate_but_fix_digest(tmp_path, version):
    """A truncated file whose recorded digest was updated too: it unpickles, and fails."""
    path = tmp_path / "dough" / f"{version}.joblib"
    path.write_bytes(path.read_bytes()[:200])
    meta_path = tmp_path / "dough" / f"{version}.json"
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))
    return meta["sha256"]


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (flip_a_byte, ArtefactTampered),
        (claim_other_sklearn, LibraryMismatch),
        (truncate_but_fix_digest, ArtefactCorrupt),
    ],
)
def test_holder_keeps_serving_v1_when_v2_is_refused(tmp_path, week_nights, damage, error):
    now = [0.0]
    pointer, errors = Pointer(), []
    holder = ModelHolder(
        "dough",
        pointer,
        lambda version, sha256: store.load(tmp_path, "dough", version, sha256).model,
        clock=lambda: now[0],
        on_load_error=lambda *report: errors.append(report),
    )
    v1 = store.publish(tmp_path, "dough", train_dough(week_nights, model_type="linear"), "v1")
    pointer.active = (v1.version, v1.sha256)
    assert holder.get().model.predict_one(15) == 53

    v2 = store.publish(tmp_path, "dough", train_dough(generate_year(0)), "v2")
    new_digest = damage(tmp_path, "v2")
    pointer.active = (v2.version, new_digest or v2.sha256)
    for _ in range(3):
        now[0] += 5
        served = holder.get()
        assert served.version == "v1"
        assert served.model.predict_one(15) == 53

    assert len(errors) == 1
    kind, version, exc = errors[0]
    assert (kind, version) == ("dough", "v2")
    assert isinstance(exc, error)
    assert "dough model v2" in str(exc)


def test_holder_swaps_to_a_good_new_artefact(tmp_path, week_nights):
    pointer = Pointer()
    holder = ModelHolder(
        "dough",
        pointer,
        lambda version, sha256: store.load(tmp_path, "dough", version, sha256).model,
        check_interval=0.0,
    )
    v1 = store.publish(tmp_path, "dough", train_dough(week_nights, model_type="linear"), "v1")
    pointer.active = (v1.version, v1.sha256)
    first = holder.get()
    v2 = store.publish(tmp_path, "dough", train_dough(generate_year(0)), "v2")
    pointer.active = (v2.version, v2.sha256)
    second = holder.get()
    assert (first.version, second.version) == ("v1", "v2")
    assert second.model.model_type == "polynomial"
    # A request that took the old pair finishes on it, undisturbed by the swap.
    assert first.model.predict_one(15) == 53
