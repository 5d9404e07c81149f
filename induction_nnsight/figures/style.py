"""The chart conventions every builder follows, each defined once.

- **Title**: what the chart shows and the model on the first line, the settings that made it
  (tokens, seed, method) on a smaller second line: :func:`title`. The caller, which knows
  the settings, writes both; builders never format settings.
- **Colour**: :func:`colour_scale` picks the scale from the quantity's value range. A
  quantity that cannot go below zero (scores in ``[0, 1]``) gets the sequential, perceptually
  uniform and colour-blind-safe :data:`SEQUENTIAL` scale over its fixed range, so one colour
  means one value on every chart; a signed one (ablation and patching effects, path effects)
  gets the diverging :data:`DIVERGING` scale centred on zero (white) over a symmetric range.
  Cells with no value show the grey :data:`NO_VALUE` background. Lines take :data:`CATEGORICAL`.
- **Layer axis**: layers run down the vertical axis, layer 0 at the top (as in the text tables),
  on every heatmap, the circuit graph and the checkpoint x head heatmap: :func:`layer_axis`.
- **Top cells**: the :data:`ANNOTATED` best cells, ranked by the caller with the one ranking
  rule, are outlined and labelled ``L18H6 0.90``: :func:`annotate_cells`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import plotly.graph_objects as go

SEQUENTIAL = "Viridis"
"""Scale of quantities bounded below by zero: perceptually uniform, readable with any colour vision."""
DIVERGING = "RdBu_r"
"""Scale of signed quantities: blue below zero, white at zero, red above (ColorBrewer's
colour-blind-safe RdBu, reversed)."""
NO_VALUE = "#d9d9d9"
"""Plot background, seen through heatmap cells that have no value (NaN, drawn blank)."""
CATEGORICAL = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
"""Line colours, in order: Okabe and Ito's palette, told apart with any colour vision."""
ANNOTATED = 3
"""How many top cells a heatmap labels."""


def layer_axis(n_rows: int) -> dict:
    """Settings of every vertical layer axis: row 0 (layer 0, or head L0H0) at the top, ``n_rows`` rows.

    A fixed range rather than ``autorange="reversed"``, so that the top cells' labels (which
    autorange would make room for) never add empty rows.
    """
    return {"range": [n_rows - 0.5, -0.5], "autorange": False}


def title(text: str, subtitle: str | None = None) -> dict:
    """A layout title: ``text`` (what and which model), and ``subtitle`` (the settings) smaller below it."""
    return {"text": text if not subtitle else f"{text}<br><sup>{subtitle}</sup>"}


def signed(value_range: tuple[float | None, float | None]) -> bool:
    """Whether a quantity with this ``(low, high)`` range can go below zero (so charts on a diverging scale)."""
    low = value_range[0]
    return low is None or low < 0


def colour_scale(value_range: tuple[float | None, float | None], values: Iterable[float | None] = ()) -> dict:
    """The colour scale of a quantity, from its value range: the one place that decides.

    Args:
        value_range: ``(low, high)`` of the quantity (a score's ``HeadScore.value_range``), None
            where unbounded.
        values: The numbers drawn (None or NaN for missing); they bound the scale only on an
            unbounded side.

    Returns:
        Heatmap keyword arguments: ``colorscale``, ``zmin``, ``zmax``, and ``zmid=0`` for a
        signed quantity (``low`` None or below zero), whose range is symmetric about zero.

    Example:
        >>> colour_scale((0.0, 1.0))
        {'colorscale': 'Viridis', 'zmin': 0.0, 'zmax': 1.0}
        >>> colour_scale((None, None), [0.5, -2.0, None])
        {'colorscale': 'RdBu_r', 'zmid': 0.0, 'zmin': -2.0, 'zmax': 2.0}
    """
    low, high = value_range
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if signed(value_range):
        if low is not None and high is not None:
            bound = max(abs(low), abs(high))
        else:
            bound = max((abs(v) for v in finite), default=0.0) or 1.0
        return {"colorscale": DIVERGING, "zmid": 0.0, "zmin": -float(bound), "zmax": float(bound)}
    if high is None:
        high = max(finite, default=low)
        high = high if high > low else low + 1.0
    return {"colorscale": SEQUENTIAL, "zmin": float(low), "zmax": float(high)}


def cell_label(name: str, value: float, signed: bool) -> str:
    """``L18H6 0.90`` (``L18H6 +0.31`` on a signed scale)."""
    return f"{name} {value:+.2f}" if signed else f"{name} {value:.2f}"


def label_positions(
    cells: Sequence[tuple[int, int]], weights: Sequence[Sequence[float]], row_gap: float = 1.0
) -> list[tuple[float, float]]:
    """Where the labels of ``cells`` go, in grid units ``(column, row)``: near their cell, over the cells
    that matter least, and never on another label.

    Args:
        cells: ``(row, column)`` cells to label, best first.
        weights: ``[n_rows][n_columns]`` how much each cell matters, 0 to 1 (its distance from the
            scale's neutral end); the labelled cells count 1.
        row_gap: Rows a label is tall (1 where a row is at least as tall as a label).

    Returns:
        One ``(column, row)`` per cell: within a column and one to three label heights of it (a label
        spans up to three columns), each a label height or three columns from the others.
    """
    n_rows, n_columns = len(weights), len(weights[0]) if weights else 0
    marked = set(map(tuple, cells))

    def covered(x: float, y: float) -> float:
        rows = {
            r for r in range(math.floor(y - row_gap / 2 + 0.5), math.ceil(y + row_gap / 2 - 0.5) + 1) if 0 <= r < n_rows
        }
        cost = 0.0
        for r in rows:
            for c, weight in ((x - 1, 0.5), (x, 1.0), (x + 1, 0.5)):
                if 0 <= c < n_columns:
                    cost = max(cost, weight * (1.0 if (r, int(c)) in marked else weights[r][int(c)]))
        return cost

    placed: list[tuple[float, float]] = []
    for row, column in cells:
        options = []
        for order, (dy, dx) in enumerate(
            (dy, dx) for dy in (-1.0, 1.0, -1.5, 1.5, -2.0, 2.0, -3.0, 3.0) for dx in (0.0, 1.0, -1.0)
        ):
            x, y = column + dx, row + dy * row_gap
            if not (0 <= x <= n_columns - 1 and -0.5 <= y <= n_rows - 0.5):
                continue
            if any(abs(y - py) < row_gap and abs(x - px) < 3.0 for px, py in placed):
                continue
            options.append((round(covered(x, y) + 0.05 * abs(dy), 6), order, (x, y)))
        placed.append(min(options)[2] if options else (float(column), row - row_gap))
    return placed


def annotate_cells(
    fig: go.Figure,
    cells: Sequence[tuple[int, int]],
    x_labels: Sequence[str],
    y_labels: Sequence[str],
    texts: Sequence[str],
    weights: Sequence[Sequence[float]],
    row_gap: float = 1.0,
) -> None:
    """Outline grid cells and label each, with a line from the label to its cell (:func:`label_positions`).

    Args:
        fig: A figure whose category axes ``x`` and ``y`` hold ``x_labels`` and ``y_labels``.
        cells: ``(row, column)`` indices into the grid, best first.
        x_labels: Column labels.
        y_labels: Row labels.
        texts: One label per cell.
        weights: ``[n_rows][n_columns]`` how much each cell matters, 0 to 1 (labels avoid covering those that do).
        row_gap: Rows a label is tall.
    """
    positions = label_positions(cells, weights, row_gap)
    for rank, ((row, column), text, (ax, ay)) in enumerate(zip(cells, texts, positions)):
        fig.add_shape(
            type="rect",
            xref="x",
            yref="y",
            x0=column - 0.5,
            x1=column + 0.5,
            y0=row - 0.5,
            y1=row + 0.5,
            line={"color": "black", "width": 2},
            fillcolor="rgba(0,0,0,0)",
            name=f"top {rank + 1}",
        )
        fig.add_annotation(
            x=x_labels[column],
            y=y_labels[row],
            xref="x",
            yref="y",
            text=text,
            showarrow=True,
            arrowhead=0,
            arrowwidth=1.5,
            axref="x",
            ayref="y",
            ax=ax,
            ay=ay,
            font={"size": 11, "color": "black"},
            bgcolor="rgba(255,255,255,0.85)",
            bordercolor="black",
            borderwidth=1,
            borderpad=2,
        )


def cell_weights(values: Sequence[Sequence[float | None]], scale: dict) -> list[list[float]]:
    """How far each cell is from the neutral end of ``scale`` (:func:`colour_scale`), 0 to 1 (0 for no value)."""
    low, high, mid = scale["zmin"], scale["zmax"], scale.get("zmid")
    span = (high - low) or 1.0
    return [
        [
            0.0 if v is None else min(1.0, abs(v - mid) / (span / 2) if mid is not None else max(v - low, 0.0) / span)
            for v in row
        ]
        for row in values
    ]
