"""Head outputs: where they are, and editing chosen heads of batched variants.

A head's output is its slice of the input of the attention output projection
(``o_proj`` on Llama, Qwen and Gemma, ``c_proj`` on GPT-2, ``dense`` on GPT-NeoX):
``[batch, pos, n_heads * d_head]`` viewed as ``[batch, pos, head, d_head]``,
the per-head mix of values before the heads are summed into the residual stream.
"""

from __future__ import annotations

import torch

from ..errors import InductionError
from ..models.layout import model_facts, model_layout
from ..names import head_name
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


def head_edit(model, masks: torch.Tensor, method: str) -> Edit:
    """An edit that replaces chosen heads' outputs in each variant's rows.

    Args:
        model: An nnsight ``TransformersModel``.
        masks: ``[n_variants, n_layers, n_heads]`` bool: which heads each variant replaces.
        method: What they are replaced with: ``"zero"``; ``"mean"``, the mean
            over the source rows at each position; or
            ``"source"``, the aligned source row's own output (activation
            patching: the source rows are clean, the targets corrupted).

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
        if method != "zero" and rows.n_source == 0:
            raise ValueError(f"head method {method!r} needs source rows")
        if method == "source" and rows.n_source != rows.batch:
            raise ValueError("patching needs as many source rows as target rows")
        for layer in torch.nonzero(chosen.any(dim=(0, 2))).flatten().tolist():
            projection = model.get(projections[layer])
            x = projection.input  # [rows, pos, n_heads * d_head]
            n_pos = x.shape[1]
            split = x.reshape(x.shape[0], n_pos, n_heads, d_head)
            source, target = split[: rows.n_source], split[rows.n_source :]
            target = target.reshape(rows.n_variants, rows.batch, n_pos, n_heads, d_head)
            if method == "zero":
                new = torch.zeros((), dtype=x.dtype, device=x.device)
            elif method == "mean":
                new = source.mean(dim=0)  # [pos, head, d_head]
            else:
                new = source  # [batch, pos, head, d_head]
            keep = chosen[:, layer].to(x.device).reshape(rows.n_variants, 1, 1, n_heads, 1)
            target = torch.where(keep, new, target).reshape(-1, n_pos, n_heads, d_head)
            projection.input = torch.cat([source, target]).reshape(x.shape)

    return edit


def check_heads(heads: list[tuple[int, int]], n_layers: int, n_heads: int, option: str = "--heads") -> None:
    """Refuse heads outside ``n_layers`` x ``n_heads``, naming ``option`` and the valid ranges.

    Raises:
        InductionError: On a head outside the model.
    """
    for layer, head in heads:
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise InductionError(
                f"head {head_name(layer, head)} is outside the model: pass {option} with layers "
                f"0..{n_layers - 1} and heads 0..{n_heads - 1}"
            )
