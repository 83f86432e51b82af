from __future__ import annotations

import hashlib
import json
import os
import re
import time

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from ml import store
from ml.dough import train_dough
from ml.store import (
    ArtefactCorrupt,
    ArtefactError,
    ArtefactExists,
    ArtefactMeta,
    ArtefactMissing,
    ArtefactTampered,
    InvalidName,
    LibraryMismatch,
    SmokeTestFailed,
)
from ml.synthetic import generate_weekday_year, generate_year
from ml.training import TrainedModel


@pytest.fixture
def trained(week_nights) -> TrainedModel:
    return train_dough(week_nights)


@pytest.fixture
def published(tmp_path, trained) -> store.ArtefactMeta:
    return store.publish(tmp_path, "dough", trained, version="v1")


def _files(tmp_path):
    return sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())


def _edit_meta(tmp_path, kind="dough", version="v1", **changes):
    path = tmp_path / kind / f"{version}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_round_trip(tmp_path, trained, published):
    loaded = store.load(tmp_path, "dough", "v1", expected_sha256=published.sha256)
    assert loaded.meta == published
    assert loaded.model.coefficients_ == trained.model.coefficients_
    assert loaded.model.predict_one(15) == trained.model.predict_one(15)
    assert published.smoke_output == trained.model.predict([[0], [15], [40]]).tolist()
    assert (
        published.sha256 == hashlib.sha256((tmp_path / "dough/v1.joblib").read_bytes()).hexdigest()
    )
    assert published.training_rows == 5
    assert published.params["excluded_weekdays"] == [4, 5]
    assert set(published.libraries) == {"python", "numpy", "scikit-learn", "joblib"}


def test_a_multi_model_round_trips_with_its_own_smoke_input(tmp_path):
    trained = train_dough(generate_weekday_year(2), model_type="multi")
    meta = store.publish(tmp_path, "dough", trained, version="m1")
    raw = json.loads((tmp_path / "dough/m1.json").read_text())
    assert raw["smoke_input"][0] == [0, 0, 1, None, 0]  # an unknown temperature, as JSON null
    assert raw["params"]["model_type"] == "multi"
    assert raw["metrics"]["p80_abs_error"] == trained.model.typical_error_
    loaded = store.load(tmp_path, "dough", "m1", expected_sha256=meta.sha256).model
    assert loaded.model_type == "multi"
    assert loaded.coefficients_ == trained.model.coefficients_
    assert loaded.temperature_fill_ == trained.model.temperature_fill_
    assert loaded.typical_error_ == trained.model.typical_error_
    night = {"reservations": 15, "date": generate_weekday_year(2)[40].date, "temperature": None}
    assert loaded.predict_one(**night) == trained.model.predict_one(**night)
    assert meta.smoke_output == trained.model.predict(trained.smoke_input).tolist()


def test_a_multi_model_whose_maths_changed_fails_its_smoke_test(tmp_path):
    trained = train_dough(generate_weekday_year(2), model_type="multi")
    store.publish(tmp_path, "dough", trained, version="m1")
    _edit_meta(tmp_path, version="m1", smoke_output=[0, 0, 0])
    with pytest.raises(SmokeTestFailed, match="dough model m1 failed its smoke test"):
        store.load(tmp_path, "dough", "m1")


def test_an_unmeasured_auto_model_publishes_with_null_metrics(tmp_path, week_nights):
    trained = train_dough(week_nights[:3], model_type="auto")
    meta = store.publish(tmp_path, "dough", trained, version="a1")
    assert meta.metrics["mae"] is None and meta.metrics["holdout_rows"] == 0
    assert meta.params["chosen_by"] == "auto"
    assert store.load(tmp_path, "dough", "a1").model.predict_one(15) == trained.model.predict_one(15)


def test_sidecar_is_strict_json_and_matches_the_meta(tmp_path, published):
    text = (tmp_path / "dough/v1.json").read_text()
    # The week leaves one hold-out night, so R² is undefined; strict JSON has no NaN.
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-JSON {name}"))
    assert data["metrics"]["r2"] is None
    assert ArtefactMeta.from_dict(data) == published
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", published.created_at)


def test_publish_writes_only_the_two_files(tmp_path, published):
    assert _files(tmp_path) == ["dough/v1.joblib", "dough/v1.json"]


def test_publish_picks_a_fresh_version_when_none_is_given(tmp_path, trained):
    meta = store.publish(tmp_path, "dough", trained)
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", meta.version)
    assert store.load(tmp_path, "dough", meta.version).meta == meta


def test_new_versions_are_unique_and_sort_by_time():
    versions = [store.new_version() for _ in range(50)]
    assert len(set(versions)) == 50
    assert all(store.VERSION_PATTERN.fullmatch(v) for v in versions)
    assert sorted(versions)[0][:16] == versions[0][:16] <= versions[-1][:16]


def test_a_plain_sklearn_model_round_trips_with_float_outputs(tmp_path):
    model = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.1, 2.2, 3.9])
    trained = TrainedModel(model, {"mae": 0.1}, {}, 3, "abc", [[0.5], [1.7]])
    meta = store.publish(tmp_path, "toy", trained, version="a")
    assert meta.smoke_output == pytest.approx(model.predict([[0.5], [1.7]]).tolist(), rel=1e-15)
    np.testing.assert_array_equal(store.load(tmp_path, "toy", "a").model.coef_, model.coef_)


def test_overwriting_a_version_is_refused(tmp_path, trained, published):
    before = (tmp_path / "dough/v1.joblib").read_bytes()
    other = train_dough(generate_year(1), model_type="linear")
    with pytest.raises(ArtefactExists, match="dough model v1 already exists"):
        store.publish(tmp_path, "dough", other, version="v1")
    assert (tmp_path / "dough/v1.joblib").read_bytes() == before
    assert _files(tmp_path) == ["dough/v1.joblib", "dough/v1.json"]


def test_a_failed_publish_leaves_nothing_behind(tmp_path):
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    model.unpicklable = lambda: None
    trained = TrainedModel(model, {}, {}, 2, "x", [[1.0]])
    with pytest.raises(Exception, match="pickle|lambda"):
        store.publish(tmp_path, "toy", trained, version="v1")
    assert _files(tmp_path) == []
    del model.unpicklable
    store.publish(tmp_path, "toy", trained, version="v1")
    assert _files(tmp_path) == ["toy/v1.joblib", "toy/v1.json"]


@pytest.mark.parametrize(
    "kind", ["../dough", "dough/x", "Dough", "", "1dough", "a" * 33, "..", None]
)
def test_unsafe_kinds_are_refused(tmp_path, trained, kind):
    with pytest.raises(InvalidName, match="kind"):
        store.publish(tmp_path / "models", kind, trained, version="v1")
    with pytest.raises(InvalidName):
        store.load(tmp_path / "models", kind, "v1")
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    "version", ["../../escape", "a/b", "..", ".hidden", "-rf", "x" * 65, "a b", "v1\n", ""]
)
def test_unsafe_versions_are_refused(tmp_path, trained, version):
    with pytest.raises(InvalidName, match="version"):
        store.publish(tmp_path / "models", "dough", trained, version=version)
    with pytest.raises(InvalidName):
        store.load(tmp_path / "models", "dough", version)
    assert _files(tmp_path) == []


def test_invalid_names_are_value_errors_too():
    assert issubclass(InvalidName, ValueError)
    assert issubclass(InvalidName, ArtefactError)


def test_a_kind_folder_linking_outside_is_refused(tmp_path, trained):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "dough").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidName, match="outside the model folder"):
        store.publish(tmp_path / "models", "dough", trained, version="v1")
    assert list(outside.iterdir()) == []


def test_a_missing_version_is_reported(tmp_path, published):
    with pytest.raises(ArtefactMissing, match="dough model v2 has no metadata"):
        store.load(tmp_path, "dough", "v2")


def test_a_missing_model_file_is_reported(tmp_path, published):
    (tmp_path / "dough/v1.joblib").unlink()
    with pytest.raises(ArtefactMissing, match="dough model v1 has no model file"):
        store.load(tmp_path, "dough", "v1")


def test_flipped_bytes_are_caught_before_unpickling(tmp_path, published):
    path = tmp_path / "dough/v1.joblib"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtefactTampered, match="dough model v1 was changed after publishing"):
        store.load(tmp_path, "dough", "v1")


def test_a_digest_differing_from_the_database_is_caught(tmp_path, published):
    with pytest.raises(ArtefactTampered, match="dough model v1 is not the file the database"):
        store.load(tmp_path, "dough", "v1", expected_sha256="0" * 64)
    store.load(tmp_path, "dough", "v1", expected_sha256=published.sha256.upper())


@pytest.mark.parametrize(
    ("library", "version"), [("scikit-learn", "0.24.2"), ("numpy", "1.0.0"), ("python", "2.7.18")]
)
def test_other_library_versions_are_refused(tmp_path, published, library, version):
    _edit_meta(tmp_path, libraries={**published.libraries, library: version})
    with pytest.raises(LibraryMismatch, match=f"dough model v1 was made with {library} {version}"):
        store.load(tmp_path, "dough", "v1")


def test_a_different_patch_release_is_accepted(tmp_path, published):
    major, minor = published.libraries["numpy"].split(".")[:2]
    _edit_meta(tmp_path, libraries={**published.libraries, "numpy": f"{major}.{minor}.999"})
    store.load(tmp_path, "dough", "v1")


def test_a_truncated_model_file_is_corrupt(tmp_path, published):
    path = tmp_path / "dough/v1.joblib"
    data = path.read_bytes()[:40]
    path.write_bytes(data)
    _edit_meta(tmp_path, sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(ArtefactCorrupt, match="dough model v1 could not be unpickled"):
        store.load(tmp_path, "dough", "v1")


@pytest.mark.parametrize("text", ["{not json", "[]", '{"kind": "dough"}'])
def test_unreadable_metadata_is_corrupt(tmp_path, published, text):
    (tmp_path / "dough/v1.json").write_text(text)
    with pytest.raises(ArtefactCorrupt, match="dough model v1 has unreadable metadata"):
        store.load(tmp_path, "dough", "v1")


def test_a_changed_smoke_output_fails_the_smoke_test(tmp_path, published):
    _edit_meta(tmp_path, smoke_output=[0, 54, 999])
    with pytest.raises(SmokeTestFailed, match="dough model v1 failed its smoke test"):
        store.load(tmp_path, "dough", "v1")


def test_smoke_floats_compare_within_tolerance(tmp_path):
    model = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.1, 2.2, 3.9])
    store.publish(tmp_path, "toy", TrainedModel(model, {}, {}, 3, "h", [[0.5]]), version="a")
    expected = model.predict([[0.5]])[0]
    _edit_meta(tmp_path, "toy", "a", smoke_output=[expected * (1 + 1e-12)])
    store.load(tmp_path, "toy", "a")
    _edit_meta(tmp_path, "toy", "a", smoke_output=[expected * (1 + 1e-6)])
    with pytest.raises(SmokeTestFailed):
        store.load(tmp_path, "toy", "a")
    _edit_meta(tmp_path, "toy", "a", smoke_output=[expected, expected])
    with pytest.raises(SmokeTestFailed):
        store.load(tmp_path, "toy", "a")


def test_a_smoke_input_the_model_rejects_fails_the_smoke_test(tmp_path, published):
    _edit_meta(tmp_path, smoke_input=[[1, 2]])
    with pytest.raises(SmokeTestFailed, match="predict raised"):
        store.load(tmp_path, "dough", "v1")


def test_list_versions_reads_sidecars_in_version_order(tmp_path, trained):
    for version in ("v3", "v1", "v2"):
        store.publish(tmp_path, "dough", trained, version=version)
    (tmp_path / "dough" / ".v9.joblib.abc.tmp").write_bytes(b"partial")
    assert [meta.version for meta in store.list_versions(tmp_path, "dough")] == ["v1", "v2", "v3"]
    assert store.list_versions(tmp_path, "games") == []


def test_delete_temp_files_removes_only_stale_temp_files(tmp_path, published):
    stale = tmp_path / "dough" / ".v2.joblib.x1.tmp"
    fresh = tmp_path / "dough" / ".v3.joblib.x2.tmp"
    stale.write_bytes(b"crashed")
    fresh.write_bytes(b"in progress")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    assert store.delete_temp_files(tmp_path) == [stale]
    assert _files(tmp_path) == ["dough/.v3.joblib.x2.tmp", "dough/v1.joblib", "dough/v1.json"]
    assert store.delete_temp_files(tmp_path / "absent") == []


def test_meta_round_trips_through_a_dict(published):
    assert ArtefactMeta.from_dict(published.to_dict()) == published
    broken = published.to_dict()
    del broken["sha256"]
    broken["extra"] = 1
    with pytest.raises(ValueError, match=r"missing: \['sha256'\], unexpected: \['extra'\]"):
        ArtefactMeta.from_dict(broken)


def test_metadata_with_wrong_field_types_is_corrupt(tmp_path, published):
    _edit_meta(tmp_path, libraries="scikit-learn 1.9")
    with pytest.raises(ArtefactCorrupt, match=r"wrong type: \['libraries'\]"):
        store.load(tmp_path, "dough", "v1")
