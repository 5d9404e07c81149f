"""Figures of the dual route and of in-context learning on text: plain data in, ``go.Figure`` out."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from ..names import head_name
from .heads import heatmap_figure
from .style import CATEGORICAL
from .style import title as figure_title

__all__ = ["dissociation_figure", "dual_route_heatmap", "dual_route_scatter", "icl_loss_figure"]


def dual_route_scatter(
    token: Sequence[Sequence[float]],
    concept: Sequence[Sequence[float]],
    *,
    title: str,
    subtitle: str | None = None,
    axis_titles: tuple[str, str] = ("token-induction score", "concept-induction score"),
    marked: dict[str, Sequence[tuple[int, int]]] | None = None,
) -> go.Figure:
    """Every head's token score against its concept score (Feucht et al.'s figure), coloured by layer.

    Args:
        token: ``[n_layers][n_heads]`` token scores (x).
        concept: ``[n_layers][n_heads]`` concept scores (y).
        title: What and which model.
        subtitle: The settings.
        axis_titles: ``(x, y)`` axis titles.
        marked: ``{label: [(layer, head), ...]}`` heads to label by name (e.g. the top of each kind).

    Returns:
        A scatter with one point per head, hover ``L{layer}H{head}: (x, y)``.
    """
    xs, ys, text, layers = [], [], [], []
    for layer, (row_x, row_y) in enumerate(zip(token, concept)):
        for head, (x, y) in enumerate(zip(row_x, row_y)):
            xs.append(x)
            ys.append(y)
            text.append(head_name(layer, head))
            layers.append(layer)
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            text=text,
            marker={"color": layers, "colorscale": "Viridis", "colorbar": {"title": "layer"}, "size": 7},
            hovertemplate="%{text}: (%{x:.4f}, %{y:.4f})<extra></extra>",
            showlegend=False,
        )
    )
    for label, heads in (marked or {}).items():
        for layer, head in heads:
            fig.add_annotation(
                x=token[layer][head], y=concept[layer][head], text=head_name(layer, head), showarrow=True, arrowhead=0
            )
        del label
    fig.update_layout(
        title=figure_title(title, subtitle),
        xaxis_title=axis_titles[0],
        yaxis_title=axis_titles[1],
        template="plotly_white",
    )
    return fig


def dual_route_heatmap(
    values: Sequence[Sequence[float]],
    *,
    title: str,
    colorbar_title: str,
    subtitle: str | None = None,
    top: Sequence[tuple[int, int]] = (),
    signed: bool = False,
) -> go.Figure:
    """One dual-route grid as a layer x head heatmap (:func:`~induction_nnsight.figures.heads.heatmap_figure`).

    Args:
        values: ``[n_layers][n_heads]`` scores.
        title: What and which model.
        colorbar_title: What the numbers are.
        subtitle: The settings.
        top: Heads to outline, best first.
        signed: A copying score (a change of probability): a diverging scale centred on 0.
    """
    value_range = (None, None) if signed else (0.0, 1.0)
    return heatmap_figure(
        values, title=title, colorbar_title=colorbar_title, subtitle=subtitle, value_range=value_range, top=top
    )


def dissociation_figure(
    curve: dict[str, dict[str, list[dict[str, float]]]], *, title: str, subtitle: str | None = None
) -> go.Figure:
    """Top-k curves: the drop of the copied word's probability when the top k heads of each ranking are
    ablated, per task, with intervals.

    Args:
        curve: ``{ranking: {task: [{"k", "mean", "ci_low", "ci_high"}, ...]}}`` (e.g. ``{"concept":
            {"meaning": [...], "verbatim": [...]}, "token": {...}}``).
        title: What and which model.
        subtitle: The settings.

    Returns:
        One line per ranking and task against k, with the 95% interval of each point as error bars.
    """
    fig = go.Figure()
    for i, (ranking, by_task) in enumerate(curve.items()):
        for j, (task, points) in enumerate(by_task.items()):
            fig.add_scatter(
                name=f"top {ranking} heads, {task} copying",
                x=[p["k"] for p in points],
                y=[p["mean"] for p in points],
                mode="lines+markers",
                line={"color": CATEGORICAL[i % len(CATEGORICAL)], "dash": "solid" if j == 0 else "dash"},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [p["ci_high"] - p["mean"] for p in points],
                    "arrayminus": [p["mean"] - p["ci_low"] for p in points],
                },
            )
    fig.update_layout(
        title=figure_title(title, subtitle),
        xaxis_title="heads ablated (k)",
        yaxis_title="drop of P(copied word's first token), 95% interval",
        template="plotly_white",
    )
    return fig


def icl_loss_figure(
    loss: Sequence[float], positions: tuple[int, int], *, title: str, subtitle: str | None = None
) -> go.Figure:
    """Mean loss against token index on natural text, the two positions of the ICL score marked.

    Args:
        loss: ``[n]`` mean loss at token index ``i + 1`` (entry ``i``: the loss of predicting token
            ``i + 1`` from tokens ``0..i``), charted against that index on a log axis.
        positions: ``(early, late)`` token indices of Olsson's score.
        title: What and which model.
        subtitle: The settings.
    """
    fig = go.Figure(
        go.Scatter(
            x=list(range(1, len(loss) + 1)),
            y=list(loss),
            mode="lines",
            name="mean loss",
            hovertemplate="token %{x}: %{y:.3f} nats<extra></extra>",
        )
    )
    for position in positions:
        fig.add_vline(x=position, line_dash="dash", annotation_text=f"token {position}")
    fig.update_layout(
        title=figure_title(title, subtitle),
        xaxis_title="token index",
        yaxis_title="loss (nats)",
        xaxis_type="log",
        template="plotly_white",
        showlegend=False,
    )
    return fig
