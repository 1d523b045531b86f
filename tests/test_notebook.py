"""``notebooks/quickstart.ipynb`` runs top to bottom, so the tour in it can never rot."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def test_notebook_outputs_are_cleared():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.slow
@pytest.mark.mlflow
def test_quickstart_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook's temporary folder goes away with the test's
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    first = "".join(o.get("text", "") for o in code[0].outputs if o.output_type == "stream")
    assert first.strip() == sys.executable  # the kernel is this environment's python
    outputs = [o for cell in code for o in cell.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "test ROC AUC 0." in text
    assert "mlflow models serve -m models:/" in text
    assert list(tmp_path.glob("fs_augment_quickstart_*/mlflow.db"))  # logged under the temporary folder
    assert "report: " in text and " 8 charts" in text  # the report of the logged model, one chart a feature
    assert any("srcdoc=" in o.get("data", {}).get("text/html", "") for o in outputs)
    assert list(tmp_path.glob("fs_augment_quickstart_*/report.html"))
