"""The seam: ml/ must stay a plain library that never pulls in the web stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = ("flask", "sqlalchemy", "wtforms", "werkzeug", "webapp")

PROBE = """
import json, pkgutil, sys
import ml
names = sorted(info.name for info in pkgutil.walk_packages(ml.__path__, "ml."))
for name in names:
    __import__(name)
print(json.dumps({"submodules": names, "loaded": sorted(sys.modules)}))
"""


def _run(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _is_forbidden(module: str) -> bool:
    top = module.split(".")[0]
    return top in FORBIDDEN or top.startswith("flask_")


def test_no_ml_module_imports_the_web_stack():
    report = _run(PROBE)
    # Guards the probe itself: if discovery broke, an empty import list would pass vacuously.
    assert {"ml.dough", "ml.evaluation", "ml.holder", "ml.store", "ml.synthetic"} <= set(
        report["submodules"]
    )
    assert [name for name in report["loaded"] if _is_forbidden(name)] == []


def test_importing_the_package_alone_stays_light():
    report = _run("import json, sys, ml; print(json.dumps({'loaded': sorted(sys.modules)}))")
    heavy = {"numpy", "sklearn", "joblib"}
    assert heavy.isdisjoint(name.split(".")[0] for name in report["loaded"])


def test_forbidden_check_recognises_the_web_stack():
    assert all(_is_forbidden(name) for name in ("flask", "flask_wtf", "sqlalchemy.orm", "webapp"))
    assert not any(_is_forbidden(name) for name in ("ml.store", "numpy", "flaskless"))
