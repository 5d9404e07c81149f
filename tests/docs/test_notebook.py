"""The quickstart notebook (docs/notebooks/quickstart.ipynb) is committed executed, and the docs render
its outputs as they are. Fast: the committed outputs are complete, error-free and offline. Slow: the
notebook re-executes on SmolLM2 without error, and its top induction head is the scan's."""

import re

import nbformat
import pytest

from tests.docs.helpers import DOCS

NOTEBOOK = DOCS / "notebooks" / "quickstart.ipynb"
TOP_HEAD = re.compile(r"top induction head: L(\d+)H(\d+) \(score ([\d.]+)\)")
# the notebook's probe: 4 rows of 30 random tokens repeated twice after BOS, seed 0
BATCH, SEQ_LEN = 4, 30


def stdout(notebook) -> str:
    return "".join(
        o.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if o.output_type == "stream" and o.name == "stdout"
    )


def top_head(notebook) -> tuple[int, int, float]:
    """The ``(layer, head, score)`` the notebook printed as its top induction head."""
    found = TOP_HEAD.search(stdout(notebook))
    assert found, "the notebook prints no 'top induction head: L..H.. (score ...)' line"
    return int(found[1]), int(found[2]), float(found[3])


def test_committed_notebook_is_executed_without_errors_and_offline():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), "run it top to bottom"
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    html = [o.data["text/html"] for cell in code for o in cell.outputs if "text/html" in o.get("data", {})]
    figures = [h for h in html if "plotly-graph-div" in h]
    assert len(figures) >= 3, "the notebook's Plotly figures are missing (committed without outputs?)"
    for figure in figures:  # drawn by the docs' own plotly.js: nothing fetched from the network
        assert not re.search(r"""<script[^>]*\bsrc=["']?(https?:)?//""", figure), figure[:200]
    assert any("<table" in h for h in html), "no result object showed itself as a table"
    layer, head, score = top_head(notebook)
    assert 0.0 <= score <= 1.0


@pytest.mark.slow
def test_notebook_reexecutes_and_its_top_head_is_the_scans(smollm2, tmp_path):
    from nbclient import NotebookClient

    from induction_nnsight import model_facts, rank_heads, repeated_tokens, scan

    committed = nbformat.read(NOTEBOOK, as_version=4)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # raises CellExecutionError, naming the cell, on any error
    NotebookClient(
        notebook, kernel_name="python3", timeout=900, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    layer, head, score = top_head(notebook)

    tokens = repeated_tokens(BATCH, SEQ_LEN, seed=0, bos_token_id=model_facts(smollm2).bos_token_id)
    scores = scan(smollm2, tokens, seq_len=SEQ_LEN).induction_scores
    assert (layer, head) == rank_heads(scores, 1)[0]
    assert score == pytest.approx(float(scores[layer, head]), abs=1e-3)  # printed to 3 decimals
    # the committed outputs are those of the code as it is now
    committed_layer, committed_head, committed_score = top_head(committed)
    assert (committed_layer, committed_head) == (layer, head)
    assert committed_score == pytest.approx(score, abs=2e-3)
