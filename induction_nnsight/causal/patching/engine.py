"""Activation patching: run the corrupted input, paste in one clean activation, score.

One engine, :func:`patch` ``(model, pair, site)``, as TransformerLens' ``generic_activation_patch``:
the pair (:class:`~induction_nnsight.causal.pairs.Pair`) brings the clean and corrupted rows and the
metric (any callable ``(logits, tokens) -> [batch]``, wrapped by
:func:`~induction_nnsight.causal.metrics.as_metric`), the site (:mod:`~induction_nnsight.causal.patching.sites`)
where to paste and how. Clean and corrupted rows run in the same forward pass (clean rows first, then
the corrupted rows once per patch), so each patch copies the clean activation inside the trace and only
the metric leaves it. :func:`patch_heads`, :func:`patch_residual` and :func:`patch_qkv` are its thin
wrappers, one per site.

Each returns a :class:`~induction_nnsight.causal.patching.results.PatchResult`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...errors import InductionError
from ...models.layout import model_facts
from ...ndif.execution import Execution, as_execution
from ..cost import passes, variants_cost
from ..intervals import recovery_interval
from ..metrics import as_metric
from ..pairs import Pair
from ..variants import _run_variant_rows
from .results import PatchResult
from .sites import HeadSite, QKVSite, ResidualSite, Site

__all__ = ["patch", "patch_heads", "patch_qkv", "patch_residual"]


def _check_pair(clean: torch.Tensor, corrupted: torch.Tensor) -> None:
    if clean.shape != corrupted.shape:
        raise InductionError(
            f"clean rows {tuple(clean.shape)} and corrupted rows {tuple(corrupted.shape)} differ in shape: "
            "pass a pair of the same batch and length"
        )


def patch(model, pair: Pair, site: Site, *, execution: Execution | None = None) -> PatchResult:
    """Patch the clean activation at each place of ``site`` into the corrupted run, one place at a time.

    Args:
        model: An nnsight ``TransformersModel``.
        pair: The ``[batch, pos]`` clean and corrupted rows and the metric to recover
            (:class:`~induction_nnsight.causal.pairs.Pair`; its metric may be a plain callable).
        site: Where to patch (:class:`~induction_nnsight.causal.patching.sites.HeadSite`,
            :class:`~induction_nnsight.causal.patching.sites.ResidualSite`,
            :class:`~induction_nnsight.causal.patching.sites.QKVSite`, or any ``plan(model, n_pos)``).
        execution: How the traces run (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote``, ``max_tokens``, ``max_rows``, ``progress``); None for the defaults.

    Returns:
        A :class:`PatchResult` whose grids are the site's (each cell's recovery with its 95% interval
        over rows, and the passes it ran).
    """
    metric = as_metric(pair.metric)
    clean, corrupted = pair.clean, pair.corrupted
    _check_pair(clean, corrupted)
    facts = model_facts(model)
    plan = site.plan(model, clean.shape[1])
    run = as_execution(execution)
    n_variants = len(plan.masks)
    rows = _run_variant_rows(model, corrupted, n_variants, plan.edit, metric, clean, run, plan.desc)  # [n, batch]
    clean_rows = _run_variant_rows(model, clean, 1, None, metric, None, run.replace(progress=False), "clean")[0]
    low, high = recovery_interval(rows[1:], rows[0], clean_rows)
    values = rows.mean(dim=1)
    # every variant's corrupted rows, the clean (source) rows once per trace, and the clean rows' own pass
    cost = variants_cost(n_variants, tuple(corrupted.shape), clean.shape[0], run) + passes(*clean.shape, forward=1)
    grids = torch.full((3, len(plan.rows), len(plan.columns)), float("nan"))  # values, low, high
    for i, (row, column) in enumerate(plan.cells):
        grids[:, row, column] = torch.stack([values[1 + i], low[i], high[i]])
    return PatchResult(
        float(clean_rows.mean()),
        float(values[0]),
        grids[0],
        rows=plan.rows,
        columns=plan.columns,
        metric=metric.label,
        model=facts.name,
        ci_low=grids[1],
        ci_high=grids[2],
        cost=cost,
    )


def patch_heads(
    model, pair: Pair, *, layers: Sequence[int] | None = None, execution: Execution | None = None
) -> PatchResult:
    """Patch each head's clean output into the corrupted run, one head at a time (:class:`HeadSite`).

    Returns:
        A :class:`PatchResult` with ``[n_layers, n_heads]`` grids (layers not in ``layers`` NaN).
    """
    return patch(model, pair, HeadSite(layers), execution=execution)


def patch_residual(
    model,
    pair: Pair,
    *,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    execution: Execution | None = None,
) -> PatchResult:
    """Patch the clean residual stream after a layer at one position, for each (layer, position)
    (:class:`ResidualSite`).

    Returns:
        A :class:`PatchResult` with ``[n_layers_swept, n_positions]`` grids.
    """
    return patch(model, pair, ResidualSite(layers, positions), execution=execution)


def patch_qkv(
    model,
    pair: Pair,
    layer: int,
    head: int,
    *,
    positions: Sequence[int] | None = None,
    execution: Execution | None = None,
) -> PatchResult:
    """Patch one head's clean queries, keys or values at each position, and at all at once (:class:`QKVSite`).

    Returns:
        A :class:`PatchResult` with ``[3, n_positions + 1]`` grids: rows q, k, v; the last column
        patches every position.
    """
    return patch(model, pair, QKVSite(layer, head, positions), execution=execution)
