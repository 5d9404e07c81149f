"""Head outputs: where they are, and editing chosen heads of batched variants.

A head's output is its slice of the input of the attention output projection
(``o_proj`` on Llama, Qwen and Gemma, ``c_proj`` on GPT-2, ``dense`` on GPT-NeoX):
``[batch, pos, n_heads * d_head]`` viewed as ``[batch, pos, head, d_head]``,
the per-head mix of values before the heads are summed into the residual stream.
"""

from __future__ import annotations

import nnsight
import torch

from ..errors import InductionError
from ..models.heads import split_heads
from ..models.layout import model_facts, model_layout
from ..names import check_heads, head_name  # noqa: F401  (check_heads: re-exported for causal.circuit)
from ..ndif.backend import remote_backend
from ..ndif.execution import Execution, as_execution
from .variants import Edit, Rows

HEAD_METHODS = ("zero", "mean", "source")


def head_mask(heads, n_layers: int, n_heads: int) -> torch.Tensor:
    """``[n_layers, n_heads]`` bool mask of a set of ``(layer, head)`` pairs.

    Raises:
        InductionError: On a head outside the model.
    """
    mask = torch.zeros(n_layers, n_heads, dtype=torch.bool)
    for layer, head in heads:
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise InductionError(
                f"head {head_name(layer, head)} is outside the model's {n_layers} layers x {n_heads} heads"
            )
        mask[layer, head] = True
    return mask


def reference_means(model, reference: torch.Tensor, *, execution: Execution | None = None) -> dict[int, torch.Tensor]:
    """Every head's mean output over reference rows at each position, from traces of at most
    ``execution.max_rows`` rows (what ``mean`` ablation puts in a head's place).

    Args:
        model: An nnsight ``TransformersModel``.
        reference: ``[n_ref, pos]`` rows.
        execution: How the traces run; None for the defaults.

    Returns:
        ``layer -> [pos, n_heads, d_head]``.
    """
    run = as_execution(execution)
    facts = model_facts(model)
    projections = model_layout(model).o_proj
    per = max(1, min(run.max_rows, run.max_tokens // max(1, reference.shape[1])))
    sums: dict[int, torch.Tensor] = {}
    for start in range(0, reference.shape[0], per):
        rows = reference[start : start + per]
        with torch.no_grad(), model.trace(rows, backend=remote_backend(model, run.remote)):
            saved = nnsight.save([model.get(p).input.sum(dim=0) for p in projections])  # [pos, n_heads * d_head]
        for layer, total in enumerate(saved):
            total = split_heads(total.detach().float().cpu(), facts.n_heads, facts.d_head)
            sums[layer] = total if layer not in sums else sums[layer] + total
    return {layer: total / reference.shape[0] for layer, total in sums.items()}


def head_edit(
    model, masks: torch.Tensor, method: str, *, means: dict[int, torch.Tensor] | None = None, keep_bos: bool = False
) -> Edit:
    """An edit that replaces chosen heads' outputs in each variant's rows.

    Args:
        model: An nnsight ``TransformersModel``.
        masks: ``[n_variants, n_layers, n_heads]`` bool: which heads each variant replaces.
        method: What they are replaced with: ``"zero"``; ``"mean"``, ``means`` (from
            :func:`reference_means`) or else the mean over the source rows at each position; or
            ``"source"``, the aligned source row's own output (activation
            patching: the source rows are clean, the targets corrupted; resample ablation:
            the source rows are another draw).
        means: ``layer -> [pos, n_heads, d_head]`` mean outputs (``"mean"`` only; ``[1, n_heads, d_head]``
            is the same at every position), for at least the layers ``masks`` ablates.
        keep_bos: Leave position 0 untouched.

    Returns:
        An :data:`~induction_nnsight.causal.variants.Edit` for :func:`~induction_nnsight.causal.variants.run_variants`.
    """
    if method not in HEAD_METHODS:
        raise InductionError(f"unknown head method {method!r}: pass one of {', '.join(HEAD_METHODS)}")
    facts = model_facts(model)
    n_heads, d_head = facts.n_heads, facts.d_head
    projections = model_layout(model).o_proj

    def edit(rows: Rows) -> None:
        chosen = masks[rows.start : rows.stop]  # [k, n_layers, n_heads]
        if method == "source" and rows.n_source == 0 or method == "mean" and means is None and rows.n_source == 0:
            raise ValueError(f"head method {method!r} needs source rows")
        if method == "source" and rows.n_source != rows.batch:
            raise ValueError("patching needs as many source rows as target rows")
        for layer in torch.nonzero(chosen.any(dim=(0, 2))).flatten().tolist():
            projection = model.get(projections[layer])
            x = projection.input  # [rows, pos, n_heads * d_head]
            n_pos = x.shape[1]
            split = split_heads(x, n_heads, d_head)  # [rows, pos, n_heads, d_head]
            source, target = split[: rows.n_source], split[rows.n_source :]
            target = target.unflatten(0, (rows.n_variants, rows.batch))
            if method == "zero":
                new = torch.zeros((), dtype=x.dtype, device=x.device)
            elif method == "mean":
                new = source.mean(dim=0) if means is None else means[layer].to(x.device, x.dtype)  # [pos, head, d]
            else:
                new = source  # [batch, pos, head, d_head]
            keep = chosen[:, layer].to(x.device).reshape(rows.n_variants, 1, 1, n_heads, 1)
            if keep_bos:
                keep = keep & (torch.arange(n_pos, device=x.device) > 0).reshape(1, 1, n_pos, 1, 1)
            target = torch.where(keep, new, target).flatten(0, 1)
            projection.input = torch.cat([source, target]).reshape(x.shape)

    return edit
