"""The teaching notebooks in ``notebooks/`` run from top to bottom, so they cannot rot.

Each notebook is executed in a fresh Jupyter kernel, in ``notebooks/`` as its working folder,
and any cell that raises fails its test. The kernel is this very interpreter (``.venv``'s
python): a kernel spec written for these tests says so, and is found before any
``python3`` spec installed elsewhere on the machine. Two static checks keep the committed files
tidy: outputs stay cleared (the notebooks are documentation, not results), and no notebook
imports the web app (they teach the ``ml/`` library on its own).
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
EXPECTED = {
    "01_arrays_and_features.ipynb",
    "02_dough_regression.ipynb",
    "03_game_recommender.ipynb",
    "04_labels_and_rules.ipynb",
    "05_model_lifecycle.ipynb",
}
KERNEL = "python3"
CELL_TIMEOUT = 120  # seconds per cell; generous, because the test machine may be busy
WARNING = re.compile(r"\b\w*Warning\b")


def _cells(path: Path, kind: str) -> list[dict]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [cell for cell in notebook["cells"] if cell["cell_type"] == kind]


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


@pytest.fixture(scope="module")
def venv_kernel(tmp_path_factory):
    """Point the ``python3`` kernel name at this interpreter while this module runs.

    ``JUPYTER_PATH`` comes first in Jupyter's search path, ahead of user and system kernel
    specs, so a ``python3`` spec pointing at another Python cannot be picked up instead.
    ``IPYTHONDIR`` keeps the kernel's profile out of the home folder.
    """
    for module in ("nbclient", "nbformat", "ipykernel"):
        try:
            __import__(module)
        except ImportError as exc:
            pytest.fail(f"{exc}: install the test extra (pip install -e '.[test]') to run notebooks")
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (Curate tests)",
                "language": "python",
            }
        ),
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(root), os.environ.get("JUPYTER_PATH")])))
        patch.setenv("IPYTHONDIR", str(root / "ipython"))
        yield KERNEL


def _execute(notebook, kernel: str):
    """Run every cell of ``notebook`` (an nbformat node) in ``notebooks/``; return it executed."""
    from nbclient import NotebookClient

    client = NotebookClient(
        notebook,
        kernel_name=kernel,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    return client.execute()


def _stderr(notebook) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stderr"
    )


def test_the_five_notebooks_are_there():
    assert EXPECTED <= {path.name for path in PATHS}


@pytest.mark.parametrize("path", PATHS, ids=[path.stem for path in PATHS])
def test_notebook_runs_without_errors_or_warnings(path, venv_kernel):
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    executed = _execute(notebook, venv_kernel)  # raises CellExecutionError on any failing cell
    # The kernel prints warnings to stderr instead of raising; pytest's filterwarnings = error
    # cannot see them, so they are failed here.
    warnings = WARNING.findall(_stderr(executed))
    assert not warnings, f"{path.name} printed warnings:\n{_stderr(executed)}"


def test_the_kernel_is_this_venv_python_and_its_warnings_are_seen(venv_kernel):
    """The notebooks run on the interpreter the tests run on, with this checkout's ``ml``.

    The same probe proves that the warning check above is not vacuous: a warning raised in a
    cell reaches the executed notebook's stderr.
    """
    from nbformat.v4 import new_code_cell, new_notebook

    probe = new_notebook(
        cells=[
            new_code_cell("import os, sys, ml\nprint(sys.executable)\nprint(os.getcwd())\nprint(ml.__file__)"),
            new_code_cell("import warnings\nwarnings.warn('careful', UserWarning)"),
        ]
    )
    executed = _execute(probe, venv_kernel)
    executable, cwd, ml_file = executed.cells[0].outputs[0]["text"].splitlines()
    assert Path(executable) == Path(sys.executable)
    assert Path(cwd).resolve() == NOTEBOOKS
    assert Path(ml_file).resolve().parent == NOTEBOOKS.parent / "ml"
    assert "UserWarning: careful" in _stderr(executed)
    assert WARNING.search(_stderr(executed))


@pytest.mark.parametrize("path", PATHS, ids=[path.stem for path in PATHS])
def test_committed_notebook_is_cleared(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["metadata"]["kernelspec"]["name"] == KERNEL
    for number, cell in enumerate(notebook["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        assert cell["outputs"] == [], f"{path.name} cell {number} has outputs"
        assert cell["execution_count"] is None, f"{path.name} cell {number} has a count"


def _imported_modules(source: str) -> set[str]:
    """Top-level names of the modules a cell imports (IPython magics and shell lines skipped)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    tree = ast.parse("\n".join(lines))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            # importlib.import_module("webapp...") and __import__("webapp...")
            called = ast.unparse(node.func)
            if called.endswith(("import_module", "__import__")):
                names.add(str(node.args[0].value).split(".")[0])
    return names


@pytest.mark.parametrize("path", PATHS, ids=[path.stem for path in PATHS])
def test_notebook_never_imports_the_web_app(path):
    for number, cell in enumerate(_cells(path, "code"), start=1):
        assert "webapp" not in _imported_modules(_source(cell)), f"{path.name} code cell {number}"


def test_the_import_scan_catches_every_form():
    """The scan above must see the ways a cell could reach the web app."""
    for source in (
        "import webapp",
        "import webapp.demo as demo",
        "from webapp.demo import pizzeria",
        "import importlib\nimportlib.import_module('webapp.config')",
        "%matplotlib inline\nfrom webapp import create_app",
    ):
        assert "webapp" in _imported_modules(source), source
    assert "webapp" not in _imported_modules("path = 'webapp/demo/data/x.csv'")
