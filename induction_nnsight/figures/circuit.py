"""Plotly figures of the induction circuit: plain data in, ``go.Figure`` out.

- :func:`circuit_heatmap_figure`: one path's effects, source heads x target heads.
- :func:`mark_verified`: rings the exactly verified cells of a heatmap where the rest were estimated.
- :func:`circuit_graph_figure`: every head as a node placed by layer (layer 0 at the top, as on the
  heatmaps) and head, coloured by kind, and the strongest edges into each target drawn with a
  width that grows with the effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import plotly.graph_objects as go

from ..names import head_name
from .heads import GridAxes, heatmap_figure
from .style import layer_axis
from .style import title as figure_title

# Okabe and Ito's palette: told apart with any colour vision.
KIND_COLOURS = {"induction": "#D55E00", "previous-token": "#0072B2", "other": "#c7c7c7"}
PATH_COLOURS = {"k": "#E69F00", "q": "#56B4E9", "v": "#CC79A7", "total": "#7f7f7f"}


def circuit_heatmap_figure(
    values: Sequence[Sequence[float]],
    sources: Sequence[str],
    targets: Sequence[str],
    *,
    title: str,
    colorbar_title: str,
    subtitle: str | None = None,
    top: Sequence[tuple[int, int]] = (),
) -> go.Figure:
    """``[n_sources][n_targets]`` effects as a heatmap (diverging, centred on 0; NaN blank).

    Args:
        values: ``[n_sources][n_targets]`` effects.
        sources: ``[n_sources]`` source head names in layer order (rows, L0H0 at the top).
        targets: ``[n_targets]`` target head names (columns).
        title: Figure title: what, and the model.
        colorbar_title: The effect, with its unit.
        subtitle: The settings, under the title.
        top: ``(source index, target index)`` cells to label (``L17H3 -> L18H6 -0.31``), best first.
    """
    return heatmap_figure(
        values,
        title=title,
        subtitle=subtitle,
        colorbar_title=colorbar_title,
        value_range=(None, None),
        axes=GridAxes(list(targets), list(sources), "target head", "source head", " -> "),
        top=top,
    )


def circuit_graph_figure(
    n_layers: int,
    n_heads: int,
    kinds: dict[str, str],
    scores: dict[str, tuple[float, float]],
    edges: Sequence[dict],
    *,
    title: str,
    subtitle: str | None = None,
    labelled: Sequence[str] = (),
) -> go.Figure:
    """The circuit as a graph: heads as nodes (x = head, y = layer with layer 0 at the top), edges from
    source down to target.

    Args:
        n_layers: Layers of the model.
        n_heads: Heads per layer.
        kinds: ``"L3H2" -> "induction" | "previous-token" | "other"``.
        scores: ``"L3H2" -> (previous-token score, induction score)`` for the hover text.
        edges: ``{"source", "target", "path", "effect", "loss_effect"}`` to draw; width grows with
            ``|effect|`` (``|loss_effect|`` on the ``v`` path).
        title: Figure title: what, and the model.
        subtitle: The settings, under the title.
        labelled: Heads whose nodes carry their name and induction score (``L18H6 0.90``): the targets.

    Returns:
        A ``go.Figure``: one line trace per edge (legend grouped by path), hover markers at the
        edges' midpoints, and one marker trace per kind of head.
    """

    def position(name: str) -> tuple[int, int]:
        layer, head = name[1:].split("H")
        return int(head), int(layer)  # (x, y)

    fig = go.Figure()
    strengths = [abs(e["loss_effect"] if e["path"] == "v" else e["effect"]) or 0.0 for e in edges]
    top = max(strengths, default=1.0) or 1.0
    shown = set()
    mid_x, mid_y, mid_text = [], [], []
    for edge, strength in zip(edges, strengths):
        (x0, y0), (x1, y1) = position(edge["source"]), position(edge["target"])
        path = edge["path"]
        fig.add_trace(
            go.Scatter(
                x=[x0, x1],
                y=[y0, y1],
                mode="lines",
                hoverinfo="skip",
                legendgroup=path,
                name=f"{path} path",
                showlegend=path not in shown,
                line={
                    "color": PATH_COLOURS.get(path, "black"),
                    "width": 1 + 7 * strength / top,
                    "dash": "dot" if edge.get("verified") is False else "solid",  # dotted: estimated only
                },
                opacity=0.75,
            )
        )
        shown.add(path)
        mid_x.append((x0 + x1) / 2)
        mid_y.append((y0 + y1) / 2)
        mid_text.append(
            f"{edge['source']} -> {edge['target']} ({path}): induction score "
            f"{edge['effect']:+.3f}, repeated-half loss {edge['loss_effect']:+.3f} nats"
            + (" (estimated, not verified)" if edge.get("verified") is False else "")
        )
    if edges:
        fig.add_trace(
            go.Scatter(
                x=mid_x,
                y=mid_y,
                mode="markers",
                marker={"size": 6, "color": "black", "opacity": 0.3},
                text=mid_text,
                hoverinfo="text",
                name="edge (hover)",
            )
        )
    for kind, colour in KIND_COLOURS.items():
        names = [
            head_name(layer, head)
            for layer in range(n_layers)
            for head in range(n_heads)
            if kinds.get(head_name(layer, head), "other") == kind
        ]
        fig.add_trace(
            go.Scatter(
                x=[position(n)[0] for n in names],
                y=[position(n)[1] for n in names],
                name=kind,
                mode="markers+text" if any(n in labelled for n in names) else "markers",
                text=[f"{n} {scores[n][1]:.2f}" if n in labelled and n in scores else "" for n in names],
                textposition="middle right",
                marker={"size": 9 if kind == "other" else 13, "color": colour, "line": {"width": 1, "color": "white"}},
                hovertext=[
                    f"{n}: previous-token {scores[n][0]:.2f}, induction {scores[n][1]:.2f}" if n in scores else n
                    for n in names
                ],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=figure_title(title, subtitle),
        xaxis_title="head",
        yaxis_title="layer",
        template="plotly_white",
        xaxis={"tickvals": list(range(n_heads)), "range": [-0.5, n_heads + 0.5]},  # room for labels
        yaxis={"dtick": 1 if n_layers <= 12 else 2, **layer_axis(n_layers)},
        height=min(1400, max(450, 24 * n_layers + 200)),
    )
    return fig


def mark_verified(figure: go.Figure, edges: Sequence, name: Callable[[tuple[int, int]], str]) -> go.Figure:
    """Ring the cells of a circuit heatmap whose edge was path-patched exactly, where some were only
    estimated (``edge.verified`` False); unchanged when every edge was verified.

    Args:
        figure: From :func:`circuit_heatmap_figure` (x: target names, y: source names).
        edges: Objects with ``source``, ``target`` and ``verified``.
        name: ``(layer, head) -> "L18H6"``.
    """
    if all(getattr(e, "verified", True) for e in edges):
        return figure
    done = [e for e in edges if e.verified]
    figure.add_trace(
        go.Scatter(
            x=[name(e.target) for e in done],
            y=[name(e.source) for e in done],
            mode="markers",
            marker={"symbol": "circle-open", "size": 9, "color": "black"},
            name="verified (exact path patching); the rest estimated",
            hoverinfo="skip",
            showlegend=True,
        )
    )
    return figure
