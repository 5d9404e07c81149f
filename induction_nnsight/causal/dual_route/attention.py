"""Value-weighted attention from the last position to chosen keys: the dual-route attention scores.

Feucht et al. (2025) weight each attention probability by the norm of the value vector it reads
(Kobayashi et al. 2020: a head that attends to a key whose value is near zero moves nothing) and
renormalise over the keys. Read from the last query of each row to two keys per row, this gives the
token-induction score (the key after the earlier copy of the current token) and the concept-induction
score (the last token of the earlier multi-token entity). One trace; only ``[batch, target, layer,
head]`` leaves it.
"""

from __future__ import annotations

import nnsight
import torch

from ...models.attention import attention_calls, attention_modules, call_query_argument, layer_attention
from ...models.layout import model_facts, model_layout
from ...models.qkv import value_heads
from ...ndif.backend import remote_backend
from ...ndif.execution import Execution, as_execution
from ...ndif.settings import on_ndif

__all__ = ["value_weighted_rows", "value_weighted_attention"]


def value_weighted_rows(probs: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Attention rows weighted by the norm of each key's value vector, renormalised over the keys.

    Args:
        probs: ``[batch, head, query, key]`` attention probabilities.
        value: ``[batch, kv_head, key, d_head]`` value states (a key/value head serves
            ``head // kv_head`` query heads).

    Returns:
        ``[batch, head, query, key]`` float32, each row summing to 1.
    """
    n_heads, n_keys = probs.shape[1], probs.shape[-1]
    norms = value[..., :n_keys, :].float().norm(dim=-1)  # [batch, kv_head, key]
    norms = norms.repeat_interleave(n_heads // value.shape[1], dim=1)  # [batch, head, key]
    weighted = probs.float() * norms[:, :, None, :]
    return weighted / weighted.sum(-1, keepdim=True).clamp_min(1e-30)


def value_weighted_attention(
    model, tokens: torch.Tensor, keys: torch.Tensor, *, execution: Execution | None = None
) -> torch.Tensor:
    """Every head's value-weighted attention from each row's last position to chosen keys.

    Args:
        model: An nnsight ``TransformersModel``.
        tokens: ``[batch, pos]`` token ids.
        keys: ``[batch, n_keys]`` key positions read in each row.
        execution: How the trace runs (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote``); None for the defaults.

    Returns:
        ``[batch, n_keys, n_layers, n_heads]`` float32 per-row scores.
    """
    remote = as_execution(execution).remote
    eager = model_facts(model).attn_implementation == "eager" and not on_ndif(remote)
    layout = model_layout(model)
    facts = layout.facts
    modules, calls = attention_modules(model), attention_calls(model)
    batch, n_pos = tokens.shape
    last = torch.tensor([n_pos - 1])
    rows = torch.arange(batch)[:, None]
    with torch.no_grad(), model.trace(tokens, backend=remote_backend(model, remote)):
        per_layer = []
        for at, (attention, name) in enumerate(zip(modules, calls)):
            query = call_query_argument(name)
            if query is None:  # a family's own softmax takes scores: the values are read where they are made
                made = model.get(layout.v_proj[at]).output.movedim(-1, 0)  # [features, batch, pos]
                heads = value_heads(made, layout.value_layout, facts.n_heads, facts.n_kv_heads, facts.d_head)
                value = heads.permute(2, 0, 3, 1)  # [batch, kv_head, key, d_head]
            else:  # transformers' interface (self, query, key, value, ...) or torch's kernel (query, key, value, ...)
                value = getattr(attention.source, name).inputs[0][query + 2]
            layer = layer_attention(attention, eager, name)
            weighted = value_weighted_rows(layer.rows(last.to(layer.device)), value)[:, :, 0]  # [batch, head, key]
            per_layer.append(weighted[rows, :, keys.to(weighted.device)])  # [batch, n_keys, head]
        saved = nnsight.save(torch.stack(per_layer, dim=2))  # [batch, n_keys, layer, head]
    return saved.detach().cpu().float()
