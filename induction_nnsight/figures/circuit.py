"""Plotly figures of the induction circuit: plain data in, ``go.Figure`` out.

- :func:`circuit_heatmap_figure`: one path's effects, source heads x target heads.
- :func:`circuit_graph_figure`: every head as a node placed by layer, coloured by kind, and the
  strongest edges into each target drawn with a width that grows with the effect.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from .heads import heatmap_figure

KIND_COLOURS = {"induction": "#d62728", "previous-token": "#1f77b4", "other": "#c7c7c7"}
PATH_COLOURS = {"k": "#ff7f0e", "q": "#2ca02c", "v": "#9467bd", "total": "#7f7f7f"}


def circuit_heatmap_figure(values: Sequence[Sequence[float]], sources: Sequence[str], targets: Sequence[str], *,
                           title: str, colorbar_title: str) -> go.Figure:
    """``[n_sources][n_targets]`` effects as a heatmap (diverging, centred on 0; NaN blank)."""
    return heatmap_figure(values, title=title, colorbar_title=colorbar_title, value_range=(None, None),
                          x_labels=list(targets), y_labels=list(sources), x_title="target head",
                          y_title="source head")


def circuit_graph_figure(
    n_layers: int,
    n_heads: int,
    kinds: dict[str, str],
    scores: dict[str, tuple[float, float]],
    edges: Sequence[dict],
    *,
    title: str,
) -> go.Figure:
    """The circuit as a graph: heads as nodes (x = layer, y = head), edges from source to target.

    Args:
        n_layers: Layers of the model.
        n_heads: Heads per layer.
        kinds: ``"L3H2" -> "induction" | "previous-token" | "other"``.
        scores: ``"L3H2" -> (previous-token score, induction score)`` for the hover text.
        edges: ``{"source", "target", "path", "effect", "loss_effect"}`` to draw; width grows with
            ``|effect|`` (``|loss_effect|`` on the ``v`` path).
        title: Figure title.

    Returns:
        A ``go.Figure``: one line trace per edge (legend grouped by path), hover markers at the
        edges' midpoints, and one marker trace per kind of head.
    """
    def position(name: str) -> tuple[int, int]:
        layer, head = name[1:].split("H")
        return int(layer), int(head)

    fig = go.Figure()
    strengths = [abs(e["loss_effect"] if e["path"] == "v" else e["effect"]) or 0.0 for e in edges]
    top = max(strengths, default=1.0) or 1.0
    shown = set()
    mid_x, mid_y, mid_text = [], [], []
    for edge, strength in zip(edges, strengths):
        (x0, y0), (x1, y1) = position(edge["source"]), position(edge["target"])
        path = edge["path"]
        fig.add_trace(go.Scatter(
            x=[x0, x1], y=[y0, y1], mode="lines", hoverinfo="skip", legendgroup=path,
            name=f"{path} path", showlegend=path not in shown,
            line={"color": PATH_COLOURS.get(path, "black"), "width": 1 + 7 * strength / top},
            opacity=0.75,
        ))
        shown.add(path)
        mid_x.append((x0 + x1) / 2)
        mid_y.append((y0 + y1) / 2)
        mid_text.append(f"{edge['source']} -> {edge['target']} ({path}): induction score "
                        f"{edge['effect']:+.3f}, repeated-half loss {edge['loss_effect']:+.3f} nats")
    if edges:
        fig.add_trace(go.Scatter(x=mid_x, y=mid_y, mode="markers", marker={"size": 6, "color": "black", "opacity": 0.3},
                                 text=mid_text, hoverinfo="text", name="edge (hover)"))
    for kind, colour in KIND_COLOURS.items():
        names = [f"L{layer}H{head}" for layer in range(n_layers) for head in range(n_heads)
                 if kinds.get(f"L{layer}H{head}", "other") == kind]
        fig.add_trace(go.Scatter(
            x=[position(n)[0] for n in names], y=[position(n)[1] for n in names], mode="markers", name=kind,
            marker={"size": 9 if kind == "other" else 13, "color": colour, "line": {"width": 1, "color": "white"}},
            text=[f"{n}: previous-token {scores[n][0]:.2f}, induction {scores[n][1]:.2f}" if n in scores else n
                  for n in names],
            hoverinfo="text",
        ))
    fig.update_layout(title=title, xaxis_title="layer", yaxis_title="head", template="plotly_white",
                      xaxis={"dtick": 1 if n_layers <= 12 else 2}, yaxis={"dtick": 1})
    return fig
