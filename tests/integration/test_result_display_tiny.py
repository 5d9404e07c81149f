"""What the public API returns shows itself (issue 16), on a tiny random GPT-2: every result names
its model, its ``repr`` is one short line naming a head that is top by the result's own table,
its HTML table lists heads best first, and its figures hold its numbers.

The tiny model's scores nearly tie, so "top" is checked with the ranking rule's tolerance
(within 1e-4 of the best), never by a name that float noise could swap.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import plotly.graph_objects as go
import pytest
import torch

from induction_nnsight import (
    CircuitMeasure,
    Execution,
    RandomDraws,
    ablation_curve,
    ablation_sweep,
    circuit,
    detect_heads,
    head_scores,
    patch_heads,
    repeated_half_metric,
    repeated_pair,
    repeated_probe,
    repeated_tokens,
    scan,
    score_checkpoints,
)
from induction_nnsight.dynamics.checkpoints import Checkpoint
from induction_nnsight.dynamics.scoring import ProbeSettings
from tests.conftest import TINY_BOS, TINY_VOCAB

QUIET = Execution(progress=False)

SEQ = 8
RANK_TOLERANCE = 1e-4  # the ranking rule rounds to 4 decimals
HEAD = re.compile(r"(L\d+H\d+) (-?\d+\.\d+)")


class Cells(HTMLParser):
    def __init__(self, source: str):
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell = None
        self.feed(source)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def gpt2(tiny_model):
    return tiny_model("gpt2")


@pytest.fixture(scope="module")
def tokens():
    return repeated_tokens(2, SEQ, seed=1, low=1, high=TINY_VOCAB, bos_token_id=TINY_BOS)


def value(table: torch.Tensor, name: str) -> float:
    layer, head = name[1:].split("H")
    return float(table[int(layer), int(head)])


def check_top(result, table: torch.Tensor, kind: str, key=lambda t: t) -> list[str]:
    """The repr is one short line naming the model and a top head of ``key(table)``; the HTML rows are
    heads of ``key(table)`` best first (within the ranking tolerance). Returns the HTML rows' heads."""
    text = repr(result)
    assert text.startswith(f"{kind}(tiny-gpt2") and "\n" not in text and len(text) <= 240, text
    ranked = key(table)
    best = float(ranked.nan_to_num(float("-inf")).max())
    named = HEAD.search(text)
    assert named and value(ranked, named[1]) >= best - RANK_TOLERANCE, text
    assert float(named[2]) == pytest.approx(value(table, named[1]), abs=5e-4)
    heads = [row[1] for row in Cells(result._repr_html_()).rows[1:]]
    scores = [value(ranked, h) for h in heads]
    assert len(set(heads)) == len(heads) == min(10, int((~ranked.isnan()).sum()))
    assert scores[0] >= best - RANK_TOLERANCE
    assert all(a >= b - RANK_TOLERANCE for a, b in zip(scores, scores[1:]))
    return heads


def close(figure_values, numbers: torch.Tensor) -> bool:
    got = torch.tensor([[float("nan") if v is None else v for v in row] for row in figure_values], dtype=torch.float64)
    return torch.allclose(got, numbers.double(), atol=1e-6, rtol=0, equal_nan=True)


def test_scan_head_scores_and_detection(gpt2, tokens):
    result = scan(gpt2, tokens, SEQ)
    assert Path(result.model).name.startswith("tiny-gpt2") and result.bos is True
    check_top(result, result.induction_scores, "ScanResult")
    assert isinstance(result.figure(), go.Figure) and close(result.figure().data[0].z, result.induction_scores)
    scores = head_scores(
        gpt2,
        repeated_probe(2, SEQ, seed=1, low=1, high=TINY_VOCAB, bos_token_id=TINY_BOS),
        kinds=("induction", "previous_token"),
    )
    check_top(scores, scores.mean("induction"), "HeadScores")
    assert close(scores.figure("previous_token").data[0].z, scores.mean("previous_token"))
    found = detect_heads(
        gpt2,
        "previous_token",
        probe=repeated_probe(3, SEQ, seed=2, low=1, high=TINY_VOCAB, bos_token_id=TINY_BOS),
    )
    check_top(found, found.scores, "HeadDetection")
    assert close(found.figure().data[0].z, found.scores)


def test_ablation_and_patching(gpt2, tokens):
    metric = repeated_half_metric(SEQ, bos=True)
    sweep = ablation_sweep(gpt2, tokens, metric, execution=QUIET)
    assert sweep.metric == "loss (nats)"
    check_top(sweep, sweep.delta, "SweepResult", key=torch.abs)
    assert close(sweep.figure().data[0].z, sweep.delta)
    curve = ablation_curve(gpt2, tokens, metric, [(1, 2), (0, 1)], draws=RandomDraws(n_draws=2), execution=QUIET)
    text = repr(curve)
    assert text.startswith("CurveResult(tiny-gpt2") and f"L1H2 {float(curve.top[0]):.3f}" in text
    assert [row[1] for row in Cells(curve._repr_html_()).rows[1:]] == ["L1H2", "L0H1"]
    (line,) = [t for t in curve.figure().data if t.name == "top induction heads"]
    assert close([line.y], curve.top[None])
    pair = repeated_pair(2, SEQ, seed=3, low=1, high=TINY_VOCAB, bos_token_id=TINY_BOS)
    patched = patch_heads(gpt2, pair, execution=QUIET)
    recovery = (patched.values - patched.corrupted) / (patched.clean - patched.corrupted)
    check_top(patched, recovery, "PatchResult")
    assert close(patched.figure().data[0].z, recovery)


def test_circuit_and_checkpoints(gpt2, tokens, tiny_dir):
    found = circuit(
        gpt2,
        tokens,
        SEQ,
        measure=CircuitMeasure(targets=[(1, 2), (1, 0)], paths=("k", "total"), composition=False),
        execution=QUIET,
    )
    assert found.grid == (2, 4) and re.match(r"CircuitResult\(tiny-gpt2\d*, 2 targets", repr(found))
    assert [row[1] for row in Cells(found._repr_html_()).rows[1:]] == ["L1H2", "L1H0"]
    effects = {(e.source, e.target): e.effect for e in found.edges if e.path == "k"}
    z = found.figure("k").data[0].z  # [source L0H0..L0H3][target]
    assert close(z, torch.tensor([[effects[((0, h), t)] for t in found.targets] for h in range(4)]))

    def load(path, **_):
        return gpt2

    steps = score_checkpoints(
        [Checkpoint(0, str(tiny_dir("gpt2"))), Checkpoint(10, str(tiny_dir("gpt2")) + "/")],
        ProbeSettings(batch=2, seq_len=SEQ),
        load=load,
        execution=QUIET,
    )
    assert isinstance(steps, list) and [entry["step"] for entry in steps] == [0, 10]
    last = torch.tensor(steps[-1]["scores"]["induction"])
    text = repr(steps)
    assert text.startswith("CheckpointScores(2 checkpoints, steps 0..10")
    assert "no phase-change test on 2 checkpoints" in text
    named = HEAD.search(text)
    assert value(last, named[1]) >= float(last.max()) - RANK_TOLERANCE
    first, *_ = [t for t in steps.figure("loss").data if t.name == "first-half loss"]
    assert first.y == pytest.approx([entry["loss_first_half"] for entry in steps], abs=1e-6)
