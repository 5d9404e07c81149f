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
    top_label: str = "top induction heads",
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
        top_label: Legend name of the top-heads line.

    Returns:
        A ``go.Figure``: faint lines per draw, the draws' mean with a one-standard-deviation
        band, the top-heads line and the baseline.
    """
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
                hovertemplate="k=%{x}: %{y:.3f}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=ks,
            y=[float(v) for v in top],
            mode="lines+markers",
            line={"color": "crimson"},
            name=top_label,
            hovertemplate="k=%{x}: %{y:.3f}<extra></extra>",
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
