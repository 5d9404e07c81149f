"""Every figure builder follows the chart conventions of ``figures/style.py``: a title (with the
settings as a subtitle), axis titles, the colour scale the value range calls for, the caller's top
cells labelled where they are, and layer 0 at the top of every layer axis."""

import functools
import json
import math

import plotly.colors
import plotly.graph_objects as go
import pytest

from bench.charts import ratio_figure, sweep_figure
from induction_nnsight.figures.causal import ablation_curve_figure, attribution_scatter_figure
from induction_nnsight.figures.circuit import circuit_graph_figure, circuit_heatmap_figure
from induction_nnsight.figures.dynamics import (
    k_edge_figure,
    loss_icl_figure,
    score_lines_figure,
    step_head_heatmap,
    training_loss_figure,
)
from induction_nnsight.figures.heads import (
    attention_view_figure,
    heatmap_figure,
    loss_by_position_figure,
    top_heads_figure,
)
from induction_nnsight.figures.style import DIVERGING, SEQUENTIAL, colour_scale, label_positions

SCORES = [[0.1, 0.2, 0.05], [0.9, 0.3, float("nan")]]  # [n_layers = 2][n_heads = 3]
SIGNED = [[0.4, -1.5, 0.0], [0.2, 0.7, float("nan")]]
STEPS = [0, 10, 100]
BY_STEP = [[[0.0, 0.1], [0.1, 0.0]], [[0.1, 0.2], [0.3, 0.1]], [[0.1, 0.2], [0.8, 0.4]]]  # [step][layer][head]
EDGES = [
    {"source": "L0H1", "target": "L1H0", "path": "k", "effect": -0.3, "loss_effect": 0.1},
    {"source": "L0H0", "target": "L1H0", "path": "v", "effect": 0.0, "loss_effect": 0.2},
]


def scale_of(name: str) -> list:
    """A named Plotly scale as ``[(position, colour), ...]`` (positions rounded: stored ones differ in the last bit)."""
    return [(round(p, 9), c) for p, c in plotly.colors.get_colorscale(name)]


def stored_scale(trace) -> list:
    return [(round(p, 9), c) for p, c in trace.colorscale]


@functools.cache
def every_figure() -> dict[str, go.Figure]:
    """One figure from each builder, each titled by its caller with a subtitle."""
    sub = "2 x 2 x 5 repeated random tokens, seed 0"
    return {
        "loss": loss_by_position_figure([3.0, 2.0, 0.5], 2, title="Loss — m", subtitle=sub),
        "heatmap": heatmap_figure(SCORES, title="Score — m", subtitle=sub, colorbar_title="score (fraction)"),
        "top_heads": top_heads_figure(
            {"induction": [{"layer": 1, "head": 0, "score": 0.9}]},
            "Top — m",
            sub,
            units={"induction": "fraction of attention"},
        ),
        "attention": attention_view_figure(
            ["a", "b", "a"],
            [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0]],
            [[False] * 3, [False] * 3, [False, True, False]],
            "L1H0 — m",
            sub,
        ),
        "curve": ablation_curve_figure(
            [1, 2], [3.0, 4.0], [[2.0, 2.5], [2.1, 2.4]], 2.0, title="Curve — m", subtitle=sub
        ),
        "scatter": attribution_scatter_figure(
            [0.1, 0.2],
            [0.1, 0.3],
            ["L0H0", "L0H1"],
            correlation=0.9,
            title="Attribution — m",
            subtitle=sub,
            axis_title="change in loss (nats)",
        ),
        "circuit_heatmap": circuit_heatmap_figure(
            [[-0.3], [0.1]],
            ["L0H0", "L0H1"],
            ["L1H0"],
            title="Path k — m",
            subtitle=sub,
            colorbar_title="Δ induction score",
        ),
        "circuit_graph": circuit_graph_figure(
            2,
            2,
            {"L1H0": "induction", "L0H1": "previous-token"},
            {"L1H0": (0.1, 0.9), "L0H1": (0.8, 0.1)},
            EDGES,
            title="Circuit — m",
            subtitle=sub,
            labelled=["L1H0"],
        ),
        "score_lines": score_lines_figure(
            STEPS, BY_STEP, highlight=[(1, 0)], unit="fraction of attention", title="Lines — run", subtitle=sub
        ),
        "loss_icl": loss_icl_figure(
            STEPS,
            [5.0, 4.0, 3.0],
            [5.0, 3.0, 1.0],
            [0.0, -1.0, -2.0],
            {"step": 100, "before": 10},
            title="Loss — run",
            subtitle=sub,
        ),
        "k_edge": k_edge_figure(STEPS, [None, EDGES[0], EDGES[0]], title="k edge — run", subtitle=sub),
        "step_head": step_head_heatmap(
            STEPS, BY_STEP, unit="fraction of attention", title="Heatmap — run", subtitle=sub
        ),
        "training_loss": training_loss_figure(
            [{"step": s, "loss": 1.0, "loss_fresh": 2.0, "loss_copied": 0.5} for s in (1, 10, 100)],
            [10, 100],
            title="Training — run",
            subtitle=sub,
        ),
        "bench_ratio": ratio_figure({"m": {"forward-eager": 1.0, "scan": 1.1}}, title="Ratio — m", subtitle=sub),
        "bench_sweep": sweep_figure(
            {"m: batch": {"scan": ([1, 2], [1.0, 1.1])}, "m: length": {"scan": ([9, 17], [1.0, 1.2])}},
            x_titles={"m: batch": "batch", "m: length": "tokens per row"},
            y_title="ratio",
            title="Sweep — m",
            subtitle=sub,
        ),
    }


@pytest.mark.parametrize("name", list(every_figure()))
def test_every_chart_has_a_title_with_its_settings_and_titled_axes(name):
    fig = every_figure()[name]
    text = fig.layout.title.text
    assert " — " in text and "<br><sup>2 x 2 x 5 repeated random tokens, seed 0</sup>" in text
    x_axes = [fig.layout[k] for k in fig.layout if k.startswith("xaxis")]
    y_axes = [fig.layout[k] for k in fig.layout if k.startswith("yaxis")]
    assert x_axes and y_axes
    assert any(a.title.text for a in x_axes), "no x axis title"
    assert all(a.title.text for a in y_axes), "a y axis without a title"


def test_stacked_panels_axis_titles_fit_their_panels():
    """A y-axis title longer than its panel overlaps the next panel's (about 7 px a character at 12 px)."""
    tops = {k: [{"layer": 0, "head": 0, "score": 0.5, "ci": [0.4, 0.6]}] for k in ("previous_token", "anti_induction")}
    tops |= {f"kind_{i}": tops["previous_token"] for i in range(6)}
    fig = top_heads_figure(tops, units={"anti_induction": "logits", "previous_token": "fraction of attention"})
    for key in [k for k in fig.layout if k.startswith("yaxis")]:
        axis = fig.layout[key]
        panel_px = fig.layout.height * (axis.domain[1] - axis.domain[0])
        assert len(axis.title.text) * 7 <= panel_px, (key, axis.title.text, panel_px)
    titles = [a.text for a in fig.layout.annotations]
    assert "anti induction (logits)" in titles and "previous token (fraction of attention)" in titles


def test_heatmaps_have_units_on_the_colour_bar():
    figures = every_figure()
    for name in ("heatmap", "circuit_heatmap", "step_head", "attention"):
        assert figures[name].data[0].colorbar.title.text, name
    assert "(fraction of attention)" in figures["step_head"].data[0].colorbar.title.text


def test_scores_in_zero_one_get_the_sequential_scale_over_the_fixed_range():
    fig = heatmap_figure([[0.1, 0.2]], title="t", colorbar_title="c")  # values far from 1: the range stays fixed
    trace = fig.data[0]
    assert stored_scale(trace) == scale_of(SEQUENTIAL) and (trace.zmin, trace.zmax) == (0.0, 1.0)
    assert trace.zmid is None
    steps = step_head_heatmap(STEPS, BY_STEP).data[0]
    assert stored_scale(steps) == scale_of(SEQUENTIAL) and (steps.zmin, steps.zmax) == (0.0, 1.0)
    attention = every_figure()["attention"].data[0]
    assert stored_scale(attention) == scale_of(SEQUENTIAL) and (attention.zmin, attention.zmax) == (0.0, 1.0)


@pytest.mark.parametrize("value_range, bound", [((None, None), 1.5), ((-1.0, 1.0), 1.0), ((-0.5, 2.0), 2.0)])
def test_signed_values_get_a_diverging_scale_centred_on_zero_and_symmetric(value_range, bound):
    trace = heatmap_figure(SIGNED, title="t", colorbar_title="c", value_range=value_range).data[0]
    assert stored_scale(trace) == scale_of(DIVERGING)
    assert trace.zmid == 0 and trace.zmin == pytest.approx(-bound) and trace.zmax == pytest.approx(bound)


def test_circuit_heatmap_is_diverging_from_its_largest_magnitude():
    trace = every_figure()["circuit_heatmap"].data[0]
    assert stored_scale(trace) == scale_of(DIVERGING) and trace.zmid == 0
    assert (trace.zmin, trace.zmax) == (pytest.approx(-0.3), pytest.approx(0.3))


def test_colour_scale_edge_cases():
    assert colour_scale((None, None), [0.0, None, float("nan")])["zmax"] == 1.0  # nothing but zeros: still a range
    assert colour_scale((0.0, None), [3.0, float("nan")]) == {"colorscale": SEQUENTIAL, "zmin": 0.0, "zmax": 3.0}


def test_the_given_top_cells_are_labelled_where_they_are():
    # the caller's order, not the builder's: (1, 0) first, then (0, 1); the NaN cell (1, 2) is skipped
    fig = heatmap_figure(SCORES, title="t", colorbar_title="c", top=[(1, 0), (0, 1), (1, 2)])
    notes = fig.layout.annotations
    assert [(a.x, a.y, a.text) for a in notes] == [("H0", "L1", "L1H0 0.90"), ("H1", "L0", "L0H1 0.20")]
    boxes = [(s.x0, s.x1, s.y0, s.y1) for s in fig.layout.shapes]
    assert boxes == [(-0.5, 0.5, 0.5, 1.5), (0.5, 1.5, -0.5, 0.5)]  # category positions: column, row


def test_signed_labels_carry_their_sign_and_grid_labels_their_names():
    fig = heatmap_figure(SIGNED, title="t", colorbar_title="c", value_range=(None, None), top=[(0, 1)])
    assert fig.layout.annotations[0].text == "L0H1 -1.50"
    circuit = circuit_heatmap_figure(
        [[-0.3], [0.1]], ["L0H0", "L0H1"], ["L1H0"], title="t", colorbar_title="c", top=[(0, 0)]
    )
    assert [(a.x, a.y, a.text) for a in circuit.layout.annotations] == [("L1H0", "L0H0", "L0H0 -> L1H0 -0.30")]


def test_step_head_heatmap_labels_the_given_heads_at_the_last_checkpoint():
    fig = step_head_heatmap(STEPS, BY_STEP, top=[(1, 0), (1, 1)])
    assert [(a.x, a.y, a.text) for a in fig.layout.annotations] == [
        ("step 100", "L1H0", "L1H0 0.80"),
        ("step 100", "L1H1", "L1H1 0.40"),
    ]
    trace = fig.data[0]
    assert list(trace.y) == ["L0H0", "L0H1", "L1H0", "L1H1"] and list(trace.x) == ["step 0", "step 10", "step 100"]
    assert [row[2] for row in trace.z] == [0.1, 0.2, 0.8, 0.4]  # the same numbers, one row per head


def test_score_lines_colour_the_given_heads_only():
    fig = score_lines_figure(STEPS, BY_STEP, highlight=[(0, 1), (1, 0)])
    coloured = [t.name for t in fig.data if t.line.color != "lightgrey"]
    assert sorted(coloured) == ["L0H1", "L1H0"] and fig.data[-1].name == "L0H1"  # the best drawn last, on top


def test_layer_zero_is_at_the_top_of_every_layer_axis():
    figures = every_figure()
    rows = {"heatmap": 2, "circuit_heatmap": 2, "step_head": 4, "circuit_graph": 2}  # layers, or heads L0H0...
    for name, n in rows.items():
        axis = figures[name].layout.yaxis
        assert axis.autorange is False and tuple(axis.range) == (n - 0.5, -0.5), name  # row 0 at the top
    assert figures["heatmap"].data[0].y[0] == "L0"
    assert figures["circuit_heatmap"].data[0].y[0] == "L0H0"
    assert figures["step_head"].data[0].y[0] == "L0H0"
    graph = figures["circuit_graph"]
    induction = next(t for t in graph.data if t.name == "induction")
    assert (list(induction.x), list(induction.y)) == ([0], [1])  # L1H0: x = head, y = layer
    assert graph.layout.yaxis.title.text == "layer" and graph.layout.xaxis.title.text == "head"
    assert list(induction.text) == ["L1H0 0.90"]


def test_values_are_drawn_unchanged():
    trace = heatmap_figure(SCORES, title="t", colorbar_title="c").data[0]
    assert [list(row) for row in trace.z] == [[0.1, 0.2, 0.05], [0.9, 0.3, None]]
    assert not any(v is not None and math.isnan(v) for row in trace.z for v in row)


def test_the_scan_job_labels_its_top_heads_and_names_model_and_settings(tiny_model, tiny_dir):
    from induction_nnsight.app.jobs import ScanConfig
    from induction_nnsight.app.scan_job import run_scan

    config = ScanConfig(model=str(tiny_dir("gpt2")), batch=2, seq_len=6, low=1, high=128)
    results, files = run_scan(config, tiny_model("gpt2"))
    heat = go.Figure(json.loads(files["induction_scores.json"]))
    expected = [
        (f"H{h['head']}", f"L{h['layer']}", f"L{h['layer']}H{h['head']} {h['score']:.2f}")
        for h in results["top_heads"][:3]
    ]
    assert [(a.x, a.y, a.text) for a in heat.layout.annotations] == expected
    assert heat.layout.title.text == (
        f"Induction score per head — {tiny_dir('gpt2')}"
        "<br><sup>2 x 2 x 6 repeated random tokens in [1, 128), seed 0</sup>"
    )


def test_labels_never_overlap_nor_cover_a_top_cell_or_a_strong_one():
    weights = [[0.0] * 4 for _ in range(6)]
    weights[1][2] = 0.9  # a strong cell that is not labelled: labels keep off it
    cells = [(2, 2), (2, 1), (3, 2)]
    positions = label_positions(cells, weights)
    for i, (x, y) in enumerate(positions):
        assert (round(y), round(x)) not in set(cells) | {(1, 2)}
        for x2, y2 in positions[i + 1 :]:
            assert abs(y - y2) >= 1.0 or abs(x - x2) >= 3.0
    tall = label_positions(cells, weights, row_gap=2.0)  # rows shorter than a label: labels further apart
    assert all(abs(a[1] - b[1]) >= 2.0 or abs(a[0] - b[0]) >= 3.0 for i, a in enumerate(tall) for b in tall[i + 1 :])
