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


def top_heads_figure(tops: dict[str, list[dict]], title: str = "Top heads of each kind") -> go.Figure:
    """Bar charts of the best heads, one panel per kind.

    Args:
        tops: ``kind -> [{"layer", "head", "score", "ci"?}, ...]`` best first.
        title: Figure title.

    Returns:
        A ``go.Figure`` with one bar trace per kind (error bars from ``ci`` when present).
    """
    from plotly.subplots import make_subplots

    kinds = list(tops)
    fig = make_subplots(rows=len(kinds), cols=1, subplot_titles=[k.replace("_", " ") for k in kinds],
                        vertical_spacing=min(0.08, 0.5 / max(len(kinds), 1)))
    for row, kind in enumerate(kinds, start=1):
        heads = tops[kind]
        scores = [h["score"] for h in heads]
        error = None
        if heads and "ci" in heads[0]:
            error = {
                "type": "data",
                "symmetric": False,
                "array": [h["ci"][1] - h["score"] for h in heads],
                "arrayminus": [h["score"] - h["ci"][0] for h in heads],
            }
        fig.add_trace(
            go.Bar(x=[f"L{h['layer']}H{h['head']}" for h in heads], y=scores, name=kind, error_y=error,
                   hovertemplate="%{x}: %{y:.3f}<extra>" + kind + "</extra>"),
            row=row, col=1,
        )
    fig.update_layout(title=title, showlegend=False, template="plotly_white", height=max(300, 220 * len(kinds)))
    fig.update_yaxes(title_text="score")
    return fig


def attention_view_figure(
    labels: Sequence[str], pattern: Sequence[Sequence[float]], stripe: Sequence[Sequence[bool]], title: str
) -> go.Figure:
    """One head's attention on one prompt, with the induction stripe marked.

    Args:
        labels: ``[pos]`` token strings (made unique by the caller if needed).
        pattern: ``[query][key]`` attention probabilities.
        stripe: ``[query][key]`` True where an induction head would look
            (right after an earlier copy of the query's token).
        title: Figure title.

    Returns:
        A ``go.Figure``: heatmap (x = key, y = query) plus markers on the stripe.
    """
    axis = [f"{i}: {label}" for i, label in enumerate(labels)]
    fig = go.Figure(
        go.Heatmap(
            z=[[float(v) for v in row] for row in pattern], x=axis, y=axis, colorscale="Blues", zmin=0, zmax=1,
            colorbar={"title": {"text": "attention"}},
            hovertemplate="query %{y}<br>key %{x}<br>attention %{z:.3f}<extra></extra>",
        )
    )
    marks = [(axis[k], axis[q]) for q, row in enumerate(stripe) for k, on in enumerate(row) if on]
    fig.add_trace(
        go.Scatter(
            x=[m[0] for m in marks], y=[m[1] for m in marks], mode="markers", name="induction target",
            marker={"symbol": "square-open", "size": 9, "color": "crimson", "line": {"width": 2}},
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title=title, xaxis_title="Key (attended) token", yaxis_title="Query token", template="plotly_white",
        yaxis={"autorange": "reversed"}, legend={"orientation": "h", "y": -0.15},
        height=max(450, 16 * len(axis) + 200), width=max(550, 16 * len(axis) + 300),
    )
    return fig
