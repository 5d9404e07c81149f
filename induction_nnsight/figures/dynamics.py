"""Figures of training dynamics: plain data (steps, per-checkpoint numbers) in, ``go.Figure`` out.

Steps are drawn on a log axis; step 0, which a log axis cannot show, is drawn at half the
first positive step and labelled ``0`` (its hover text says ``step 0``).
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from .heads import heatmap_figure, nan_to_none


def _log_steps(steps: Sequence[int]) -> tuple[list[float], dict]:
    """x positions for ``steps`` on a log axis, and the axis settings that label them."""
    positive = [s for s in steps if s > 0]
    zero_at = min(positive) / 2 if positive else 1.0
    xs = [float(s) if s > 0 else zero_at for s in steps]
    axis = {"type": "log", "title": {"text": "training step (log scale)"}}
    if 0 in steps:
        ticks = [zero_at] + [10.0 ** k for k in range(0, 10) if positive and min(positive) <= 10.0 ** k <= max(positive)]
        axis |= {"tickvals": ticks, "ticktext": ["0"] + [f"{int(t):,}" for t in ticks[1:]]}
    return xs, axis


def head_label(flat: int, n_heads: int) -> str:
    """``L{layer}H{head}`` of a flat head index."""
    return f"L{flat // n_heads}H{flat % n_heads}"


def score_lines_figure(steps: Sequence[int], scores: Sequence[Sequence[Sequence[float | None]]], *, top: int = 3,
                       kind: str = "induction", title: str | None = None) -> go.Figure:
    """Each head's score against step, the ``top`` heads (by their last score) in colour, the rest grey.

    Args:
        steps: ``[step]`` checkpoint steps, increasing.
        scores: ``[step][n_layers][n_heads]`` scores (None where undefined).
        top: Heads highlighted.
        kind: The score's name (axis title and hover).
        title: Figure title.

    Returns:
        A ``go.Figure`` with one line per head (the top heads last, so they are drawn on top).
    """
    n_heads = len(scores[0][0])
    series = [[nan_to_none(layer[h]) if layer[h] is not None else None for layer in step for h in range(n_heads)]
              for step in scores]  # [step][flat head]
    by_head = list(zip(*series))  # [flat head][step]
    last = [next((v for v in reversed(values) if v is not None), float("-inf")) for values in by_head]
    ranked = sorted(range(len(by_head)), key=lambda h: (-last[h], h))
    highlighted = ranked[:top]
    xs, axis = _log_steps(steps)
    fig = go.Figure()
    for flat in [h for h in range(len(by_head)) if h not in highlighted] + highlighted[::-1]:
        label, on = head_label(flat, n_heads), flat in highlighted
        fig.add_trace(go.Scatter(
            x=xs, y=list(by_head[flat]), customdata=list(steps), mode="lines+markers" if on else "lines", name=label,
            line={"width": 3 if on else 1, **({} if on else {"color": "lightgrey"})}, showlegend=on,
            hovertemplate=f"{label}, step %{{customdata}}: %{{y:.3f}}<extra></extra>",
        ))
    fig.update_layout(title=title or f"{kind.replace('_', ' ').capitalize()} score of every head against step",
                      xaxis=axis, yaxis_title=f"{kind.replace('_', ' ')} score", template="plotly_white")
    return fig


def loss_icl_figure(steps: Sequence[int], first: Sequence[float | None], repeated: Sequence[float | None],
                    icl: Sequence[float | None], phase: dict | None = None, title: str | None = None) -> go.Figure:
    """The first-half and repeated-half losses and the ICL score against step, the phase change shaded.

    Args:
        steps: ``[step]`` checkpoint steps, increasing.
        first: ``[step]`` mean loss on the first copy (nats).
        repeated: ``[step]`` mean loss on the repeated copy (nats).
        icl: ``[step]`` repeated-half minus first-half loss (nats).
        phase: ``{"step", "before", ...}`` from :func:`~induction_nnsight.dynamics.phase.phase_change`.
        title: Figure title.
    """
    xs, axis = _log_steps(steps)
    fig = go.Figure()
    for name, values, dash in (("first-half loss", first, "solid"), ("repeated-half loss", repeated, "solid"),
                               ("ICL score (repeated - first)", icl, "dot")):
        fig.add_trace(go.Scatter(x=xs, y=[None if v is None else nan_to_none(v) for v in values],
                                 customdata=list(steps), mode="lines+markers", name=name, line={"dash": dash},
                                 hovertemplate=f"{name}, step %{{customdata}}: %{{y:.3f}} nats<extra></extra>"))
    if phase is not None:
        at = {s: x for s, x in zip(steps, xs)}
        fig.add_vrect(x0=at[phase["before"]], x1=at[phase["step"]], fillcolor="orange", opacity=0.2, line_width=0,
                      annotation_text=f"phase change (step {phase['before']:,} to {phase['step']:,})",
                      annotation_position="top left")
    fig.add_hline(y=0, line_color="grey", line_width=1)
    fig.update_layout(title=title or "Loss on both halves and ICL score against step", xaxis=axis,
                      yaxis_title="nats", template="plotly_white", legend={"orientation": "h", "y": -0.2})
    return fig


def k_edge_figure(steps: Sequence[int], edges: Sequence[dict | None], phase: dict | None = None,
                  title: str | None = None) -> go.Figure:
    """The best induction head's strongest k-path edge against step: how far removing its strongest
    key source lowers its induction score (the K-composition forming), the phase change shaded.

    Args:
        steps: ``[step]`` checkpoint steps, increasing.
        edges: ``[step]`` ``{"source", "target", "effect", "loss_effect"}`` (None where the best head
            sits in layer 0).
        phase: ``{"step", "before", ...}`` from :func:`~induction_nnsight.dynamics.phase.phase_change`.
        title: Figure title.
    """
    xs, axis = _log_steps(steps)
    labels = [f"{e['source']} -> {e['target']}" if e else "no earlier head" for e in edges]
    fig = go.Figure(go.Scatter(
        x=xs, y=[nan_to_none(e["effect"]) if e and e["effect"] is not None else None for e in edges],
        customdata=[[s, label] for s, label in zip(steps, labels)], mode="lines+markers", name="k-path effect",
        hovertemplate="step %{customdata[0]}: %{customdata[1]}, %{y:.3f}<extra></extra>",
    ))
    if phase is not None:
        at = {s: x for s, x in zip(steps, xs)}
        fig.add_vrect(x0=at[phase["before"]], x1=at[phase["step"]], fillcolor="orange", opacity=0.2, line_width=0)
    fig.add_hline(y=0, line_color="grey", line_width=1)
    fig.update_layout(title=title or "Strongest k-path edge against step", xaxis=axis,
                      yaxis_title="change of the induction score (k path)", template="plotly_white")
    return fig


def step_head_heatmap(steps: Sequence[int], scores: Sequence[Sequence[Sequence[float | None]]], *,
                      kind: str = "induction", value_range=(0.0, 1.0), title: str | None = None) -> go.Figure:
    """A step x head heatmap (one row per checkpoint, one column per head ``L{layer}H{head}``)."""
    n_heads = len(scores[0][0])
    rows = [[float("nan") if v is None else v for layer in step for v in layer] for step in scores]
    labels = [head_label(flat, n_heads) for flat in range(len(rows[0]))]
    return heatmap_figure(rows, title=title or f"{kind.replace('_', ' ').capitalize()} score, step x head",
                          colorbar_title=f"{kind.replace('_', ' ')} score", value_range=value_range,
                          x_labels=labels, y_labels=[f"step {s:,}" for s in steps], x_title="head", y_title="checkpoint")


def training_loss_figure(log: Sequence[dict], checkpoints: Sequence[int] = (), title: str | None = None) -> go.Figure:
    """The loss log against step: the mean loss, and the loss on fresh and on copied tokens.

    Args:
        log: ``[{"step", "loss", "loss_fresh", "loss_copied", ...}]`` from the run's ``loss_log.jsonl``.
        checkpoints: Steps marked with a tick at the bottom.
    """
    steps = [line["step"] for line in log]
    fig = go.Figure()
    for key, name in (("loss", "all tokens"), ("loss_fresh", "fresh tokens"), ("loss_copied", "copied tokens")):
        fig.add_trace(go.Scatter(x=steps, y=[nan_to_none(line[key]) for line in log], mode="lines", name=name,
                                 hovertemplate=f"{name}, step %{{x}}: %{{y:.3f}} nats<extra></extra>"))
    if checkpoints:
        fig.add_trace(go.Scatter(x=[s for s in checkpoints if s > 0], y=[0] * len([s for s in checkpoints if s > 0]),
                                 mode="markers", name="checkpoints", marker={"symbol": "line-ns-open", "size": 10},
                                 hovertemplate="checkpoint-%{x}<extra></extra>"))
    fig.update_layout(title=title or "Training loss against step", xaxis={"type": "log", "title": {"text": "step (log scale)"}},
                      yaxis_title="cross-entropy loss (nats)", template="plotly_white",
                      legend={"orientation": "h", "y": -0.2})
    return fig
