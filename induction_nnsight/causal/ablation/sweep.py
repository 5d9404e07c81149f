"""Head ablation: knock heads out and measure what the model loses.

A head is ablated at its output (the per-head slice of the attention output
projection's input, see :mod:`~induction_nnsight.causal.head_outputs`): set to zero, to
its mean over a reference set at each position (mean ablation keeps the
head's average contribution and removes only what depends on the input), or to its output on
another row of the same distribution (resample ablation, averaged over draws); see
:class:`~induction_nnsight.causal.ablation.method.Ablation`.
Many ablations run batched in few traces (:mod:`~induction_nnsight.causal.variants`);
what leaves a trace is one metric value per ablation and row, so every effect carries a
bootstrap interval over rows (:mod:`~induction_nnsight.causal.intervals`). Its results live in
:mod:`~induction_nnsight.causal.ablation.results`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ...errors import InductionError
from ...models.layout import model_facts
from ...ndif.execution import Execution, as_execution
from ...scores.losses import repeated_half_slice
from ..head_outputs import head_edit, head_mask, reference_means
from ..intervals import effect_interval, effect_q_values, row_interval
from ..metrics import CausalMetric, Loss, LossByPosition, MetricFn, as_metric
from ..variants import _run_variant_rows
from .method import METHODS, Ablation
from .results import CurveResult, SweepResult

Head = tuple[int, int]


@dataclass(frozen=True)
class RandomDraws:
    """The random control of an ablation curve: sets of heads drawn to compare with the top ones.

    Attributes:
        n_draws: How many random draws (each an ordered list of ``K`` heads).
        same_layers: Draw each random head from the layer of the matching top head (controls for depth).
        seed: Seed of the draws.
    """

    n_draws: int = 5
    same_layers: bool = False
    seed: int = 0


def _ablation(method: str | Ablation, source: torch.Tensor | None, tokens: torch.Tensor) -> Ablation:
    """``method`` as an :class:`Ablation` (a name takes ``source`` as its rows), checked against ``tokens``."""
    if isinstance(method, Ablation):
        ablation = method
    else:
        if method not in METHODS:
            raise InductionError(f"unknown ablation {method!r}: pass one of {', '.join(METHODS)}")
        ablation = Ablation(method, source if method != "zero" else None)
    ablation.check(tokens)
    return ablation


def ablation_metrics(
    model,
    tokens: torch.Tensor,
    head_sets: Sequence[Sequence[Head]],
    metric: CausalMetric | MetricFn,
    *,
    method: str | Ablation = "zero",
    source: torch.Tensor | None = None,
    execution: Execution | None = None,
) -> torch.Tensor:
    """The metric with each set of heads ablated (one value per set).

    Args:
        model: An nnsight ``TransformersModel``.
        tokens: ``[batch, pos]`` token ids.
        head_sets: Sets of ``(layer, head)``; an empty set is the unablated model.
        metric: What to measure (see :class:`~induction_nnsight.causal.metrics.CausalMetric`, or a plain callable).
        method: ``"zero"``, ``"mean"``, ``"resample"``, or an
            :class:`~induction_nnsight.causal.ablation.method.Ablation` (which also holds its rows
            and ``keep_bos``).
        source: The reference rows of a named ``"mean"`` (``[n_ref, pos]``) or ``"resample"``
            (``[draws * batch, pos]``) method.
        execution: How the traces run (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote``, ``max_tokens``, ``max_rows``, ``progress``); None for the defaults.

    Returns:
        ``[n_sets, ...]`` the metric averaged over the batch.
    """
    rows = ablation_rows(model, tokens, head_sets, metric, method=method, source=source, execution=execution)
    return rows.mean(dim=1)


# ablation_metrics' arguments on purpose: the same ablations, row by row.
def ablation_rows(
    model,
    tokens: torch.Tensor,
    head_sets: Sequence[Sequence[Head]],
    metric: CausalMetric | MetricFn,
    *,
    method: str | Ablation = "zero",
    source: torch.Tensor | None = None,
    execution: Execution | None = None,
) -> torch.Tensor:
    """:func:`ablation_metrics` row by row, for intervals
    (:func:`~induction_nnsight.causal.intervals.effect_interval` against the empty set's rows).

    Returns:
        ``[n_sets, batch, ...]`` the metric of each row with each set ablated (``resample``: the mean over draws).
    """
    metric = as_metric(metric)
    return _ablation_rows(model, tokens, head_sets, metric, _ablation(method, source, tokens), as_execution(execution))


def _ablation_rows(model, tokens, head_sets, metric, ablation: Ablation, execution: Execution, desc="ablations"):
    """``[n_sets, batch, ...]`` the metric of each row with each set ablated (resample: mean over draws)."""
    facts = model_facts(model)
    masks = torch.stack([head_mask(s, facts.n_layers, facts.n_heads) for s in head_sets])
    n, keep_bos = len(head_sets), ablation.keep_bos
    if ablation.method == "zero":
        edit = head_edit(model, masks, "zero", keep_bos=keep_bos)
        return _run_variant_rows(model, tokens, n, edit, metric, None, execution, desc)
    if ablation.method == "mean":
        means = reference_means(model, ablation.source, execution=execution)
        edit = head_edit(model, masks, "mean", means=means, keep_bos=keep_bos)
        return _run_variant_rows(model, tokens, n, edit, metric, None, execution, desc)
    edit = head_edit(model, masks, "source", keep_bos=keep_bos)
    draws = ablation.draws(tokens.shape[0])
    total = sum(_run_variant_rows(model, tokens, n, edit, metric, d, execution, desc) for d in draws)
    return total / len(draws)


def ablate_heads(
    model,
    tokens: torch.Tensor,
    heads: Sequence[Head],
    *,
    method: str | Ablation = "zero",
    source: torch.Tensor | None = None,
    execution: Execution | None = None,
) -> torch.Tensor:
    """Loss by position with a set of heads ablated (one trace, no progress bar).

    Ablating no head gives exactly :func:`~induction_nnsight.scores.scan.loss_by_position`
    under zero ablation (the same rows run through the same forward).

    Returns:
        ``[pos - 1]`` mean next-token loss at each position.
    """
    metric = LossByPosition()
    run = as_execution(execution).replace(progress=False)
    return ablation_metrics(model, tokens, [list(heads)], metric, method=method, source=source, execution=run)[0]


def ablation_sweep(
    model,
    tokens: torch.Tensor,
    metric: CausalMetric | MetricFn,
    *,
    method: str | Ablation = "zero",
    source: torch.Tensor | None = None,
    layers: Sequence[int] | None = None,
    execution: Execution | None = None,
) -> SweepResult:
    """Ablate each head alone (in ``layers``, all when None) and record the metric.

    ``metric`` must give one value per row (not ``loss_by_position``); each head's change carries
    a t interval over rows of the paired differences and a Benjamini-Hochberg q-value over every head
    swept (:mod:`~induction_nnsight.causal.intervals`).

    Returns:
        A :class:`SweepResult` with ``[n_layers, n_heads]`` tables.
    """
    metric = as_metric(metric)
    facts = model_facts(model)
    chosen = list(range(facts.n_layers)) if layers is None else list(layers)
    for layer in chosen:
        if not 0 <= layer < facts.n_layers:
            raise InductionError(f"layer {layer} is outside 0..{facts.n_layers - 1}: pass valid --layers")
    heads = [(layer, head) for layer in chosen for head in range(facts.n_heads)]
    sets = [[]] + [[h] for h in heads]
    ablation = _ablation(method, source, tokens)
    desc = f"{ablation.method}-ablating {len(heads)} heads"
    rows = _ablation_rows(model, tokens, sets, metric, ablation, as_execution(execution), desc)  # [sets, batch]
    effect, low, high = effect_interval(rows[1:], rows[0])
    q = effect_q_values(rows[1:], rows[0])  # corrected over every head swept
    tables = torch.full((5, facts.n_layers, facts.n_heads), float("nan"))  # values, delta, low, high, q
    for i, (layer, head) in enumerate(heads):
        tables[:, layer, head] = torch.stack([rows[1 + i].mean(), effect[i], low[i], high[i], q[i]])
    baseline = float(rows[0].mean())
    return SweepResult(baseline, tables[0], tables[1], metric.label, facts.name, tables[2], tables[3], tables[4])


def random_head_draws(
    top: Sequence[Head], n_layers: int, n_heads: int, n_draws: int, *, same_layers: bool = False, seed: int = 0
) -> list[list[Head]]:
    """Random heads to compare with the top heads, one ordered list per draw.

    Prefixes of a draw are the random sets for ``k = 1 .. len(top)``. Top heads
    are never drawn. With ``same_layers``, the ``i``-th random head lies in the
    layer of the ``i``-th top head (controls for depth).

    Raises:
        InductionError: When a layer has no head left to draw.
    """
    generator = torch.Generator().manual_seed(seed)
    excluded = set(map(tuple, top))
    draws = []
    for _ in range(n_draws):
        if same_layers:
            drawn: list[Head] = []
            for layer, _head in top:
                free = [(layer, h) for h in range(n_heads) if (layer, h) not in excluded and (layer, h) not in drawn]
                if not free:
                    raise InductionError(
                        f"layer {layer} has no head left to draw: drop --same-layers or pass a smaller --top-k"
                    )
                drawn.append(free[int(torch.randint(len(free), (1,), generator=generator))])
        else:
            pool = [(layer, h) for layer in range(n_layers) for h in range(n_heads) if (layer, h) not in excluded]
            if len(pool) < len(top):
                raise InductionError(
                    f"only {len(pool)} heads lie outside the top {len(top)}: "
                    f"pass --top-k {(len(pool) + len(top)) // 2} or less"
                )
            order = torch.randperm(len(pool), generator=generator)[: len(top)]
            drawn = [pool[i] for i in order.tolist()]
        draws.append(drawn)
    return draws


def ablation_curve(
    model,
    tokens: torch.Tensor,
    metric: CausalMetric | MetricFn,
    ranked_heads: Sequence[Head],
    *,
    draws: RandomDraws | None = None,
    method: str | Ablation = "zero",
    source: torch.Tensor | None = None,
    execution: Execution | None = None,
) -> CurveResult:
    """Ablate the top ``k`` heads and random sets of ``k`` heads, ``k = 1..K``.

    Args:
        model: An nnsight ``TransformersModel``.
        tokens: ``[batch, pos]`` token ids.
        metric: What to measure (see :class:`~induction_nnsight.causal.metrics.CausalMetric`, or a plain callable).
        ranked_heads: The ``K`` heads, best first (e.g. the top induction heads).
        draws: The random sets to compare with (:class:`RandomDraws`; None: 5 draws from
            any layer, seed 0).
        method: ``"zero"``, ``"mean"``, ``"resample"`` or an
            :class:`~induction_nnsight.causal.ablation.method.Ablation`.
        source: The rows of a named ``"mean"`` or ``"resample"`` method.
        execution: How the traces run (:class:`~induction_nnsight.ndif.execution.Execution`);
            None for the defaults.

    Returns:
        A :class:`CurveResult` with ``[K]`` top-set values and ``[n_draws, K]`` random ones, and
        bootstrap intervals over rows of the top values and of the random draws' mean.
    """
    metric = as_metric(metric)
    facts = model_facts(model)
    control = draws or RandomDraws()
    top = [tuple(h) for h in ranked_heads]
    drawn = random_head_draws(
        top, facts.n_layers, facts.n_heads, control.n_draws, same_layers=control.same_layers, seed=control.seed
    )
    ks = list(range(1, len(top) + 1))
    sets = [[]] + [top[:k] for k in ks] + [draw[:k] for draw in drawn for k in ks]
    desc = f"ablation curve ({len(sets)} sets)"
    ablation = _ablation(method, source, tokens)
    rows = _ablation_rows(model, tokens, sets, metric, ablation, as_execution(execution), desc)  # [sets, batch]
    values = rows.mean(dim=1)
    n = len(ks)
    _, top_low, top_high = row_interval(rows[1 : 1 + n])
    random_rows = rows[1 + n :].reshape(control.n_draws, n, -1).mean(dim=0)  # [K, batch]: mean over draws
    _, random_low, random_high = row_interval(random_rows)
    return CurveResult(
        ks,
        float(values[0]),
        values[1 : 1 + n],
        values[1 + n :].reshape(control.n_draws, n),
        top,
        drawn,
        metric.label,
        facts.name,
        torch.stack([top_low, top_high]),
        torch.stack([random_low, random_high]),
    )


def repeated_half_metric(seq_len: int, bos: bool) -> Loss:
    """Mean loss on the repeated copy of repeated-token rows, as a :class:`~induction_nnsight.causal.metrics.Loss`."""
    return Loss(loss_positions=repeated_half_slice(seq_len, bos))
