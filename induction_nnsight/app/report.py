"""Plain-text tables and machine-readable results."""

from __future__ import annotations

from typing import Any

import torch

from ..names import head_name
from ..scores.ranking import rank_heads
from ..stats import ALPHA


def with_interval(value: float, low: float | None, high: float | None, decimals: int = 3, sign: bool = False) -> str:
    """A point and its interval at one precision, so the point never seems outside its own interval.

    >>> with_interval(0.0193, 0.0171, 0.0214)
    '0.019 [0.017, 0.021]'
    >>> with_interval(-0.806, -0.825, -0.783, 2, sign=True)
    '-0.81 [-0.82, -0.78]'
    >>> with_interval(0.5, None, None)
    '0.500 (no interval: one row)'
    """
    spec = f"{'+' if sign else ''}.{decimals}f"
    if low is None or high is None or low != low or high != high:  # (NaN: an interval needs 2 rows)
        return f"{value:{spec}} (no interval: one row)"
    return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"


def effect_with_interval(
    value: float,
    low: float | None,
    high: float | None,
    decimals: int = 3,
    sign: bool = False,
    unit: str = "",
    q: float | None = None,
) -> str:
    """:func:`with_interval` in ``unit``, marked ``not distinguishable from 0`` when the interval contains 0,
    or, given ``q`` (the effect's p-value corrected over its family, :mod:`~induction_nnsight.stats`),
    when ``q`` is above the false-discovery rate.

    >>> effect_with_interval(0.021, -0.003, 0.045, sign=True, unit="nats")
    '+0.021 [-0.003, +0.045] nats, not distinguishable from 0'
    >>> effect_with_interval(0.021, 0.001, 0.045, sign=True, unit="nats", q=0.2)
    '+0.021 [+0.001, +0.045] nats, not distinguishable from 0 after correction'
    """
    text = with_interval(value, low, high, decimals, sign) + (f" {unit}" if unit else "")
    if low is None or high is None or low != low:
        return text
    inside = not (low > 0 or high < 0)
    if inside:
        return f"{text}, not distinguishable from 0"
    return f"{text}, not distinguishable from 0 after correction" if q is not None and q > ALPHA else text


def top_heads(scores: torch.Tensor, n: int) -> list[dict[str, Any]]:
    """The ``n`` highest-scoring heads of an ``[n_layers, n_heads]`` table (ranked by :func:`rank_heads`).

    Returns:
        Dicts ``{"layer", "head", "score"}``, best first; heads without a score (NaN) are left out.
    """
    return [
        {"layer": layer, "head": head, "score": round(float(scores[layer, head]), 6)}
        for layer, head in rank_heads(scores, n)
    ]


def heads_table(heads: list[dict[str, Any]], width: int = 30) -> str:
    """A terminal table of heads with score bars."""
    lines = [f"{'rank':>4}  {'head':<8} {'score':>6}"]
    for rank, head in enumerate(heads, 1):
        bar = _bar(head["score"], width)
        name = head_name(head["layer"], head["head"])
        lines.append(f"{rank:>4}  {name:<8} {head['score']:>6.3f}  {bar}")
    return "\n".join(lines)


def _bar(score: float, width: int) -> str:
    return "#" * round(max(0.0, min(1.0, score)) * width)


def text_report(
    facts: dict[str, Any],
    tops: dict[str, list[dict[str, Any]]],
    loss_halves: tuple[float, float] | None = None,
    width: int = 30,
) -> str:
    """A terminal report: model facts, the top heads of each kind with score bars, the two half losses.

    Args:
        facts: :class:`~induction_nnsight.models.facts.ModelFacts` as a dict.
        tops: ``kind -> top heads`` (dicts with layer, head, score and optionally ci).
        loss_halves: ``(first, repeated)`` mean losses in nats.
        width: Width of a full score bar.
    """
    lines = [f"Model {facts['name']} ({facts['architecture']}, {facts['attn_implementation']} attention)"]
    lines.append(
        f"  layers {facts['n_layers']}, heads {facts['n_heads']}, key/value heads {facts['n_kv_heads']}, "
        f"d_model {facts['d_model']}, d_head {facts['d_head']}, context {facts['n_ctx']}"
    )
    if loss_halves is not None:
        first, repeated = loss_halves
        lines.append(
            f"  mean loss: first half {first:.2f} nats, repeated half {repeated:.2f} nats "
            f"(in-context drop {first - repeated:.2f})"
        )
    for kind, heads in tops.items():
        lines.append("")
        lines.append(kind.replace("_", " "))
        for head in heads:
            name = head_name(head["layer"], head["head"])
            shown = with_interval(head["score"], *head["ci"]) if "ci" in head else f"{head['score']:.3f}"
            lines.append(f"  {name:<8} {shown:<24} {_bar(head['score'], width)}")
    return "\n".join(lines)


def ascii_attention(labels: list[str], pattern: torch.Tensor, stripe: torch.Tensor, width: int = 8) -> str:
    """One head's attention pattern as text: one row per query, one shade per key by weight.

    Shades run `` .:-=+*#%@`` from no weight to all of it (so ``*`` is a weight of about 2/3, nothing
    more); a cell in brackets ``[ ]`` is on the induction stripe (the token after an earlier copy of
    the query's token), and ``-> token`` ends each row with the key the query attends most.

    Args:
        labels: ``[pos]`` token strings.
        pattern: ``[query, key]`` probabilities.
        stripe: ``[query, key]`` bool, where an induction head would look.
        width: Characters kept of each label.
    """
    shades = " .:-=+*#%@"
    lines = []
    for q, label in enumerate(labels):
        cells = []
        for k in range(len(labels)):
            value = float(pattern[q, k]) if k <= q else 0.0
            char = shades[min(len(shades) - 1, int(value * (len(shades) - 1) + 0.5))] if k <= q else " "
            cells.append(f"[{char}]" if bool(stripe[q, k]) else f" {char} ")
        top = int(pattern[q].argmax())
        lines.append(f"{label[:width]:>{width}} |{''.join(cells)}| -> {labels[top][:width]}")
    lines.append(f"{'':>{width}}  [x] marks the token after an earlier copy (where an induction head looks)")
    return "\n".join(lines)


def dynamics_summary(result) -> str:
    """The lines ``dynamics`` prints: the first and last checkpoints, the phase-change test's verdict, the
    fresh-token loss bump and the seeds' spread (``result``: the
    :class:`~induction_nnsight.app.dynamics_job.DynamicsJobResult`)."""
    lines: list[str] = []
    first, last, phase = result.checkpoints[0], result.checkpoints[-1], result.phase_change
    for entry in (first, last):
        b = entry["best_induction"]
        lines.append(
            f"step {entry['step']}: best induction {b['score']:.3f} ({head_name(b['layer'], b['head'])}), loss "
            f"{entry['loss_first_half']:.3f} / {entry['loss_repeated_half']:.3f} nats (first / repeated half)"
        )
    lines.append(result.phase_test["note"])  # the change, or one line saying none was found
    if phase is not None:
        lines.append(
            f"phase change: best induction {phase['score_before']:.3f} -> {phase['score_at']:.3f} "
            f"between steps {phase['before']} and {phase['step']}; the rise spans steps {phase['start']} to "
            f"{phase['end']} ({phase['checkpoints']} checkpoints)"
        )
    bump = result.fresh_loss_bump
    if bump is not None:
        lines.append(
            f"fresh-token training loss {bump['before']['mean']:.3f} before, {bump['after']['mean']:.3f} after the "
            f"phase change: {with_interval(bump['rise'], bump['ci_low'], bump['ci_high'], sign=True)} nats"
            f"{'' if bump['present'] else ' (not distinguishable from 0)'}"
        )
    if result.seeds is not None:
        lines.append(seeds_line(result.seeds))
    return "\n".join(lines)


def seeds_line(spread: dict) -> str:
    """One line for the seeds' spread (:func:`~induction_nnsight.dynamics.series.phase_spread`): how many seeds
    have a phase change and where, then each seed's step and fitted rise; no ``None`` in it.

    Example:
        >>> seeds_line({"seeds": [0, 1], "found": 0, "steps": [None, None], "amplitudes": [0.031, None],
        ...             "min": None, "max": None, "median": None})
        'no phase change in any of 2 seeds (seed 0: none, rise 0.031; seed 1: none)'
    """
    n, found = len(spread["seeds"]), spread["found"]
    if found == 0:
        head = f"no phase change in any of {n} seeds"
    elif found == 1:
        head = f"phase change in 1 of {n} seeds, at step {spread['min']}"
    else:
        span = f"steps {spread['min']} to {spread['max']} (median {spread['median']:g})"
        head = f"phase change in {found} of {n} seeds, {span}"
    amplitudes = spread.get("amplitudes") or [None] * n
    each = [
        f"seed {seed}: {'none' if step is None else f'step {step}'}" + ("" if rise is None else f", rise {rise:.3f}")
        for seed, step, rise in zip(spread["seeds"], spread["steps"], amplitudes)
    ]
    return f"{head} ({'; '.join(each)})"
