import json
import re

import plotly.graph_objects as go
import pytest
import torch

from induction_nnsight.app.report import ascii_attention, text_report
from induction_nnsight.figures.heads import attention_view_figure, top_heads_figure
from induction_nnsight.scores.detect import HeadDetection


def test_detections_correct_clearly_above_over_every_head():
    from induction_nnsight.scores.detect import detections
    from induction_nnsight.scores.results import HeadScores

    torch.manual_seed(0)
    rows = 0.3 + 0.05 * torch.randn(10, 4, 5)  # [batch, layers, heads], every head near 0.3
    rows[:, 0, 0] += 0.3  # one head well above 0.4
    rows[:, 1, 1] += 0.13  # one just above it: its lower end clears 0.4, the corrected test need not
    scores = HeadScores(per_row={"induction": rows})
    found = detections(scores, 0.4, {"model": "m"})["induction"]
    stats = pytest.importorskip("scipy.stats")
    p = stats.ttest_1samp(rows.double().numpy(), 0.4, axis=0, alternative="greater").pvalue
    q = stats.false_discovery_control(p.flatten()).reshape(p.shape)
    assert torch.allclose(found.q_above.double(), torch.from_numpy(q), atol=1e-6)
    flagged = {(h["layer"], h["head"]) for h in found.top(20) if h["clearly_above"]}
    assert flagged == {(int(i), int(j)) for i, j in zip(*(q <= 0.05).nonzero())}
    assert (0, 0) in flagged
    assert found.settings["correction"].startswith("clearly above: Benjamini-Hochberg")


def test_detection_lists_heads_above_threshold_best_first():
    scores = torch.tensor([[0.1, 0.9], [0.5, 0.3]])
    detection = HeadDetection("induction", 0.4, scores, scores - 0.2, scores + 0.05, {"batch": 1})
    assert [(h["layer"], h["head"]) for h in detection.heads] == [(0, 1), (1, 0)]
    assert detection.heads[0]["clearly_above"] and not detection.heads[1]["clearly_above"]
    assert len(detection.top(3)) == 3
    as_json = json.loads(json.dumps(detection.to_dict()))
    assert as_json["kind"] == "induction" and as_json["scores"][0][1] == pytest.approx(0.9)


def test_report_shows_facts_losses_and_bars():
    facts = dict(
        name="m",
        architecture="A",
        attn_implementation="sdpa",
        n_layers=2,
        n_heads=3,
        n_kv_heads=1,
        d_model=8,
        d_head=4,
        n_ctx=64,
    )
    text = text_report(facts, {"induction": [{"layer": 1, "head": 2, "score": 0.5, "ci": [0.4, 0.6]}]}, (9.0, 2.0))
    assert "key/value heads 1" in text and "drop 7.00" in text
    assert "L1H2" in text and "#" * 15 in text and "0.500 [0.400, 0.600]" in text
    # the point at its interval's precision: 0.019 [0.02, 0.02] would seem outside its own interval
    near = text_report(facts, {"induction": [{"layer": 1, "head": 2, "score": 0.0193, "ci": [0.0171, 0.0214]}]})
    point, low, high = re.search(r"L1H2\s+(\S+) \[(\S+), (\S+)\]", near).groups()
    assert {len(v.split(".")[1]) for v in (point, low, high)} == {3} and float(low) <= float(point) <= float(high)


def test_top_heads_figure_has_a_panel_per_kind():
    tops = {
        "a": [{"layer": 0, "head": 1, "score": 0.5}],
        "b": [{"layer": 1, "head": 0, "score": 0.2, "ci": [0.1, 0.3]}],
    }
    fig = top_heads_figure(tops)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    assert fig.data[1].error_y.array[0] == pytest.approx(0.1)


def test_attention_view_marks_the_stripe():
    pattern = torch.eye(3).tolist()
    stripe = [[False] * 3, [False] * 3, [False, True, False]]
    fig = attention_view_figure(["a", "b", "a"], pattern, stripe, "t")
    assert fig.data[0].type == "heatmap" and list(fig.data[1].x) == ["1: b"] and list(fig.data[1].y) == ["2: a"]
    text = ascii_attention(["a", "b", "a"], torch.eye(3), torch.tensor(stripe))
    assert text.splitlines()[2].count("[") == 1 and "-> a" in text.splitlines()[2]
