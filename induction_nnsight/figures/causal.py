"""Plotly figure builders for causal validation: plain data in, ``go.Figure`` out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from .style import title as figure_title


def ablation_curve_figure(
    ks: Sequence[int],
    top: Sequence[float],
    random: Sequence[Sequence[float]],
    baseline: float,
    *,
    title: str,
    subtitle: str | None = None,
    y_title: str = "repeated-half loss (nats)",
    intervals: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> go.Figure:
    """Metric as the top ``k`` heads are ablated, against random ``k``-head sets.

    Args:
        ks: ``[K]`` numbers of heads ablated.
        top: ``[K]`` metric with the top ``k`` heads ablated.
        random: ``[n_draws][K]`` metric for each random draw.
        baseline: Metric with nothing ablated (dashed line).
        title: Figure title: what, and the model.
        subtitle: The settings (tokens, method, draws), under the title.
        y_title: Y axis title, with its unit.
        intervals: ``"top"`` and/or ``"random"`` -> ``([K] low, [K] high)``: 95% intervals over
            rows of the top line and of the draws' mean, drawn as error bars.

    Returns:
        A ``go.Figure``: faint lines per draw, the draws' mean with a one-standard-deviation
        band (the spread over draws of heads), the top-heads line and the baseline; error bars
        where ``intervals`` gives them.
    """
    intervals = intervals or {}
    ks = [int(k) for k in ks]
    draws = [[float(v) for v in row] for row in random]
    n = len(draws)
    mean = [sum(row[i] for row in draws) / n for i in range(len(ks))] if n else []
    std = [math.sqrt(sum((row[i] - mean[i]) ** 2 for row in draws) / (n - 1)) if n > 1 else 0.0 for i in range(len(ks))]
    fig = go.Figure()
    for j, row in enumerate(draws):
        fig.add_trace(
            go.Scatter(
                x=ks,
                y=row,
                mode="lines",
                line={"color": "lightgrey", "width": 1},
                name="random draws",
                legendgroup="draws",
                showlegend=j == 0,
                hovertemplate=f"draw {j}, k=%{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
    if n:
        fig.add_trace(
            go.Scatter(
                x=ks + ks[::-1],
                y=[m + s for m, s in zip(mean, std)] + [m - s for m, s in zip(mean, std)][::-1],
                fill="toself",
                fillcolor="rgba(128,128,128,0.2)",
                line={"width": 0},
                name="random ± 1 sd",
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=ks,
                y=mean,
                mode="lines+markers",
                line={"color": "grey"},
                name=f"random heads (mean of {n})",
                **_error_bars(mean, intervals.get("random")),
            )
        )
    fig.add_trace(
        go.Scatter(
            x=ks,
            y=[float(v) for v in top],
            mode="lines+markers",
            line={"color": "crimson"},
            name="top induction heads",
            **_error_bars([float(v) for v in top], intervals.get("top")),
        )
    )
    fig.add_hline(y=float(baseline), line_dash="dash", line_color="black", annotation_text="nothing ablated")
    fig.update_layout(
        title=figure_title(title, subtitle),
        xaxis_title="heads ablated (k)",
        yaxis_title=y_title,
        template="plotly_white",
    )
    return fig


def _error_bars(values: Sequence[float], interval) -> dict:
    """Scatter keywords: asymmetric error bars for ``interval = (low, high)`` (None: none), and a hover
    that shows the interval."""
    if interval is None:
        return {"hovertemplate": "k=%{x}: %{y:.3f}<extra></extra>"}
    low, high = ([float(v) for v in side] for side in interval)
    return {
        "error_y": {
            "type": "data",
            "symmetric": False,
            "array": [h - v for v, h in zip(values, high)],
            "arrayminus": [v - lo for v, lo in zip(values, low)],
        },
        "customdata": [[lo, h] for lo, h in zip(low, high)],
        "hovertemplate": "k=%{x}: %{y:.3f} [95% CI %{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra></extra>",
    }


def interval_hover(fig: go.Figure, low: Sequence[Sequence[float]], high: Sequence[Sequence[float]]) -> go.Figure:
    """Add each cell's 95% interval to a heatmap's hover text (``L3H2: 0.120 [0.050, 0.190]``), and mark a
    cell whose interval contains 0 as not distinguishable from zero.

    Args:
        fig: A figure whose first trace is a heatmap with ``text`` hover labels.
        low: ``[n_rows][n_columns]`` lower ends (NaN: none), in the heatmap's layout.
        high: ``[n_rows][n_columns]`` upper ends.

    Returns:
        ``fig``, changed in place.
    """
    trace = fig.data[0]
    text = [list(row) for row in trace.text]
    for i, row in enumerate(text):
        for j, label in enumerate(row):
            lo, hi = float(low[i][j]), float(high[i][j])
            if math.isnan(lo) or math.isnan(hi):
                continue
            zero = "" if lo > 0 or hi < 0 else " (not distinguishable from 0)"
            row[j] = f"{label} [95% CI {lo:.3f}, {hi:.3f}]{zero}"
    trace.text = text
    return fig


def attribution_scatter_figure(
    exhaustive: Sequence[float],
    estimate: Sequence[float],
    labels: Sequence[str],
    *,
    correlation: float,
    title: str,
    subtitle: str | None = None,
    axis_title: str = "metric change",
) -> go.Figure:
    """Attribution estimates against exhaustive results, one point per head.

    Args:
        exhaustive: ``[n_heads_total]`` metric change with each head patched (or ablated).
        estimate: ``[n_heads_total]`` the attribution estimate of the same changes.
        labels: ``[n_heads_total]`` head names (``L18H6``).
        correlation: Pearson r of the two, shown in the title.
        title: Figure title: what, and the model.
        subtitle: The settings, under the title.
        axis_title: The change measured, with its unit (both axes).

    Returns:
        A ``go.Figure`` with the points and the ``y = x`` line.
    """
    pairs = [
        (float(a), float(b), name)
        for a, b, name in zip(exhaustive, estimate, labels)
        if not (math.isnan(float(a)) or math.isnan(float(b)))
    ]
    xs, ys, names = ([p[i] for p in pairs] for i in range(3))
    low = min(xs + ys, default=0.0)
    high = max(xs + ys, default=1.0)
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            text=names,
            name="heads",
            hovertemplate="%{text}: exhaustive %{x:.3f}, estimate %{y:.3f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(x=[low, high], y=[low, high], mode="lines", line={"dash": "dot", "color": "grey"}, name="y = x")
    )
    fig.update_layout(
        title=figure_title(f"{title} (Pearson r = {correlation:.3f})", subtitle),
        xaxis_title=f"exhaustive: {axis_title}",
        yaxis_title=f"attribution estimate: {axis_title}",
        template="plotly_white",
    )
    return fig
