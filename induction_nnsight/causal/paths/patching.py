"""Path patching, exact and per head: remove one earlier head's direct contribution to the
residual stream only where one later head reads its keys, queries or values.

The source head ``s`` writes ``delta_s = (z_s - r_s) @ W_O[:, s]^T`` into the residual stream
(``z_s [batch, pos, d_head]`` its output, the slice of the output projection's input; ``r_s`` zero,
or its mean over a reference batch at each position). For path ``k`` (``q``, ``v``) of target ``t``
at layer ``l`` the variant recomputes ``x' = norm_l(resid_l - delta_s)`` with layer ``l``'s
pre-attention norm by hand and overwrites *only* ``t``'s slice of the key (query, value)
projection's output with ``x' @ W^T + b``: before rotary, so the model's own code applies rotary
and any ``k_norm`` after it. Every other reader of the residual stream sees it unchanged. Under
grouped-query attention the key/value head is shared by a group: the other heads of ``t``'s group
get their clean outputs back at the output projection, so the path ends at ``t`` alone. Path
``total`` ablates ``s`` at its output everywhere.

Runs: the clean rows run once; each variant then runs from the first layer where it differs
from the clean run (the target's layer; the source's for ``total``, whose one run serves every
target), the blocks before it skipped and fed the clean residual, many variants per trace
(:mod:`~induction_nnsight.causal.paths.traces`). What leaves a trace per variant: the target's
induction score (mean attention on the diagonal at offset ``1 - seq_len``) and the repeated-half
loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from ...errors import InductionError
from ...ndif.execution import Execution, as_execution
from ..ablation.method import Ablation
from .estimates import estimate_all
from .runs import run_traces
from .traces import Run, clean_trace, make_plan

Head = tuple[int, int]
PATHS = ("k", "q", "v", "total")
__all__ = [
    "DEFAULT_EXACT_LOSSES",
    "PATHS",
    "PathResult",
    "PathVariant",
    "all_earlier",
    "path_patching",
    "path_variants",
    "plan_runs",
]
# loss effects run exactly per target and path in a circuit (the rest estimated; docs/circuit.md)
DEFAULT_EXACT_LOSSES = 8


@dataclass(frozen=True)
class PathVariant:
    """One variant: ``source``'s contribution removed on ``path`` into ``target`` (all None: clean)."""

    source: Head | None
    target: Head | None
    path: str | None


@dataclass
class PathResult:
    """Scores and losses of every variant of one run.

    Attributes:
        variants: ``[n]`` the variants; ``variants[0]`` is the clean run.
        scores: ``[n]`` each variant's target's induction score (NaN for the clean variant).
        losses: ``[n]`` each variant's mean repeated-half loss.
        clean_scores: ``target -> clean induction score``.
        exact: ``[n]`` bool, whether each variant's loss is exact (False: estimated, see ``exact_losses``).
        score_rows: ``[n, batch]`` ``scores`` row by row (NaN where estimated or clean).
        loss_rows: ``[n, batch]`` ``losses`` row by row (NaN where estimated).
        clean_score_rows: ``target -> [batch]`` the clean scores row by row.
    """

    variants: list[PathVariant]
    scores: torch.Tensor
    losses: torch.Tensor
    clean_scores: dict[Head, float]
    exact: torch.Tensor = field(default_factory=lambda: torch.ones(0, dtype=torch.bool))
    score_rows: torch.Tensor | None = None
    loss_rows: torch.Tensor | None = None
    clean_score_rows: dict[Head, torch.Tensor] | None = None

    @property
    def clean_loss(self) -> float:
        return float(self.losses[0])


def path_variants(targets: Sequence[Head], paths: Sequence[str], sources=None) -> list[PathVariant]:
    """The clean variant, then for each target every head of an earlier layer on each path.

    Args:
        sources: ``target -> list of source heads``; None means every head of every earlier layer
            (which needs ``n_heads`` through :func:`all_earlier`).
    """
    out = [PathVariant(None, None, None)]
    for target in targets:
        for source in sources[target]:
            out.extend(PathVariant(source, target, path) for path in paths)
    return out


def all_earlier(target: Head, n_heads: int) -> list[Head]:
    """Every head of every layer before ``target``'s."""
    return [(layer, head) for layer in range(target[0]) for head in range(n_heads)]


def path_patching(
    model,
    tokens: torch.Tensor,
    seq_len: int,
    variants: list[PathVariant],
    *,
    ablation: Ablation | None = None,
    bos: bool = True,
    exact_losses: int | None = None,
    execution: Execution | None = None,
) -> PathResult:
    """Each variant's target induction score and repeated-half loss, many variants per trace.

    Args:
        model: An nnsight ``TransformersModel``.
        tokens: ``[batch, pos]`` repeated-token rows (``[bos] r_1..r_T r_1..r_T``).
        seq_len: ``T``, the length of the repeated block.
        variants: From :func:`path_variants`; ``variants[0]`` must be the clean one.
        ablation: How a source's contribution is removed (:class:`Ablation`; None: zero).
            ``resample`` runs once per draw and averages; ``freeze_norm`` keeps the clean norm scale
            at the target's input (:func:`~induction_nnsight.causal.paths.edits.frozen_norm`).
        bos: Whether the rows start with BOS (for the repeated-half loss).
        exact_losses: None computes every loss effect exactly. A number ``n`` estimates every
            edge's loss effect to first order (:mod:`~induction_nnsight.causal.paths.estimates`; every
            score effect stays exact: ``k``/``q``/``v`` runs from a probe of the target's layer,
            ``total`` runs from a trace stopped at the last target layer) and computes exactly only
            the loss effects of the ``n`` edges per target and path with the largest estimated loss
            effects and the ``n`` with the largest score effects.
        execution: How the traces run (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote``, ``max_tokens``, ``progress``); None for the defaults.

    Returns:
        A :class:`PathResult` (with per-row values for the intervals).
    """
    ablation, run = ablation or Ablation(), as_execution(execution)
    ablation.check(tokens)
    if ablation.method != "resample":
        return _path_patching(model, tokens, seq_len, variants, ablation, bos, exact_losses, run)
    draws = [
        _path_patching(model, tokens, seq_len, variants, replace(ablation, source=rows), bos, exact_losses, run)
        for rows in ablation.draws(tokens.shape[0])
    ]
    first, n = draws[0], len(draws)
    return replace(
        first,
        scores=sum(d.scores for d in draws) / n,
        losses=sum(d.losses for d in draws) / n,
        exact=torch.stack([d.exact for d in draws]).all(dim=0),
        score_rows=sum(d.score_rows for d in draws) / n,
        loss_rows=sum(d.loss_rows for d in draws) / n,
    )


def _path_patching(model, tokens, seq_len, variants, ablation: Ablation, bos, exact_losses, run: Execution):
    """:func:`path_patching` for one ablation (one draw of ``resample``)."""
    if variants[0].path is not None:
        raise ValueError("variants[0] must be the clean variant")
    for v in variants[1:]:
        if v.path not in PATHS or not v.source[0] < v.target[0]:
            raise InductionError(
                f"bad variant {v}: the path must be one of {', '.join(PATHS)} and the source "
                "in an earlier layer than the target"
            )
    runs, index = plan_runs(variants)
    targets = {v.target for v in variants[1:]}
    layers = {t[0] for t in targets}
    plan = replace(
        make_plan(model, seq_len, bos, run), freeze_norm=ablation.freeze_norm, sender_norm=ablation.sender_norm
    )
    clean = clean_trace(model, plan, tokens, ablation, runs, layers)
    b = tokens.shape[0]
    known, exact = None, list(range(len(runs)))
    if exact_losses is not None:
        known, exact = estimate_all(model, plan, tokens, clean, runs, (targets, layers), run, exact_losses)
    scores, losses = run_traces(model, plan, tokens, clean, [runs[i] for i in exact], layers, run)
    is_exact = torch.zeros(len(runs), dtype=torch.bool)
    is_exact[exact] = True
    out_scores = torch.full((len(variants),), float("nan"))
    out_losses = torch.full((len(variants),), clean.loss)
    score_rows = torch.full((len(variants), b), float("nan"))
    loss_rows = torch.full((len(variants), b), float("nan"))
    loss_rows[0] = clean.loss_rows
    where = {i: j for j, i in enumerate(exact)}
    for i, v in enumerate(variants[1:], start=1):
        r, (layer, head) = index[i], v.target
        if r in where:
            score_rows[i] = scores[where[r], layer, :, head]
            loss_rows[i] = losses[where[r]]
            out_losses[i] = loss_rows[i].mean()
        else:
            score_rows[i] = known.total_rows[known.totals[r], layer, :, head] if r in known.totals else known.rows[r]
            out_losses[i] = known.losses[r]
        out_scores[i] = score_rows[i].mean()
    clean_scores = {t: float(clean.scores[t[0]][t[1]]) for t in sorted(targets)}
    clean_rows = {t: clean.score_rows[t[0]][:, t[1]].float().cpu() for t in sorted(targets)}
    return PathResult(
        variants,
        out_scores,
        out_losses,
        clean_scores,
        torch.cat([torch.ones(1, dtype=torch.bool), is_exact[[index[i] for i in range(1, len(variants))]]]),
        score_rows,
        loss_rows,
        clean_rows,
    )


def plan_runs(variants: list[PathVariant]) -> tuple[list[Run], dict[int, int]]:
    """The distinct runs behind ``variants[1:]`` (a ``total`` run per source serves every target),
    and ``variant index -> run index``."""
    runs: dict[Run, int] = {}
    index = {}
    for i, v in enumerate(variants[1:], start=1):
        run = Run(v.source, v.path, None if v.path == "total" else v.target)
        index[i] = runs.setdefault(run, len(runs))
    return list(runs), index
