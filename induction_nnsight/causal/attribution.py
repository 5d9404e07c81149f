"""Attribution patching: a first-order estimate of patching every head at once.

One forward and one backward pass give each head's gradient ``g`` of the
metric with respect to its output ``x`` in the target run. Replacing ``x`` by
``x'`` changes the metric by about ``sum(g * (x' - x))`` (a dot product over
batch, position and ``d_head``): with ``x'`` the clean output this estimates
activation patching, with ``x' = 0`` or the source rows' mean it estimates zero or
mean ablation. Estimates are exact for a metric linear in the head output and
degrade where the model saturates, so they are compared with the exhaustive
results (Nanda 2023, "Attribution patching").
"""

from __future__ import annotations

import nnsight
import torch

from ..errors import InductionError
from ..models.layout import model_facts, model_layout
from ..ndif.backend import remote_backend
from ..ndif.execution import Execution, as_execution
from .head_outputs import HEAD_METHODS
from .metrics import RowMetric


def head_attribution(
    model,
    tokens: torch.Tensor,
    metric: RowMetric,
    method: str = "source",
    *,
    source: torch.Tensor | None = None,
    execution: Execution | None = None,
) -> torch.Tensor:
    """Estimated change of the metric when each head's output is replaced.

    Args:
        model: An nnsight ``TransformersModel``.
        tokens: ``[batch, pos]`` rows whose run is edited (corrupted rows for
            patching, the clean rows for ablation).
        metric: The metric, averaged over those rows.
        method: ``"source"`` (patch in the aligned source rows' outputs),
            ``"zero"`` or ``"mean"`` (the source rows' mean at each position).
        source: ``[n_source, pos]`` rows: the clean rows, or the rows averaged for mean ablation.
        execution: How the trace runs (:class:`~induction_nnsight.ndif.execution.Execution`;
            only ``remote`` matters: one forward and one backward pass); None for the defaults.

    Returns:
        ``[n_layers, n_heads]`` estimated ``metric(replaced) - metric(tokens)``.
    """
    if method not in HEAD_METHODS:
        raise InductionError(f"unknown head method {method!r}: pass one of {', '.join(HEAD_METHODS)}")
    if method != "zero" and source is None:
        raise InductionError(f"head method {method!r} needs source rows")
    if method == "source" and source.shape != tokens.shape:
        raise InductionError("attribution patching needs clean and corrupted rows of the same shape")
    facts = model_facts(model)
    n_heads, d_head = facts.n_heads, facts.d_head
    n_source = 0 if source is None else source.shape[0]
    rows = tokens if source is None else torch.cat([source, tokens])
    projections = [model.get(p) for p in model_layout(model).o_proj]
    with torch.enable_grad(), model.trace(rows, backend=remote_backend(model, as_execution(execution).remote)):
        inputs, deltas = [], []
        for projection in projections:
            x = projection.input  # [rows, pos, n_heads * d_head]
            if not x.requires_grad:  # frozen weights (as on NDIF's workers) leave the graph empty
                x.requires_grad_(True)
            mine = x[n_source:].detach()
            if method == "zero":
                new = torch.zeros_like(mine)
            elif method == "mean":
                new = x[:n_source].detach().mean(dim=0, keepdim=True)
            else:
                new = x[:n_source].detach()
            inputs.append(x)
            deltas.append(new - mine)
        score = metric(model.output.logits[n_source:], tokens).mean()
        per_layer = [None] * len(projections)
        with score.backward():
            for layer in reversed(range(len(projections))):
                grad = inputs[layer].grad[n_source:]  # [batch, pos, n_heads * d_head]
                product = (grad * deltas[layer]).reshape(*grad.shape[:2], n_heads, d_head)
                per_layer[layer] = product.sum(dim=(0, 1, 3)).detach()
            saved = nnsight.save(torch.stack(per_layer))
    return saved.float().cpu()
