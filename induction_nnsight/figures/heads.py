"""Plotly figure builders: plain data in, ``go.Figure`` out.

The caller decides whether to show a figure, save its JSON or embed it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from ..names import head_name
from .style import NO_VALUE, annotate_cells, cell_label, cell_weights, colour_scale, layer_axis
from .style import title as figure_title


def loss_by_position_figure(
    loss: Sequence[float],
    seq_len: int | None = None,
    bos: bool = True,
    title: str | None = None,
    subtitle: str | None = None,
) -> go.Figure:
    """Line of mean next-token loss against position.

    Args:
        loss: ``[pos - 1]`` losses; entry ``i`` predicts token ``i + 1``.
        seq_len: When given, a dashed line marks where the repeated copy starts.
        bos: Whether the rows start with BOS (shifts that marker by one).
        title: Figure title: what, and the model.
        subtitle: The settings, under the title.

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
        title=figure_title(title or "Loss by position on repeated random tokens", subtitle),
        xaxis_title="Token position predicted",
        yaxis_title="Mean cross-entropy loss (nats)",
        template="plotly_white",
    )
    return fig


def nan_to_none(value: float | None) -> float | None:
    """``value`` as a float, or None (``null`` in a chart) where it is NaN or already None (a strict-JSON null
    read back, e.g. a resumed run's loss on copied tokens where nothing is copied)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class GridAxes:
    """What a heatmap's rows and columns are: their labels, the axis titles, and how a cell is named.

    Attributes:
        x_labels: Column labels (``H0, H1, ...`` when None).
        y_labels: Row labels (``L0, L1, ...`` when None).
        x_title: X axis title.
        y_title: Y axis title.
        joint: What joins a row and a column label in hover and cell labels (``""`` on a head
            grid, giving ``L18H6``; ``" "`` otherwise, when None).
    """

    x_labels: Sequence[str] | None = None
    y_labels: Sequence[str] | None = None
    x_title: str = "head"
    y_title: str = "layer"
    joint: str | None = None


def heatmap_figure(
    values: Sequence[Sequence[float]],
    *,
    title: str,
    colorbar_title: str,
    subtitle: str | None = None,
    value_range: tuple[float | None, float | None] = (0.0, 1.0),
    axes: GridAxes | None = None,
    top: Sequence[tuple[int, int]] = (),
    top_names: Sequence[str] | None = None,
) -> go.Figure:
    """The one heatmap builder: a score per head (or any grid), first row (layer 0) at the top everywhere.

    Args:
        values: ``[n_rows][n_columns]`` numbers (``[n_layers][n_heads]`` by default); NaN cells stay blank
            (grey).
        title: Figure title: what the numbers are, and the model.
        colorbar_title: Label of the colour bar (what the numbers are, with their unit).
        subtitle: The settings that made the numbers, under the title.
        value_range: ``(low, high)`` of the quantity, None where unbounded; sets the colour scale
            (:func:`~induction_nnsight.figures.style.colour_scale`).
        axes: The rows' and columns' labels and titles (:class:`GridAxes`; None: a layer x head grid).
        top: ``(row, column)`` cells to outline and label (``L18H6 0.90``), best first, as the
            caller ranked them.
        top_names: The names in those labels (row and column label joined by ``axes.joint`` when None).

    Returns:
        A ``go.Figure`` with one heatmap trace; hover text ``L{layer}H{head}: value`` on a
        head grid, ``row column: value`` otherwise.
    """
    axes = axes or GridAxes()
    x_labels, y_labels, x_title, y_title, joint = axes.x_labels, axes.y_labels, axes.x_title, axes.y_title, axes.joint
    rows = [[nan_to_none(v) for v in row] for row in values]
    n_columns = len(rows[0]) if rows else 0
    heads = x_labels is None and y_labels is None
    x_labels = list(x_labels) if x_labels is not None else [f"H{h}" for h in range(n_columns)]
    y_labels = list(y_labels) if y_labels is not None else [f"L{layer}" for layer in range(len(rows))]
    joint = joint if joint is not None else "" if heads else " "
    hover = [
        [f"{y}{joint}{x}: {'n/a' if v is None else f'{v:.3f}'}" for x, v in zip(x_labels, row)]
        for y, row in zip(y_labels, rows)
    ]
    scale = colour_scale(value_range, (v for row in rows for v in row))
    fig = go.Figure(
        go.Heatmap(
            z=rows,
            x=x_labels,
            y=y_labels,
            text=hover,
            hoverinfo="text",
            colorbar={"title": {"text": colorbar_title, "side": "right"}},
            **scale,
        )
    )
    height = min(1400, max(450, 20 * len(y_labels) + 200))
    fig.update_layout(
        title=figure_title(title, subtitle),
        xaxis_title=x_title,
        yaxis_title=y_title,
        template="plotly_white",
        plot_bgcolor=NO_VALUE,
        height=height,
    )
    fig.update_yaxes(type="category", showgrid=False, **layer_axis(len(y_labels)))
    fig.update_xaxes(type="category", showgrid=False, range=[-0.5, n_columns - 0.5], autorange=False)
    names = list(top_names) if top_names is not None else [f"{y_labels[r]}{joint}{x_labels[c]}" for r, c in top]
    chosen = [(cell, name) for cell, name in zip(top, names) if rows[cell[0]][cell[1]] is not None]
    annotate_cells(
        fig,
        [cell for cell, _ in chosen],
        x_labels,
        y_labels,
        [cell_label(name, rows[r][c], "zmid" in scale) for (r, c), name in chosen],
        cell_weights(rows, scale),
        row_gap=max(1.0, 20 * len(y_labels) / (height - 200)),
    )  # a label is about 20 px tall
    return fig


def top_heads_figure(
    tops: dict[str, list[dict]],
    title: str = "Top heads of each kind",
    subtitle: str | None = None,
    units: dict[str, str] | None = None,
) -> go.Figure:
    """Bar charts of the best heads, one panel per kind.

    Args:
        tops: ``kind -> [{"layer", "head", "score", "ci"?}, ...]`` best first.
        title: Figure title: what, and the model.
        subtitle: The settings, under the title.
        units: ``kind -> unit``, shown in each panel's title (its y axis reads ``score``).

    Returns:
        A ``go.Figure`` with one bar trace per kind (error bars from ``ci`` when present).
    """
    from plotly.subplots import make_subplots

    kinds = list(tops)
    fig = make_subplots(
        rows=len(kinds),
        cols=1,
        # the unit in the panel's title, not its y axis: stacked 200 px panels leave no room for long axis titles
        subplot_titles=[
            k.replace("_", " ") + (f" ({(units or {})[k]})" if (units or {}).get(k) else "") for k in kinds
        ],
        vertical_spacing=min(0.08, 0.5 / max(len(kinds), 1)),
    )
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
            go.Bar(
                x=[head_name(h["layer"], h["head"]) for h in heads],
                y=scores,
                name=kind,
                error_y=error,
                hovertemplate="%{x}: %{y:.3f}<extra>" + kind + "</extra>",
            ),
            row=row,
            col=1,
        )
    fig.update_layout(
        title=figure_title(title, subtitle),
        showlegend=False,
        template="plotly_white",
        height=max(300, 220 * len(kinds)),
    )
    for row in range(1, len(kinds) + 1):
        fig.update_yaxes(title_text="score", row=row, col=1)
        fig.update_xaxes(title_text="head" if row == len(kinds) else None, row=row, col=1)
    return fig


def attention_view_figure(
    labels: Sequence[str],
    pattern: Sequence[Sequence[float]],
    stripe: Sequence[Sequence[bool]],
    title: str,
    subtitle: str | None = None,
) -> go.Figure:
    """One head's attention on one prompt, with the induction stripe marked.

    Args:
        labels: ``[pos]`` token strings (made unique by the caller if needed).
        pattern: ``[query][key]`` attention probabilities.
        stripe: ``[query][key]`` True where an induction head would look
            (right after an earlier copy of the query's token).
        title: Figure title: the head, and the model.
        subtitle: The settings (prompt, repeats), under the title.

    Returns:
        A ``go.Figure``: heatmap (x = key, y = query, query 0 at the top) plus markers on the stripe.
    """
    axis = [f"{i}: {label}" for i, label in enumerate(labels)]
    fig = go.Figure(
        go.Heatmap(
            z=[[float(v) for v in row] for row in pattern],
            x=axis,
            y=axis,
            **colour_scale((0.0, 1.0)),
            colorbar={"title": {"text": "attention probability (0..1)", "side": "right"}},
            hovertemplate="query %{y}<br>key %{x}<br>attention %{z:.3f}<extra></extra>",
        )
    )
    marks = [(axis[k], axis[q]) for q, row in enumerate(stripe) for k, on in enumerate(row) if on]
    fig.add_trace(
        go.Scatter(
            x=[m[0] for m in marks],
            y=[m[1] for m in marks],
            mode="markers",
            name="induction target",
            marker={"symbol": "square-open", "size": 9, "color": "#ff00ff", "line": {"width": 2}},
            hoverinfo="skip",
        )
    )
    # The layout has the shape of every chart's (title, axis titles, template, axes), its values its own.
    fig.update_layout(
        title=figure_title(title, subtitle),
        xaxis_title="key (attended) position: token",
        yaxis_title="query position: token",
        template="plotly_white",
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.15},
        height=max(450, 16 * len(axis) + 200),
        width=max(550, 16 * len(axis) + 300),
    )
    return fig
