"""Figures of training dynamics: plain data (steps, per-checkpoint numbers) in, ``go.Figure`` out.

Steps are drawn on a log axis; step 0, which a log axis cannot show, is drawn at half the
first positive step and labelled ``0`` (its hover text says ``step 0``).
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from ..names import head_name
from .heads import GridAxes, heatmap_figure, nan_to_none
from .style import CATEGORICAL
from .style import title as figure_title


def _log_steps(steps: Sequence[int]) -> tuple[list[float], dict]:
    """x positions for ``steps`` on a log axis, and the axis settings that label them."""
    positive = [s for s in steps if s > 0]
    zero_at = min(positive) / 2 if positive else 1.0
    xs = [float(s) if s > 0 else zero_at for s in steps]
    axis = {"type": "log", "title": {"text": "training step (log scale)"}}
    if 0 in steps:
        ticks = [zero_at] + [10.0**k for k in range(0, 10) if positive and min(positive) <= 10.0**k <= max(positive)]
        axis |= {"tickvals": ticks, "ticktext": ["0"] + [f"{int(t):,}" for t in ticks[1:]]}
    return xs, axis


def head_label(flat: int, n_heads: int) -> str:
    """``L{layer}H{head}`` of a flat head index."""
    return head_name(flat // n_heads, flat % n_heads)


def score_lines_figure(
    steps: Sequence[int],
    scores: Sequence[Sequence[Sequence[float | None]]],
    *,
    highlight: Sequence[tuple[int, int]] = (),
    kind: str = "induction",
    unit: str | None = None,
    title: str | None = None,
    subtitle: str | None = None,
) -> go.Figure:
    """Each head's score against step, the ``highlight`` heads in colour, the rest grey.

    Args:
        steps: ``[step]`` checkpoint steps, increasing.
        scores: ``[step][n_layers][n_heads]`` scores (None where undefined).
        highlight: ``(layer, head)`` heads drawn in colour, best first, as the caller ranked them
            (the top heads at the last checkpoint).
        kind: The score's name (axis title and hover).
        unit: The score's unit or range (axis title).
        title: Figure title: what, and the model or run.
        subtitle: The settings, under the title.

    Returns:
        A ``go.Figure`` with one line per head (the highlighted heads last, so they are drawn on top).
    """
    n_heads = len(scores[0][0])
    series = [
        [nan_to_none(layer[h]) if layer[h] is not None else None for layer in step for h in range(n_heads)]
        for step in scores
    ]  # [step][flat head]
    by_head = list(zip(*series))  # [flat head][step]
    highlighted = [layer * n_heads + head for layer, head in highlight]
    colours = {flat: CATEGORICAL[i % len(CATEGORICAL)] for i, flat in enumerate(highlighted)}
    xs, axis = _log_steps(steps)
    fig = go.Figure()
    for flat in [h for h in range(len(by_head)) if h not in highlighted] + highlighted[::-1]:
        label, on = head_label(flat, n_heads), flat in highlighted
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=list(by_head[flat]),
                customdata=list(steps),
                mode="lines+markers" if on else "lines",
                name=label,
                line={"width": 3 if on else 1, "color": colours.get(flat, "lightgrey")},
                showlegend=on,
                hovertemplate=f"{label}, step %{{customdata}}: %{{y:.3f}}<extra></extra>",
            )
        )
    name = kind.replace("_", " ")
    fig.update_layout(
        title=figure_title(title or f"{name.capitalize()} score of every head against step", subtitle),
        xaxis=axis,
        yaxis_title=f"{name} score ({unit})" if unit else f"{name} score",
        template="plotly_white",
    )
    return fig


# Every chart here takes ``steps`` first and ``title``/``subtitle`` last: alike signatures, one per chart.
def loss_icl_figure(
    steps: Sequence[int],
    first: Sequence[float | None],
    repeated: Sequence[float | None],
    icl: Sequence[float | None],
    phase: dict | None = None,
    title: str | None = None,
    subtitle: str | None = None,
) -> go.Figure:
    """The first-half and repeated-half losses and the ICL score against step, the phase change shaded.

    Args:
        steps: ``[step]`` checkpoint steps, increasing.
        first: ``[step]`` mean loss on the first copy (nats).
        repeated: ``[step]`` mean loss on the repeated copy (nats).
        icl: ``[step]`` repeated-half minus first-half loss (nats).
        phase: ``{"step", "before", ...}`` from :func:`~induction_nnsight.dynamics.phase.phase_change`.
        title: Figure title: what, and the model or run.
        subtitle: The settings, under the title.
    """
    xs, axis = _log_steps(steps)
    fig = go.Figure()
    for (name, values, dash), colour in zip(
        (
            ("first-half loss", first, "solid"),
            ("repeated-half loss", repeated, "dash"),
            ("repeated - first half", icl, "dot"),
        ),
        CATEGORICAL,
    ):
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[None if v is None else nan_to_none(v) for v in values],
                customdata=list(steps),
                mode="lines+markers",
                name=name,
                line={"dash": dash, "color": colour},
                hovertemplate=f"{name}, step %{{customdata}}: %{{y:.3f}} nats<extra></extra>",
            )
        )
    _shade_phase(fig, steps, xs, phase, labelled=True)
    fig.add_hline(y=0, line_color="grey", line_width=1)
    fig.update_layout(
        title=figure_title(title or "Loss on both halves and their difference against step", subtitle),
        xaxis=axis,
        yaxis_title="loss, or loss difference (nats)",
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _shade_phase(fig: go.Figure, steps: Sequence[int], xs: Sequence[float], phase: dict | None, *, labelled: bool):
    """Shade the phase change, from ``phase["before"]`` to ``phase["step"]`` (nothing for None), on the axis
    whose ``[step]`` positions are ``xs``; ``labelled``: name it and its steps at the top left."""
    if phase is None:
        return
    at = dict(zip(steps, xs))
    text = f"phase change (step {phase['before']:,} to {phase['step']:,})"
    extra = {"annotation_text": text, "annotation_position": "top left"} if labelled else {}
    fig.add_vrect(x0=at[phase["before"]], x1=at[phase["step"]], fillcolor="orange", opacity=0.2, line_width=0, **extra)


def _interval_bars(values: Sequence[float | None], bounds: Sequence[dict | None]) -> dict | None:
    """Plotly ``error_y`` from each point's ``ci_low``/``ci_high`` (None when no point has an interval)."""
    lows = [b.get("ci_low") if b and v is not None else None for v, b in zip(values, bounds)]
    highs = [b.get("ci_high") if b and v is not None else None for v, b in zip(values, bounds)]
    if all(low is None for low in lows):
        return None
    up = [None if h is None else h - v for v, h in zip(values, highs)]
    down = [None if lo is None else v - lo for v, lo in zip(values, lows)]
    return {"type": "data", "symmetric": False, "array": up, "arrayminus": down, "thickness": 1}


def k_edge_figure(
    steps: Sequence[int],
    edges: Sequence[dict | None],
    phase: dict | None = None,
    title: str | None = None,
    subtitle: str | None = None,
) -> go.Figure:
    """The best induction head's strongest k-path edge against step: how far removing its strongest
    key source lowers its induction score (the K-composition forming), the phase change shaded.

    Args:
        steps: ``[step]`` checkpoint steps, increasing.
        edges: ``[step]`` ``{"source", "target", "effect", "loss_effect"}`` (None where the best head
            sits in layer 0).
        phase: ``{"step", "before", ...}`` from :func:`~induction_nnsight.dynamics.phase.phase_change`.
        title: Figure title: what, and the model or run.
        subtitle: The settings, under the title.
    """
    xs, axis = _log_steps(steps)
    labels = [f"{e['source']} -> {e['target']}" if e else "no earlier head" for e in edges]
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=[nan_to_none(e["effect"]) if e and e["effect"] is not None else None for e in edges],
            error_y=_interval_bars([e and e.get("effect") for e in edges], edges),
            customdata=[[s, label] for s, label in zip(steps, labels)],
            mode="lines+markers",
            name="k-path effect",
            hovertemplate="step %{customdata[0]}: %{customdata[1]}, %{y:.3f}<extra></extra>",
        )
    )
    _shade_phase(fig, steps, xs, phase, labelled=False)
    fig.add_hline(y=0, line_color="grey", line_width=1)
    fig.update_layout(
        title=figure_title(title or "Strongest k-path edge against step", subtitle),
        xaxis=axis,
        yaxis_title="Δ induction score (k path)",
        template="plotly_white",
    )
    return fig


def step_head_heatmap(
    steps: Sequence[int],
    scores: Sequence[Sequence[Sequence[float | None]]],
    *,
    kind: str = "induction",
    unit: str | None = None,
    value_range=(0.0, 1.0),
    top: Sequence[tuple[int, int]] = (),
    title: str | None = None,
    subtitle: str | None = None,
) -> go.Figure:
    """A head x checkpoint heatmap: one row per head ``L{layer}H{head}`` (L0H0 at the top, as on every
    layer axis), one column per checkpoint (steps left to right, as on the other dynamics charts).

    Args:
        steps: ``[step]`` checkpoint steps, increasing.
        scores: ``[step][n_layers][n_heads]`` scores (None where undefined).
        kind: The score's name (colour bar and default title).
        unit: The score's unit or range (colour bar).
        value_range: ``(low, high)`` of the score (sets the colour scale).
        top: ``(layer, head)`` heads labelled at the last checkpoint, best first, as the caller ranked them.
        title: Figure title: what, and the model or run.
        subtitle: The settings, under the title.
    """
    n_heads = len(scores[0][0])
    by_step = [[float("nan") if v is None else v for layer in step for v in layer] for step in scores]
    rows = [list(column) for column in zip(*by_step)]  # [flat head][step]
    labels = [head_label(flat, n_heads) for flat in range(len(rows))]
    name = kind.replace("_", " ")
    return heatmap_figure(
        rows,
        title=title or f"{name.capitalize()} score, head x checkpoint",
        subtitle=subtitle,
        colorbar_title=f"{name} score ({unit})" if unit else f"{name} score",
        value_range=value_range,
        axes=GridAxes([f"step {s:,}" for s in steps], labels, "checkpoint (training step)", "head", " at "),
        top=[(layer * n_heads + head, len(steps) - 1) for layer, head in top],
        top_names=[head_name(h) for h in top],
    )


def training_loss_figure(
    log: Sequence[dict], checkpoints: Sequence[int] = (), title: str | None = None, subtitle: str | None = None
) -> go.Figure:
    """The loss log against step: the mean loss, and the loss on fresh and on copied tokens.

    Args:
        log: ``[{"step", "loss", "loss_fresh", "loss_copied", ...}]`` from the run's ``loss_log.jsonl``.
        checkpoints: Steps marked with a tick at the bottom.
        title: Figure title: what, and the run.
        subtitle: The settings, under the title.
    """
    steps = [line["step"] for line in log]
    fig = go.Figure()
    for (key, name), colour in zip(
        (("loss", "all tokens"), ("loss_fresh", "fresh tokens"), ("loss_copied", "copied tokens")), CATEGORICAL
    ):
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=[nan_to_none(line[key]) for line in log],
                mode="lines",
                name=name,
                line={"color": colour},
                hovertemplate=f"{name}, step %{{x}}: %{{y:.3f}} nats<extra></extra>",
            )
        )
    if checkpoints:
        fig.add_trace(
            go.Scatter(
                x=[s for s in checkpoints if s > 0],
                y=[0] * len([s for s in checkpoints if s > 0]),
                mode="markers",
                name="checkpoints",
                marker={"symbol": "line-ns-open", "size": 10},
                hovertemplate="checkpoint-%{x}<extra></extra>",
            )
        )
    fig.update_layout(
        title=figure_title(title or "Training loss against step", subtitle),
        xaxis={"type": "log", "title": {"text": "training step (log scale)"}},
        yaxis_title="cross-entropy loss (nats)",
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
