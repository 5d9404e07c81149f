"""Head ablation: knock heads out and measure what the model loses.

A head is ablated at its output (the per-head slice of the attention output
projection's input, see :mod:`~induction_nnsight.causal.head_outputs`): set to zero, or to
its mean over a source batch at each position (mean ablation keeps the
head's average contribution and removes only what depends on the input).
Many ablations run batched in few traces (:mod:`~induction_nnsight.causal.variants`);
what leaves a trace is one metric value per ablation. Its results live in
:mod:`~induction_nnsight.causal.ablation_results`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import InductionError
from ..models.layout import model_facts
from ..ndif.settings import Remote
from ..scores.losses import repeated_half_slice
from .ablation_results import CurveResult, SweepResult
from .head_outputs import head_edit, head_mask
from .metrics import RowMetric
from .variants import DEFAULT_MAX_TOKENS, run_variants

METHODS = ("zero", "mean")
Head = tuple[int, int]


def _check(method: str, tokens: torch.Tensor, source: torch.Tensor | None) -> None:
    if method not in METHODS:
        raise InductionError(f"unknown ablation {method!r}: pass one of {', '.join(METHODS)}")
    if method == "mean":
        if source is None:
            raise InductionError("mean ablation needs a source batch")
        if source.shape[1] != tokens.shape[1]:
            raise InductionError(
                f"the source batch has {source.shape[1]} positions, the tokens {tokens.shape[1]}: "
                "mean ablation takes the mean at each position, so give both the same length"
            )


def ablation_metrics(
    model,
    tokens: torch.Tensor,
    head_sets: Sequence[Sequence[Head]],
    metric: RowMetric,
    *,
    method: str = "zero",
    source: torch.Tensor | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    remote: Remote = False,
    progress: bool = True,
    desc: str = "ablations",
) -> torch.Tensor:
    """The metric with each set of heads ablated (one value per set).

    Args:
        model: An nnsight ``TransformersModel``.
        tokens: ``[batch, pos]`` token ids.
        head_sets: Sets of ``(layer, head)``; an empty set is the unablated model.
        metric: What to measure (see :class:`~induction_nnsight.causal.metrics.RowMetric`).
        method: ``"zero"`` or ``"mean"``.
        source: ``[n_ref, pos]`` rows whose mean head outputs replace the
            ablated ones (mean ablation only).
        max_tokens: Token budget of one trace.
        remote: Run the traces on NDIF.
        progress: Show a progress bar.
        desc: The bar's label.

    Returns:
        ``[n_sets, ...]`` the metric averaged over the batch.
    """
    _check(method, tokens, source)
    facts = model_facts(model)
    masks = torch.stack([head_mask(s, facts.n_layers, facts.n_heads) for s in head_sets])
    return run_variants(
        model,
        tokens,
        len(head_sets),
        head_edit(model, masks, method),
        metric,
        source=source if method == "mean" else None,
        max_tokens=max_tokens,
        remote=remote,
        progress=progress,
        desc=desc,
    )


def ablate_heads(
    model,
    tokens: torch.Tensor,
    heads: Sequence[Head],
    *,
    method: str = "zero",
    source: torch.Tensor | None = None,
    remote: Remote = False,
) -> torch.Tensor:
    """Loss by position with a set of heads ablated.

    Ablating no head gives exactly :func:`~induction_nnsight.scores.scan.loss_by_position`
    under zero ablation (the same rows run through the same forward).

    Returns:
        ``[pos - 1]`` mean next-token loss at each position.
    """
    metric = RowMetric("loss_by_position")
    return ablation_metrics(
        model, tokens, [list(heads)], metric, method=method, source=source, remote=remote, progress=False
    )[0]


def ablation_sweep(
    model,
    tokens: torch.Tensor,
    metric: RowMetric,
    *,
    method: str = "zero",
    source: torch.Tensor | None = None,
    layers: Sequence[int] | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    remote: Remote = False,
    progress: bool = True,
) -> SweepResult:
    """Ablate each head alone (in ``layers``, all when None) and record the metric.

    Returns:
        A :class:`SweepResult` with ``[n_layers, n_heads]`` tables.
    """
    facts = model_facts(model)
    chosen = list(range(facts.n_layers)) if layers is None else list(layers)
    for layer in chosen:
        if not 0 <= layer < facts.n_layers:
            raise InductionError(f"layer {layer} is outside 0..{facts.n_layers - 1}: pass valid --layers")
    heads = [(layer, head) for layer in chosen for head in range(facts.n_heads)]
    values = ablation_metrics(
        model,
        tokens,
        [[]] + [[h] for h in heads],
        metric,
        method=method,
        source=source,
        max_tokens=max_tokens,
        remote=remote,
        progress=progress,
        desc=f"{method}-ablating {len(heads)} heads",
    )
    table = torch.full((facts.n_layers, facts.n_heads), float("nan"))
    for (layer, head), value in zip(heads, values[1:]):
        table[layer, head] = value
    baseline = float(values[0])
    return SweepResult(baseline, table, table - baseline, metric.label, facts.name)


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
    metric: RowMetric,
    ranked_heads: Sequence[Head],
    *,
    n_draws: int = 5,
    same_layers: bool = False,
    method: str = "zero",
    source: torch.Tensor | None = None,
    seed: int = 0,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    remote: Remote = False,
    progress: bool = True,
) -> CurveResult:
    """Ablate the top ``k`` heads and ``n_draws`` random sets of ``k`` heads, ``k = 1..K``.

    Args:
        ranked_heads: The ``K`` heads, best first (e.g. the top induction heads).
        n_draws: Random draws.
        same_layers: Draw each random head from the layer of the matching top head.

    Returns:
        A :class:`CurveResult`.
    """
    facts = model_facts(model)
    top = [tuple(h) for h in ranked_heads]
    draws = random_head_draws(top, facts.n_layers, facts.n_heads, n_draws, same_layers=same_layers, seed=seed)
    ks = list(range(1, len(top) + 1))
    sets = [[]] + [top[:k] for k in ks] + [draw[:k] for draw in draws for k in ks]
    values = ablation_metrics(
        model,
        tokens,
        sets,
        metric,
        method=method,
        source=source,
        max_tokens=max_tokens,
        remote=remote,
        progress=progress,
        desc=f"ablation curve ({len(sets)} sets)",
    )
    n = len(ks)
    return CurveResult(
        ks,
        float(values[0]),
        values[1 : 1 + n],
        values[1 + n :].reshape(n_draws, n),
        top,
        draws,
        metric.label,
        facts.name,
    )


def repeated_half_metric(seq_len: int, bos: bool) -> RowMetric:
    """Mean loss on the repeated copy of repeated-token rows, as a :class:`RowMetric`."""
    return RowMetric("loss", loss_positions=repeated_half_slice(seq_len, bos))
