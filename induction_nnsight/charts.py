"""Plotly figure builders: plain data in, ``go.Figure`` out.

The caller decides whether to show a figure, save its JSON or embed it.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go


def loss_by_position_figure(
    loss: Sequence[float], seq_len: int | None = None, bos: bool = True, title: str | None = None
) -> go.Figure:
    """Line of mean next-token loss against position.

    Args:
        loss: ``[pos - 1]`` losses; entry ``i`` predicts token ``i + 1``.
        seq_len: When given, a dashed line marks where the repeated copy starts.
        bos: Whether the rows start with BOS (shifts that marker by one).
        title: Figure title.

    Returns:
        A ``go.Figure`` with one line trace.
    """
    positions = list(range(1, len(loss) + 1))
    fig = go.Figure(
        go.Scatter(
            x=positions,
            y=[float(v) for v in loss],
            mode="lines+markers",
            name="mean loss",
            hovertemplate="token %{x}: %{y:.2f} nats<extra></extra>",
        )
    )
    if seq_len is not None:
        fig.add_vline(
            x=int(bos) + seq_len - 0.5,
            line_dash="dash",
            line_color="grey",
            annotation_text="repeat starts",
            annotation_position="top right",
        )
    fig.update_layout(
        title=title or "Loss by position on repeated random tokens",
        xaxis_title="Token position predicted",
        yaxis_title="Mean cross-entropy loss (nats)",
        template="plotly_white",
    )
    return fig


def head_heatmap_figure(
    scores: Sequence[Sequence[float]],
    title: str = "Induction score per head",
    colorbar_title: str = "score",
    zmax: float | None = 1.0,
) -> go.Figure:
    """Heatmap of one score per head: x = head, y = layer.

    Args:
        scores: ``[n_layers][n_heads]`` values.
        title: Figure title.
        colorbar_title: Label of the colour bar.
        zmax: Top of the colour scale (None lets Plotly choose).

    Returns:
        A ``go.Figure`` with one heatmap trace; hover text ``L{layer}H{head}: score``.
    """
    rows = [[float(v) for v in row] for row in scores]
    hover = [[f"L{layer}H{head}: {v:.3f}" for head, v in enumerate(row)] for layer, row in enumerate(rows)]
    fig = go.Figure(
        go.Heatmap(
            z=rows,
            x=list(range(len(rows[0]) if rows else 0)),
            y=list(range(len(rows))),
            text=hover,
            hoverinfo="text",
            colorscale="Blues",
            zmin=0.0 if zmax is not None else None,
            zmax=zmax,
            colorbar={"title": {"text": colorbar_title}},
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="Head",
        yaxis_title="Layer",
        xaxis={"dtick": 1},
        yaxis={"dtick": 1 if len(rows) <= 40 else None},  # label every layer while they stay legible
        template="plotly_white",
    )
    return fig
