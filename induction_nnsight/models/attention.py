"""Attention access: find each layer's attention module and read its probabilities.

Inside a trace, :func:`attention_pattern` returns a layer's attention
probabilities ``[batch, query_head, query, key]`` whatever the model's
``attn_implementation``: under ``eager`` it reads the weights the attention call
returns; under ``sdpa`` and the other fused kernels, which return no weights, it
recomputes ``softmax(Q K^T * scaling + mask)`` from the query and key states that
reach the attention call (through nnsight's ``.source``), honouring grouped-query
attention, soft-capping and sliding windows.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..errors import InductionError
from .layout import model_layout

def attention_modules(model) -> list[Any]:
    """The nnsight envoys of every layer's attention module, in layer order (from :func:`model_layout`)."""
    return [model.get(path) for path in model_layout(model).attention]


def attention_call_name(attention) -> str:
    """The ``.source`` operation name of the attention-kernel call in ``forward``.

    transformers routes every implementation (eager, sdpa, flash ...) through one
    ``attention_interface(self, query, key, value, mask, scaling=..., ...)`` call;
    its operation name (``attention_interface_1`` on Llama in transformers 5)
    changes between versions, so it is looked up rather than hard-coded.
    """
    try:
        source = attention.source
        compiled = source.compiled
    except Exception as error:
        raise InductionError(
            f"{type(attention._module).__name__}: its forward source is not available to nnsight ({error})"
        ) from error
    lines = str(compiled.source).splitlines()
    for name in compiled.names:
        if not re.fullmatch(r"attention_interface_\d+", name):
            continue
        line = compiled.lines[name]  # 1-based
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        if "attention_interface(" in text:
            return name
    raise InductionError(
        f"{type(attention._module).__name__}: no attention_interface(...) call in its forward; "
        f"operations seen: {', '.join(compiled.names[:12])} ...; use attn_implementation='eager'"
    )


def softmax_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scaling: float | None = None,
    softcap: float | None = None,
    sliding_window: int | None = None,
) -> torch.Tensor:
    """Attention probabilities recomputed from query and key states.

    Args:
        query: ``[batch, query_head, query, d_head]``.
        key: ``[batch, kv_head, key, d_head]``; each key/value head serves
            ``query_head // kv_head`` query heads (grouped-query attention).
        mask: Additive float mask or boolean keep-mask broadcastable to
            ``[batch, query_head, query, key]``; None means causal.
        scaling: Multiplier of ``Q K^T`` (``d_head ** -0.5`` when None).
        softcap: Attention-logit soft-capping (Gemma 2): ``tanh(s / c) * c``.
        sliding_window: When the mask is None, keys further back than this are hidden.

    Returns:
        ``[batch, query_head, query, key]`` probabilities, rows summing to 1.
    """
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:
        key = key.repeat_interleave(n_rep, dim=1)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scaling
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    n_query, n_key = scores.shape[-2:]
    if mask is None:
        q_pos = torch.arange(n_query, device=scores.device)[:, None] + (n_key - n_query)
        k_pos = torch.arange(n_key, device=scores.device)[None, :]
        keep = k_pos <= q_pos
        if sliding_window:
            keep = keep & (q_pos - k_pos < sliding_window)
        scores = scores.masked_fill(~keep, float("-inf"))
    elif mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask[..., :n_key], float("-inf"))
    else:
        scores = scores + mask[..., :n_key].float()
    return torch.softmax(scores, dim=-1).to(query.dtype)


def attention_pattern(attention, eager: bool, call_name: str) -> torch.Tensor:
    """A layer's attention probabilities, read inside a trace.

    Must be called inside ``model.trace(...)``, for layers in forward order.
    Both routes read the attention call itself (not the module's output), so
    the head outputs that follow it in the same layer stay reachable.

    Args:
        attention: The layer's attention envoy (from :func:`attention_modules`).
        eager: Read the weights the call returns (``attn_implementation="eager"``)
            instead of recomputing them from its query and key states.
        call_name: The attention call's ``.source`` name (from :func:`attention_call_name`).

    Returns:
        ``[batch, query_head, query, key]`` attention probabilities.
    """
    call = getattr(attention.source, call_name)
    if eager:
        return call.output[1]
    args, kwargs = call.inputs
    query, key, mask = args[1], args[2], args[4] if len(args) > 4 else kwargs.get("attention_mask")
    return softmax_attention(
        query,
        key,
        mask,
        scaling=kwargs.get("scaling"),
        softcap=kwargs.get("softcap"),
        sliding_window=kwargs.get("sliding_window"),
    )
