"""Plotly figure builders: plain data in, ``go.Figure`` out.

The caller decides whether to show a figure, save its JSON or embed it.
"""

from __future__ import annotations

import math
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


def nan_to_none(value: float) -> float | None:
    """``value`` as a float, or None (``null`` in a chart) where it is NaN."""
    value = float(value)
    return None if math.isnan(value) else value


def heatmap_figure(
    values: Sequence[Sequence[float]],
    *,
    title: str,
    colorbar_title: str,
    value_range: tuple[float | None, float | None] = (0.0, 1.0),
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    x_title: str = "head",
    y_title: str = "layer",
) -> go.Figure:
    """The one heatmap builder: a score per head (or any grid), layer 0 at the top everywhere.

    Args:
        values: ``[n_rows][n_columns]`` numbers (``[n_layers][n_heads]`` by default); NaN cells stay blank.
        title: Figure title.
        colorbar_title: Label of the colour bar (what the numbers are, with their unit).
        value_range: ``(low, high)`` of the quantity, None where unbounded. Values that can be
            negative get a diverging scale centred on 0 (bounded by the range, else by the
            largest magnitude); others a sequential scale from ``low`` to ``high``.
        x_labels: Column labels (``H0, H1, ...`` when None).
        y_labels: Row labels (``L0, L1, ...`` when None).
        x_title: X axis title.
        y_title: Y axis title.

    Returns:
        A ``go.Figure`` with one heatmap trace; hover text ``L{layer}H{head}: value`` on a
        head grid, ``row column: value`` otherwise.
    """
    rows = [[nan_to_none(v) for v in row] for row in values]
    n_columns = len(rows[0]) if rows else 0
    heads = x_labels is None and y_labels is None
    x_labels = list(x_labels) if x_labels is not None else [f"H{h}" for h in range(n_columns)]
    y_labels = list(y_labels) if y_labels is not None else [f"L{layer}" for layer in range(len(rows))]
    joint = "" if heads else " "
    hover = [[f"{y}{joint}{x}: {'n/a' if v is None else f'{v:.3f}'}" for x, v in zip(x_labels, row)]
             for y, row in zip(y_labels, rows)]
    low, high = value_range
    if low is None or low < 0:  # signed: diverging, centred on zero
        finite = [abs(v) for row in rows for v in row if v is not None]
        bound = max(abs(low), abs(high)) if low is not None and high is not None else (max(finite, default=1.0) or 1.0)
        scale = {"colorscale": "RdBu_r", "zmid": 0, "zmin": -bound, "zmax": bound}
    else:
        scale = {"colorscale": "Blues", "zmin": low, "zmax": high}
    fig = go.Figure(go.Heatmap(z=rows, x=x_labels, y=y_labels, text=hover, hoverinfo="text",
                               colorbar={"title": {"text": colorbar_title}}, **scale))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, template="plotly_white")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
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
