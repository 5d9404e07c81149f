"""Result objects in a notebook (issue 16): a short ``repr`` naming the top head, an escaped HTML
table of the top heads in order, and figures holding the result's own numbers.

Every result is built by hand from tables whose values are spaced apart (no near-ties), and its
top heads are found here independently (Python's ``sorted`` on the tensor, not ``rank_heads``).
"""

from __future__ import annotations

import math
from html.parser import HTMLParser

import plotly.graph_objects as go
import pytest
import torch

from induction_nnsight.causal.ablation.results import CurveResult, SweepResult
from induction_nnsight.causal.circuit import CircuitResult, Edge
from induction_nnsight.causal.patching.results import PatchResult
from induction_nnsight.dynamics.results import CheckpointScores
from induction_nnsight.figures.tables import REPR_ROWS, Summary, summary_html, summary_text
from induction_nnsight.scores.detect import HeadDetection
from induction_nnsight.scores.heads import HeadScores
from induction_nnsight.scores.scan import ScanResult

MODEL = "/cache/tiny <b>&\"'model"  # a path: shown by its last part, which needs escaping
SHOWN = "tiny <b>&\"'model"
MAX_REPR = 240
TOL = 1e-6


class Table(HTMLParser):
    """The text of every cell of every row, and all text outside tags."""

    def __init__(self, source: str):
        super().__init__()
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None
        self.feed(source)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def spaced(n_layers: int, n_heads: int, seed: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """``[n_layers, n_heads]`` distinct values from ``low`` to ``high`` in random order, gaps >= 1/(n-1) of the span."""
    n = n_layers * n_heads
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return (low + (high - low) * order.double() / (n - 1)).float().reshape(n_layers, n_heads)


def best_first(table: torch.Tensor, n: int = 10, key=lambda v: v) -> list[str]:
    """The ``n`` best heads of a table, by plain Python sorting (no NaN)."""
    cells = [
        (key(float(v)), f"L{layer}H{head}")
        for layer, row in enumerate(table)
        for head, v in enumerate(row)
        if not math.isnan(float(v))
    ]
    return [name for _, name in sorted(cells, reverse=True)[:n]]


def value(table: torch.Tensor, name: str) -> float:
    layer, head = name[1:].split("H")
    return float(table[int(layer), int(head)])


def body(result) -> list[list[str]]:
    """The data rows of a result's HTML table (header row dropped)."""
    return Table(result._repr_html_()).rows[1:]


def check_repr(result, kind: str, top: str, score: float) -> str:
    text = repr(result)
    assert "\n" not in text and len(text) <= MAX_REPR, text
    assert text.startswith(f"{kind}(") and "tensor(" not in text, text
    assert f"{top} {score:.3f}" in text, text
    return text


def close(a, b) -> bool:
    """Whether a figure's numbers (nested lists) equal a result's (a tensor, or a list of them) within TOL."""
    b = torch.stack(list(b)) if isinstance(b, list) and isinstance(b[0], torch.Tensor) else b
    nan = float("nan")
    a = [
        [nan if v is None else v for v in row] if isinstance(row, (list, tuple)) else nan if row is None else row
        for row in a
    ]  # a chart's blank cell (None) is a result's NaN
    a, b = torch.tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and torch.allclose(a, b, atol=TOL, rtol=0, equal_nan=True)


def test_scan_result():
    scores, loss = spaced(3, 4, 0), torch.linspace(5.0, 1.0, 20)
    result = ScanResult(loss, scores, MODEL, 10, False)
    top = best_first(scores)
    text = check_repr(result, "ScanResult", top[0], value(scores, top[0]))
    assert "3 layers x 4 heads" in text and f"{SHOWN}," in text
    assert [row[1] for row in body(result)] == top  # rank, head, score
    assert [float(row[2]) for row in body(result)] == pytest.approx([value(scores, h) for h in top], abs=5e-4)
    figure = result.figure()
    assert isinstance(figure, go.Figure) and close(figure.data[0].z, scores)
    assert close(result.figures()["loss_by_position"].data[0].y, loss)


def test_head_scores():
    per_row = spaced(3, 4, 1).expand(5, 3, 4) + torch.linspace(-0.01, 0.01, 5)[:, None, None]  # row mean = spaced
    other = spaced(3, 4, 2)
    result = HeadScores({"induction": per_row, "previous_token": other[None]}, {}, torch.ones(9), MODEL)
    mean = per_row.mean(0)
    top = best_first(mean)
    text = check_repr(result, "HeadScores", top[0], value(mean, top[0]))
    assert "5 rows" in text
    rows = body(result)
    assert [row[1] for row in rows] == top
    assert [float(row[3]) for row in rows] == pytest.approx([value(other, h) for h in top], abs=5e-4)
    assert list(result.figures()) == ["induction", "previous_token", "loss_by_position"]
    assert close(result.figure().data[0].z, mean) and close(result.figure("previous_token").data[0].z, other)


def test_head_detection():
    scores = spaced(3, 4, 3)
    result = HeadDetection("induction", 0.5, scores, scores - 0.05, scores + 0.05, {"batch": 4}, MODEL)
    top = best_first(scores)
    text = check_repr(result, "HeadDetection", top[0], value(scores, top[0]))
    assert f"heads above {sum(v >= 0.5 for v in scores.flatten().tolist())}" in text
    rows = body(result)
    assert [row[1] for row in rows] == top
    low = value(scores, top[0]) - 0.05
    assert rows[0][3] == f"[{low:.3f}, {low + 0.1:.3f}]" and rows[0][4] == "yes"
    assert close(result.figure().data[0].z, scores)
    bars = result.figures()["top"].data[0]
    assert list(bars.x) == top and close(bars.y, [value(scores, h) for h in top])


def test_sweep_result_ranks_by_the_size_of_the_change():
    delta = spaced(3, 4, 4, -1.0, 0.6)  # the largest change is a drop
    delta[0, 0] = float("nan")  # not swept
    result = SweepResult(2.0, delta + 2.0, delta, "loss (nats)", MODEL)
    top = best_first(delta, key=abs)
    assert value(delta, top[0]) == pytest.approx(-1.0)
    check_repr(result, "SweepResult", top[0], value(delta, top[0]))
    assert [row[1] for row in body(result)] == top
    assert close(result.figure().data[0].z, delta)
    assert result.figure().data[0].colorbar.title.text == "Δ loss (nats)"


def test_curve_result_lists_the_top_heads_in_order():
    heads = [(2, 1), (1, 3), (0, 2)]
    top, random = torch.tensor([3.0, 4.0, 5.0]), torch.tensor([[2.1, 2.2, 2.4], [2.0, 2.3, 2.5]])
    result = CurveResult([1, 2, 3], 2.0, top, random, heads, [[(0, 0), (0, 1), (1, 0)]] * 2, "loss (nats)", MODEL)
    text = check_repr(result, "CurveResult", "L2H1", 3.0)
    assert "random 3 2.450" in text
    rows = body(result)
    assert [row[1] for row in rows] == ["L2H1", "L1H3", "L0H2"]
    assert [float(row[3]) for row in rows] == pytest.approx(random.mean(0).tolist(), abs=5e-4)  # #, head, top, mean
    figure = result.figure()
    (line,) = [t for t in figure.data if t.name == "top induction heads"]
    assert close(line.y, top)
    assert close([t.y for t in figure.data if t.name == "random draws"], random)


def test_patch_result_labels_head_and_position_grids():
    values = spaced(3, 4, 5, 1.0, 3.0)
    heads = PatchResult(
        1.0, 3.0, values, rows=["L0", "L1", "L2"], columns=["H0", "H1", "H2", "H3"], metric="loss (nats)", model=MODEL
    )
    recovery = (values - 3.0) / (1.0 - 3.0)  # independent of causal.metrics.recovery
    top = best_first(recovery)
    check_repr(heads, "PatchResult", top[0], value(recovery, top[0]))
    assert [row[1] for row in body(heads)] == top
    assert close(heads.figure().data[0].z, recovery)
    qkv = PatchResult(1.0, 3.0, values, rows=["q", "k", "v"], columns=["0", "1", "2", "all"])
    layer, head = top[0][1:].split("H")
    assert body(qkv)[0][1] == f"{'qkv'[int(layer)]} @ {['0', '1', '2', 'all'][int(head)]}"
    assert qkv.figure().layout.xaxis.title.text == "position (token)"


def test_circuit_result_shows_each_target_and_its_strongest_sources():
    targets = [(2, 1), (1, 0)]
    effects = {target: spaced(2, 3, 6 + i, -0.5, 0.1) for i, target in enumerate(targets)}
    edges = [
        Edge((layer, head), target, path, float(effects[target][layer, head]), 0.01 * (layer * 3 + head))
        for target in targets
        for path in ("k", "v")
        for layer in range(target[0])
        for head in range(3)
    ]
    result = CircuitResult(targets, {(2, 1): 0.9, (1, 0): 0.7}, 1.5, edges, grid=(3, 3), model=MODEL)
    check_repr(result, "CircuitResult", "L2H1", 0.9)
    rows = body(result)
    assert [row[1] for row in rows] == ["L2H1", "L1H0"]
    for row, target in zip(rows, targets):
        earlier = effects[target][: target[0]]
        k_source = best_first(earlier, 1, key=lambda v: -v)[0]  # the largest drop of the score
        assert row[3] == f"{k_source} {value(earlier, k_source):+.3f}"
        assert row[4].startswith(f"L{target[0] - 1}H2 ")  # v: the largest rise of the loss
    assert list(result.figures()) == ["k", "v"]
    z = result.figure("k").data[0].z  # [source L0H0..L1H2][target]
    assert close([[z[layer * 3 + head][0] for head in range(3)] for layer in range(2)], effects[(2, 1)][:2])
    assert close([z[head][1] for head in range(3)], effects[(1, 0)][0])


def test_checkpoint_scores_show_the_best_head_of_each_step():
    tables = [spaced(2, 3, 10 + i, 0.0, 0.2 + 0.3 * i) for i in range(3)]
    entries = [
        {
            "step": step,
            "path": "run",
            "revision": None,
            "cached": False,
            "seq_len": 8,
            "loss_first_half": 4.0,
            "loss_repeated_half": 4.0 - i,
            "icl_score": -float(i),
            "loss_by_position": [1.0] * 16,
            "scores": {"induction": table.tolist()},
        }
        for i, (step, table) in enumerate(zip([0, 10, 100], tables))
    ]
    result = CheckpointScores(entries)
    assert result == entries  # still the plain list
    last = best_first(tables[-1])
    text = check_repr(result, "CheckpointScores", last[0], value(tables[-1], last[0]))
    # 3 checkpoints: too few for the test on the step axis (a sigmoid has 5 parameters), and it says so
    assert "no phase-change test on 3 checkpoints" in text
    rows = body(result)
    assert [row[1] for row in rows] == ["0", "10", "100"]
    assert [row[2] for row in rows] == [best_first(t, 1)[0] for t in tables]
    assert list(result.figures()) == ["induction", "loss", "heatmap"]
    (first,) = [t for t in result.figure("loss").data if t.name == "first-half loss"]
    assert close(first.y, [4.0] * 3)
    z = result.figure("heatmap").data[0].z  # [flat head][step]
    assert close([[z[flat][i] for flat in range(6)] for i in range(3)], [t.flatten() for t in tables])


def test_model_names_and_cells_are_escaped():
    summary = Summary("X<script>", MODEL, "a & b", ["head <i>", "score"], [["L0H0 <b>", "</td><td>"]], [("n < m", 1.5)])
    source = summary_html(summary)
    assert "<script>" not in source and "<b>" not in source and "<i>" not in source and "&lt;/td&gt;" in source
    table = Table(source)
    assert set(table.tags) <= {"div", "p", "strong", "ul", "li", "table", "thead", "tbody", "tr", "th", "td"}
    assert table.rows == [["#", "head <i>", "score"], ["1", "L0H0 <b>", "</td><td>"]]
    text = "".join(table.text)
    assert SHOWN in text and "X<script>" in text and "n < m: 1.500" in text
    assert summary_text(summary).startswith(f"X<script>({SHOWN}, a & b, n < m 1.500, top: L0H0 <b> </td><td>")


def test_repr_names_only_the_first_rows():
    rows = [[f"L0H{h}", 1.0 - h / 10] for h in range(8)]
    text = summary_text(Summary("R", None, "1 layer", ["head", "score"], rows))
    assert text == "R(1 layer, top: L0H0 1.000, L0H1 0.900, L0H2 0.800, ...)"
    assert text.count("L0H") == REPR_ROWS
    assert len(Table(summary_html(Summary("R", None, "", ["head", "score"], rows * 2))).rows) == 1 + 10
