"""Head estimators: every head's ablation (or patching) effect from a few forward and backward passes.

Replacing head ``h``'s output ``z_h [batch, pos, d_head]`` by ``r_h`` (zero, the reference rows' mean,
or the clean rows' output) changes the metric by ``F(r_h) - F(z_h)``. Three estimates of it, for every
head at once:

* ``"plain"``: attribution patching (AtP; Nanda 2023), ``g_h . (r_h - z_h)`` with ``g_h`` the gradient
  at the unedited run: one forward and one backward pass. Exact for a metric linear in ``z_h``; wrong
  where a large change saturates or unsaturates an attention softmax downstream.
* ``"ig"``: integrated gradients along the straight path (as EAP-IG, Hanna et al. 2024): every head's
  output moved together to ``z_h + a (r_h - z_h)`` (later heads recomputed from the edited run), the
  gradient averaged over ``steps`` midpoints ``a = (i + 1/2) / steps``. The estimates add up to the
  effect of replacing every head at once (completeness); for one head alone the average converges to
  its exact effect as ``steps`` grows. Costs ``steps`` forward and backward passes.
* ``"graddrop"``: AtP*'s GradDrop (Kramár et al. 2024): the plain estimate recomputed ``n_layers``
  times, each with one layer's contribution to the residual stream removed from the backward pass;
  the estimate is the mean magnitude over the dropped variants (the paper's score), with the sign of
  their mean. It targets cancellation between paths; it does not fix saturation. It is GradDrop
  alone, not all of AtP*: AtP*'s other correction, the QK fix, applies to changes of a query or key,
  not of a head's output (the circuit's k and q probes have it exactly: see
  :func:`~induction_nnsight.causal.qk_fix.qk_fix_effect`). Formerly ``"atp-star"``, a name that promised both.

All three run inside one trace per chunk of rows: what leaves it is ``[groups, n_layers, n_heads]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import nnsight
import torch

from ...errors import InductionError
from ...models.heads import split_heads
from ...models.layout import model_facts, model_layout
from ...ndif.backend import remote_backend
from ...ndif.execution import Execution, as_execution
from ..cost import ESTIMATORS, RENAMED_ESTIMATORS, Cost, passes
from ..head_outputs import HEAD_METHODS
from ..metrics import CausalMetric, MetricFn

__all__ = [
    "DEFAULT_ESTIMATOR",
    "DEFAULT_STEPS",
    "ESTIMATORS",
    "Estimator",
    "HeadEstimate",
    "head_attribution",
    "head_estimate",
]

DEFAULT_ESTIMATOR = "plain"
"""The estimator ``ablate`` and ``patch`` use unless told (the cheapest; on SmolLM2 it ranks as well as the others)."""
DEFAULT_STEPS = 8
"""Integrated-gradient steps unless told."""


@dataclass(frozen=True)
class Estimator:
    """Which estimate, and its settings.

    Attributes:
        name: ``"plain"``, ``"ig"`` or ``"graddrop"``.
        steps: Integrated-gradient steps (``"ig"`` only).
        heads: ``[n_layers, n_heads]`` bool: the heads integrated gradients move (None: every head);
            the others keep their outputs and get a zero estimate.
    """

    name: str = DEFAULT_ESTIMATOR
    steps: int = DEFAULT_STEPS
    heads: torch.Tensor | None = None


@dataclass
class HeadEstimate:
    """Every head's estimated effect.

    Attributes:
        estimator: ``"plain"``, ``"ig"`` or ``"graddrop"``.
        estimate: ``[n_layers, n_heads]`` estimated ``metric(replaced) - metric(tokens)``.
        cost: What it ran (:class:`~induction_nnsight.causal.cost.Cost`).
        steps: Integrated-gradient steps (1 for the others).
    """

    estimator: str
    estimate: torch.Tensor
    cost: Cost
    steps: int = 1


def _check(method: str, tokens: torch.Tensor, source: torch.Tensor | None, estimator: str, steps: int) -> None:
    """Refuse a bad method, missing source rows, an unknown estimator or too few steps, in one line."""
    if method not in HEAD_METHODS:
        raise InductionError(f"unknown head method {method!r}: pass one of {', '.join(HEAD_METHODS)}")
    if method != "zero" and source is None:
        raise InductionError(f"head method {method!r} needs source rows")
    if method == "source" and source.shape != tokens.shape:
        raise InductionError("attribution patching needs clean and corrupted rows of the same shape")
    if estimator in RENAMED_ESTIMATORS:
        raise InductionError(f"estimator {estimator!r} is now called {RENAMED_ESTIMATORS[estimator]!r}: pass that")
    if estimator not in ESTIMATORS:
        raise InductionError(f"unknown estimator {estimator!r}: pass --attribution one of {', '.join(ESTIMATORS)}")
    if steps < 1:
        raise InductionError(f"integrated gradients need at least 1 step, got {steps}: pass --steps 1 or more")


def head_estimate(
    model,
    tokens: torch.Tensor,
    metric: CausalMetric | MetricFn,
    method: str = "zero",
    *,
    source: torch.Tensor | None = None,
    estimator: str | Estimator = DEFAULT_ESTIMATOR,
    execution: Execution | None = None,
) -> HeadEstimate:
    """Estimated change of the metric when each head's output is replaced.

    Args:
        model: An nnsight ``TransformersModel``.
        tokens: ``[batch, pos]`` rows whose run is edited (the clean rows for ablation, the
            corrupted rows for patching).
        metric: The metric, averaged over those rows.
        method: ``"zero"``, ``"mean"`` (the source rows' mean at each position) or ``"source"``
            (the aligned source rows' outputs).
        source: ``[n_source, pos]`` rows: the clean rows, or the rows averaged for mean ablation.
        estimator: ``"plain"``, ``"ig"`` or ``"graddrop"`` (see the module docstring), or an
            :class:`Estimator` with its steps and the heads it moves.
        execution: How the traces run (``remote``; ``max_rows`` bounds the rows of one trace);
            None for the defaults.

    Returns:
        A :class:`HeadEstimate` with an ``[n_layers, n_heads]`` estimate.
    """
    chosen = estimator if isinstance(estimator, Estimator) else Estimator(estimator)
    estimator, steps = chosen.name, chosen.steps
    _check(method, tokens, source, estimator, steps)
    run = as_execution(execution)
    n_layers = model_facts(model).n_layers
    batch, n_pos = tokens.shape
    if estimator == "plain":
        groups = [(0.0, None)]
    elif estimator == "ig":
        groups = [((i + 0.5) / steps, None) for i in range(steps)]
    else:
        groups = [(0.0, layer) for layer in range(n_layers)]
    n_source = 0 if source is None else source.shape[0]
    per = max(1, (run.max_rows - n_source) // batch)
    found = torch.cat(
        [
            _groups(model, tokens, metric, (method, source, chosen.heads), groups[i : i + per], run)
            for i in range(0, len(groups), per)
        ]
    )  # [groups, n_layers, n_heads]
    cost = passes(batch, n_pos, forward=len(groups), backward=len(groups))
    if n_source:
        cost = cost + passes(n_source, n_pos, forward=-(-len(groups) // per))
    if estimator == "graddrop":
        estimate = found.abs().sum(dim=0) / max(1, n_layers - 1) * torch.sign(found.sum(dim=0))
    else:
        estimate = found.mean(dim=0)
    return HeadEstimate(estimator, estimate, cost, steps if estimator == "ig" else 1)


# head_estimate's arguments on purpose: an alias of one of its estimators.
def head_attribution(
    model,
    tokens: torch.Tensor,
    metric: CausalMetric | MetricFn,
    method: str = "source",
    *,
    source: torch.Tensor | None = None,
    execution: Execution | None = None,
) -> torch.Tensor:
    """Attribution patching (Nanda 2023): a thin alias of ``head_estimate(..., estimator="plain").estimate``,
    kept as the top-level name for it, with patching (``method="source"``: the clean rows' outputs into the
    corrupted run) as its default. Nothing in the package calls it: use :func:`head_estimate`.

    Returns:
        ``[n_layers, n_heads]`` estimated ``metric(replaced) - metric(tokens)``.
    """
    return head_estimate(model, tokens, metric, method, source=source, estimator="plain", execution=execution).estimate


def _groups(model, tokens, metric, replacement: tuple, groups, execution: Execution) -> torch.Tensor:
    """One trace of ``len(groups)`` copies of the rows: copy ``g`` moves every head ``alpha_g`` of the way
    to its replacement and drops layer ``drop_g``'s contribution from the backward pass (None: none).

    Returns:
        ``[groups, n_layers, n_heads]`` each copy's ``gradient . (replacement - output)``.
    """
    method, source, heads = replacement
    facts = model_facts(model)
    layout = model_layout(model)
    n_heads, d_head = facts.n_heads, facts.d_head
    b, g = tokens.shape[0], len(groups)
    n_source = 0 if source is None else source.shape[0]
    rows = torch.cat(([source] if source is not None else []) + [tokens] * g)
    alphas = torch.tensor([a for a, _ in groups]).repeat_interleave(b).reshape(-1, 1, 1)  # [g * b, 1, 1]
    drops = [d for _, d in groups]
    moved = bool((alphas != 0).any())
    projections = [model.get(p) for p in layout.o_proj]
    blocks = [model.get(p) for p in layout.blocks]
    with torch.enable_grad(), model.trace(rows, backend=remote_backend(model, execution.remote)):
        inputs, deltas = [], []
        for layer, projection in enumerate(projections):
            dropped = [i for i, d in enumerate(drops) if d == layer]
            block_in = blocks[layer].input if dropped else None  # [rows, pos, d_model], read before the heads
            x = projection.input  # [rows, pos, n_heads * d_head]
            if not x.requires_grad:  # frozen weights (as on NDIF's workers) leave the graph empty
                x.requires_grad_(True)
            mine = x[n_source:]
            if method == "zero":
                new = torch.zeros_like(mine)
            elif method == "mean":
                new = x[:n_source].mean(dim=0, keepdim=True).expand_as(mine)
            else:
                new = x[:n_source].repeat(g, 1, 1)
            delta = (new - mine).detach()  # [g * b, pos, n_heads * d_head]
            if heads is not None:
                delta = delta * heads[layer].repeat_interleave(d_head).to(delta.dtype)
            inputs.append(x)
            deltas.append(delta)
            if moved:  # the gradient at the moved point: d(mine + a * delta) / d mine is the identity
                projection.input = torch.cat([x[:n_source], mine + alphas.to(x.dtype) * delta])
            if dropped:
                out = blocks[layer].output
                mask = torch.zeros(rows.shape[0], 1, 1, dtype=out.dtype)
                for i in dropped:
                    mask[n_source + i * b : n_source + (i + 1) * b] = 1
                change = out - block_in  # the layer's contribution to the residual stream
                blocks[layer].output = out - mask * change + mask * change.detach()
        values = metric(model.output.logits[n_source:], tokens.repeat(g, 1))  # [g * b]
        score = values.reshape(g, b).mean(dim=1).sum()
        per_layer = [None] * len(projections)
        with score.backward():
            for layer in reversed(range(len(projections))):
                grad = inputs[layer].grad[n_source:]  # [g * b, pos, n_heads * d_head]
                product = split_heads(grad * deltas[layer], n_heads, d_head).unflatten(0, (g, b))
                per_layer[layer] = product.sum(dim=(1, 2, 4)).detach()  # [g, n_heads]
            saved = nnsight.save(torch.stack(per_layer, dim=1))
    return saved.float().cpu()
