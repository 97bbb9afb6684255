"""The notebooks in examples/: stored without outputs, and each runs top to bottom in a fresh kernel.

A cell that raises fails the test (the notebooks assert what they show); each notebook has a
time limit. They run in a temporary folder, with the run database kept there by the test's
isolated ``XDG_DATA_HOME``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
#: Seconds a notebook may take in all (each must fit the 2-core machine in under two minutes).
TIME_LIMIT_S = 120


def test_there_are_notebooks():
    assert {path.name for path in NOTEBOOKS} >= {"imaging-dask.ipynb", "ical-api.ipynb", "task-pool.ipynb",
                                                 "tiles.ipynb", "polarimetry.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name} cell {index} holds outputs: clear them before committing (Jupyter: Edit > "
                "Clear Outputs of All Cells)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=TIME_LIMIT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    started = time.monotonic()
    client.execute()  # a cell that raises: CellExecutionError, with the cell and its traceback
    elapsed = time.monotonic() - started
    assert elapsed < TIME_LIMIT_S, f"{path.name} took {elapsed:.0f} s (limit {TIME_LIMIT_S} s)"
    shown = " ".join(str(output.get("text", "")) + str(output.get("data", {}).get("text/html", ""))
                     for cell in notebook.cells for output in cell.get("outputs", []))
    if path.stem in DASHBOARD_SHOWN:  # printed by the notebook, or drawn by the API's notebook progress
        assert "Dask dashboard: " in shown and "http" in shown.partition("Dask dashboard: ")[2][:40]


#: The notebooks that start a Dask cluster, and show its dashboard's link.
DASHBOARD_SHOWN = ("imaging-dask", "ical-api", "tiles")
