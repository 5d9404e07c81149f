"""Plotly builders for the benchmark: plain data in, ``go.Figure`` out (the package's chart conventions,
:mod:`induction_nnsight.figures.style`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from induction_nnsight.figures.style import CATEGORICAL
from induction_nnsight.figures.style import title as _title

PALETTE = (*CATEGORICAL, "#7f7f7f", "#c7c7c7")
"""Contender colours: the package's colour-blind-safe line colours, then greys."""


def ratio_figure(
    ratios: Mapping[str, Mapping[str, float]],
    target: float | None = 1.2,
    title: str = "Wall time / plain eager forward pass",
    subtitle: str | None = None,
) -> go.Figure:
    """Grouped bars: one group per model, one bar per contender.

    Args:
        ratios: ``{model: {contender: median time / forward-eager median}}``.
        target: Draws a dashed line at this ratio (None: no line).
        title: Figure title: what, and the models.
        subtitle: The settings (shape, rounds, machine), under the title.

    Returns:
        A ``go.Figure`` with one bar trace per contender, log-scaled y.
    """
    contenders: list[str] = []
    for per_model in ratios.values():
        contenders += [c for c in per_model if c not in contenders]
    models = list(ratios)
    fig = go.Figure()
    for name in contenders:
        ys = [ratios[m].get(name) for m in models]
        fig.add_bar(
            x=models,
            y=ys,
            name=name,
            text=[f"{y:.2f}x" if y is not None else "" for y in ys],
            textposition="outside",
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.2f}}x<extra></extra>",
        )
    if target is not None:
        fig.add_hline(
            y=target,
            line_dash="dash",
            line_color="grey",
            annotation_text=f"target {target}x",
            annotation_position="top left",
        )
    fig.update_layout(
        title=_title(title, subtitle),
        barmode="group",
        yaxis_type="log",
        yaxis_title="wall time / plain eager forward (ratio, log scale)",
        xaxis_title="model",
        template="plotly_white",
        legend_title="contender",
    )
    return fig


def sweep_figure(
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float | None]]]],
    *,
    x_titles: Mapping[str, str],
    y_title: str,
    title: str,
    subtitle: str | None = None,
    n_cols: int = 2,
    log_y: bool = True,
    log_x: bool = False,
) -> go.Figure:
    """A grid of line charts: one panel per (model, sweep), one line per contender.

    Args:
        panels: ``{panel title: {contender: (xs, ys)}}``; a None y leaves a gap.
        x_titles: ``{panel title: x-axis title}``.
        y_title: Title of every y axis.
        title: Figure title: what, and the models.
        subtitle: The settings (rounds, machine), under the title.
        n_cols: Panels per row.
        log_y: Log-scale the y axes.
        log_x: Log-scale the x axes.

    Returns:
        A ``go.Figure``; each contender keeps one colour and one legend entry.
    """
    names = list(panels)
    n_rows = max(1, -(-len(names) // n_cols))
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=names, horizontal_spacing=0.08, vertical_spacing=0.14)
    palette = list(PALETTE)
    colours: dict[str, str] = {}
    for i, panel in enumerate(names):
        row, col = i // n_cols + 1, i % n_cols + 1
        for contender, (xs, ys) in panels[panel].items():
            first = contender not in colours
            colour = colours.setdefault(contender, palette[len(colours) % len(palette)])
            fig.add_trace(
                go.Scatter(
                    x=list(xs),
                    y=list(ys),
                    mode="lines+markers",
                    name=contender,
                    legendgroup=contender,
                    showlegend=first,
                    line_color=colour,
                    hovertemplate=f"{contender}<br>%{{x}}: %{{y:.4g}}<extra></extra>",
                ),
                row=row,
                col=col,
            )
        fig.update_xaxes(title_text=x_titles.get(panel, ""), type="log" if log_x else "linear", row=row, col=col)
        fig.update_yaxes(
            title_text=f"{y_title} (log scale)" if log_y else y_title,
            type="log" if log_y else "linear",
            row=row,
            col=col,
        )
    fig.update_layout(
        title=_title(title, subtitle), template="plotly_white", height=380 * n_rows, legend_title="contender"
    )
    return fig
