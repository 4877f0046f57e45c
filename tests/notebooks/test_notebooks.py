"""Execute every notebook, so that none of them can rot. They run the embedded model.

Each cell has ``CELL_LIMIT_S`` seconds (``CURATE_NOTEBOOK_CELL_LIMIT`` overrides it): twice the
30 minutes that one cell passed only on a loaded machine, so an idle 2-core machine never
reaches it. A cell that passes it, or raises, fails the test with one line naming the notebook,
the cell's position and its first line.
"""
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_LIMIT_S = int(os.environ.get("CURATE_NOTEBOOK_CELL_LIMIT", "3600"))


def execute(path: Path, limit: int = CELL_LIMIT_S):
    """Run the notebook at ``path`` from ROOT; a failing cell is one ``pytest.fail`` line."""
    nb = nbformat.read(path, as_version=4)
    started = {}

    def where() -> str:
        cell = started.get("cell")
        first = cell.source.strip().splitlines()[0] if cell and cell.source.strip() else ""
        return f"{path.name}: cell {started.get('index')} ({first[:60]!r})"

    client = NotebookClient(nb, timeout=limit, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}},
                            on_cell_start=lambda cell, cell_index: started.update(
                                cell=cell, index=cell_index))
    try:
        client.execute()
    except CellTimeoutError:
        pytest.fail(f"{where()} passed its {limit} s limit", pytrace=False)
    except CellExecutionError as error:
        pytest.fail(f"{where()} raised {error.ename}: {error.evalue}", pytrace=False)
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "CURATE_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)  # always the offline model in tests
    nb = execute(path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def test_a_cell_past_its_limit_or_raising_fails_naming_the_notebook_and_the_cell(tmp_path):
    path = tmp_path / "slow.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# a title"),
                                         nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("import time\ntime.sleep(30)")])
    nbformat.write(nb, path)
    with pytest.raises(pytest.fail.Exception) as failed:
        execute(path, limit=2)
    assert str(failed.value) == "slow.ipynb: cell 2 ('import time') passed its 2 s limit"
    nb.cells[2].source = "raise KeyError('nope')"
    nbformat.write(nb, path)
    with pytest.raises(pytest.fail.Exception) as failed:
        execute(path, limit=60)
    assert str(failed.value) == "slow.ipynb: cell 2 (\"raise KeyError('nope')\") raised KeyError: 'nope'"


def test_there_are_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {"honeycomb", "self_consistency"}
