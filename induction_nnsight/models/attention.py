"""Attention access: find each layer's attention module and read its probabilities.

Inside a trace, :func:`attention_pattern` returns a layer's attention
probabilities ``[batch, query_head, query, key]`` whatever the model's
``attn_implementation``: under ``eager`` it reads the probabilities the attention call
returns; under ``sdpa`` and the other fused kernels, which return none, it
recomputes ``softmax(Q K^T * scaling + mask)`` from the query and key states that
reach the attention call (through nnsight's ``.source``), honouring grouped-query
attention, soft-capping and sliding windows.

That full pattern grows with the square of the length (2.4 GB a layer for SmolLM2's 9 heads
at 8,192 tokens). :func:`layer_attention` instead reads what a layer's pattern is made of,
and :meth:`LayerAttention.rows` makes the rows of chosen queries only, so a pass can walk
the queries in chunks sized by :func:`query_chunk` and never hold more than one
``[batch, head, chunk, key]`` block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .attention_calls import attention_call_name, call_query_argument
from .layout import model_layout

__all__ = [
    "LayerAttention",
    "attention_calls",
    "attention_modules",
    "attention_pattern",
    "call_query_argument",
    "can_stack",
    "layer_attention",
    "query_chunk",
    "stack_layers",
]


def attention_modules(model) -> list[Any]:
    """The nnsight envoys of every layer's attention module, in layer order (from :func:`model_layout`)."""
    return [model.get(path) for path in model_layout(model).attention]


def attention_calls(model) -> list[str]:
    """Every layer's :func:`attention_call_name`, for the function the layout's ``attention_call`` names."""
    function = model_layout(model).attention_call
    return [attention_call_name(a, function, model._module) for a in attention_modules(model)]


def query_chunk(batch: int, n_heads: int, n_keys: int, budget: int) -> int:
    """How many queries one block of pattern rows ``[batch, head, chunk, key]`` may hold.

    Args:
        batch: Rows of the batch.
        n_heads: Query heads.
        n_keys: Keys per row (the sequence length).
        budget: The most elements one block may have.

    Returns:
        ``max(1, budget // (batch * n_heads * n_keys))``.

    Example:
        >>> query_chunk(1, 9, 8192, 2**24)
        227
    """
    return max(1, budget // max(1, batch * n_heads * n_keys))


def _rows(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    positions: torch.Tensor,
    *,
    scaling: float | None,
    softcap: float | None,
    sliding_window: int | None,
) -> torch.Tensor:
    """Probabilities of the queries at ``positions``: ``[batch, query_head, len(positions), keys kept]``.

    Keys after the last of these queries are cut (every supported model is a causal decoder, so
    they hold no attention). Two blocks of that size exist at most: the scores and the softmax.
    """
    offset = key.shape[-2] - query.shape[-2]  # key index of query 0 (a cache in front)
    n_keys = int(positions.max()) + 1 + offset if positions.numel() else 0
    batch, n_heads, _, d_head = query.shape
    n_kv = key.shape[1]
    key = key[..., :n_keys, :].float()  # [batch, kv_head, key, d_head]
    if scaling is None:
        scaling = d_head**-0.5
    positions = positions.to(query.device)
    chosen = query.index_select(2, positions).float() * scaling  # [batch, query_head, chunk, d_head]
    # Query heads grouped by the key head they share (no repeated copy of the keys):
    # [batch, kv_head, heads_per_kv * chunk, d_head] @ [batch, kv_head, d_head, key]
    grouped = chosen.reshape(batch, n_kv, -1, d_head)
    scores = torch.matmul(grouped, key.transpose(-1, -2))
    scores = scores.view(batch, n_heads, len(positions), n_keys)  # [batch, query_head, chunk, key]
    if softcap:
        scores.div_(softcap).tanh_().mul_(softcap)
    if mask is None:
        # keys before the first query are hidden from none of them (outside a sliding window)
        first = 0 if sliding_window or not positions.numel() else int(positions.min()) + offset
        q_pos = positions[:, None] + offset
        k_pos = torch.arange(first, n_keys, device=scores.device)[None, :]
        keep = k_pos <= q_pos
        if sliding_window:
            keep = keep & (q_pos - k_pos < sliding_window)
        scores[..., first:].masked_fill_(~keep, float("-inf"))
    else:
        rows = mask if mask.shape[-2] == 1 else mask.index_select(-2, positions.to(mask.device))
        rows = rows[..., :n_keys]
        if rows.dtype == torch.bool:
            scores.masked_fill_(~rows, float("-inf"))
        else:
            scores.add_(rows.float())
    return torch.softmax(scores, dim=-1).to(query.dtype)


@dataclass
class LayerAttention:
    """What one layer's attention pattern is made of, read inside a trace; rows are made on demand.

    Under ``eager`` it holds the probabilities the attention call returned (rows are slices of
    them); under ``sdpa`` and the other fused kernels, the query and key states, the mask
    and the call's settings (rows are recomputed, a block at a time).

    Attributes:
        probs: ``[batch, query_head, query, key]`` returned probabilities (eager), else None.
        query: ``[batch, query_head, query, d_head]`` (rotary embedding applied), else None.
        key: ``[batch, kv_head, key, d_head]``, else None.
        mask: The call's attention mask (None: causal).
        scaling: Multiplier of ``Q K^T``.
        softcap: Attention-logit soft-capping.
        sliding_window: Keys further back than this are hidden.
    """

    probs: torch.Tensor | None = None
    query: torch.Tensor | None = None
    key: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    scaling: float | None = None
    softcap: float | None = None
    sliding_window: int | None = None

    @property
    def device(self) -> torch.device:
        """Where the tensors are."""
        return (self.probs if self.probs is not None else self.query).device

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(batch, query_head, query, key)`` of the whole pattern."""
        if self.probs is not None:
            return tuple(self.probs.shape)
        return (*self.query.shape[:3], self.key.shape[-2])

    def rows(self, positions: torch.Tensor) -> torch.Tensor:
        """The pattern's rows at some queries.

        Args:
            positions: ``[chunk]`` query indices, increasing.

        Returns:
            ``[batch, query_head, chunk, key]`` probabilities, keys cut after the last of
            these queries (they hold no attention in a causal model).
        """
        if self.probs is not None:
            offset = self.probs.shape[-1] - self.probs.shape[-2]
            n_keys = int(positions.max()) + 1 + offset if positions.numel() else 0
            return self.probs.index_select(2, positions.to(self.probs.device))[..., :n_keys]
        return _rows(
            self.query,
            self.key,
            self.mask,
            positions,
            scaling=self.scaling,
            softcap=self.softcap,
            sliding_window=self.sliding_window,
        )

    def pattern(self) -> torch.Tensor:
        """The whole ``[batch, query_head, query, key]`` pattern."""
        if self.probs is not None:
            return self.probs
        return self.rows(torch.arange(self.query.shape[-2]))  # on the CPU: read as a number (not on meta)


def can_stack(a: LayerAttention, b: LayerAttention) -> bool:
    """Whether two layers can be read as one by :func:`stack_layers`: same shapes, device, mask and settings
    (not, e.g., layers with alternating sliding windows)."""
    if a.probs is not None or b.probs is not None:
        return (
            a.probs is not None
            and b.probs is not None
            and a.probs.shape == b.probs.shape
            and a.probs.device == b.probs.device
        )
    per_head = [m for m in (a.mask, b.mask) if m is not None and m.ndim == 4 and m.shape[1] > 1]
    return (
        not per_head  # a mask per head (ALiBi's biases) does not stack with the heads
        and a.query.shape == b.query.shape
        and a.key.shape == b.key.shape
        and a.query.device == b.query.device
        and a.mask is b.mask
        and a.scaling == b.scaling
        and a.softcap == b.softcap
        and a.sliding_window == b.sliding_window
    )


def stack_layers(layers: list[LayerAttention]) -> LayerAttention:
    """Several layers read as one whose heads are theirs side by side, layer by layer.

    A pattern score reduces each head on its own, so one reduction over the stack
    ``[batch, layer * head, query, key]`` gives every layer's scores at once, with one
    set of tensor operations instead of one per layer (what costs most on short inputs).
    Grouped-query heads stay with their key head: query head ``h`` of the ``i``-th layer
    becomes ``i * n_heads + h`` and its key head ``i * n_kv_heads + h // group``.

    Args:
        layers: Layers that :func:`can_stack` pairwise.
    """
    first = layers[0]
    if len(layers) == 1:
        return first
    if first.probs is not None:
        return LayerAttention(probs=torch.cat([a.probs for a in layers], dim=1))
    return LayerAttention(
        query=torch.cat([a.query for a in layers], dim=1),
        key=torch.cat([a.key for a in layers], dim=1),
        mask=first.mask,
        scaling=first.scaling,
        softcap=first.softcap,
        sliding_window=first.sliding_window,
    )


def layer_attention(attention, eager: bool, call_name: str) -> LayerAttention:
    """Read a layer's attention inside a trace, without building its pattern.

    Must be called inside ``model.trace(...)``, for layers in forward order. It reads the
    attention call itself (not the module's output), so the head outputs that follow it
    in the same layer stay reachable.

    Args:
        attention: The layer's attention envoy (from :func:`attention_modules`).
        eager: Read the probabilities the call returns (``attn_implementation="eager"``)
            instead of its query and key states.
        call_name: The attention call's ``.source`` name (from :func:`attention_call_name`).

    Returns:
        A :class:`LayerAttention`.
    """
    call = getattr(attention.source, call_name)
    if call_name.endswith(f"softmax_{call_name.rsplit('_', 1)[-1]}"):  # a family's own softmax: the pattern
        return LayerAttention(probs=call.output)
    if "scaled_dot_product_attention" in call_name:  # torch's kernel: (query, key, value, attn_mask, ..., scale)
        args, kwargs = call.inputs
        mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
        return LayerAttention(query=args[0], key=args[1], mask=mask, scaling=kwargs.get("scale"))
    if eager:
        return LayerAttention(probs=call.output[1])
    args, kwargs = call.inputs
    mask = args[4] if len(args) > 4 else kwargs.get("attention_mask")
    return LayerAttention(
        query=args[1],
        key=args[2],
        mask=mask,
        scaling=kwargs.get("scaling"),
        softcap=kwargs.get("softcap"),
        sliding_window=kwargs.get("sliding_window"),
    )


def attention_pattern(attention, eager: bool, call_name: str) -> torch.Tensor:
    """A layer's whole attention pattern, read inside a trace (see :func:`layer_attention`).

    Its size grows with the square of the length; for long sequences walk
    :meth:`LayerAttention.rows` in chunks instead.

    Returns:
        ``[batch, query_head, query, key]`` attention probabilities.
    """
    return layer_attention(attention, eager, call_name).pattern()
