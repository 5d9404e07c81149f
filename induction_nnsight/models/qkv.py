"""Where each head's query, key and value sit in the projections that make them: the one definition of
the q/k/v index arithmetic, for the three value layouts a :class:`~induction_nnsight.models.layout.ModelLayout`
names.

* ``"separate"``: ``q_proj``, ``k_proj``, ``v_proj`` each hold one component (Llama, Qwen2, Mistral,
  Gemma); head ``i``'s features are ``i * d_head : (i + 1) * d_head`` of its projection.
* ``"stacked_qkv"``: one projection holds ``[q; k; v]``: ``n_heads * d_head`` query features, then
  ``n_kv_heads * d_head`` key and value features each (GPT-2's ``c_attn``; Phi-3's ``qkv_proj`` and
  multi-query Falcon's ``query_key_value`` with fewer key/value heads).
* ``"interleaved_qkv"``: one projection holds ``[q_i; k_i; v_i]`` head after head (GPT-NeoX's
  ``query_key_value``).
* ``"grouped_qkv"``: one projection holds, key/value group after group, the group's queries, then its key,
  then its value (Falcon's new decoder; ``"interleaved_qkv"`` is the case of one query per group).

Features are rows of a ``Linear``'s ``[out, in]`` weight and columns of its output ``[..., out]``.
"""

from __future__ import annotations

import torch

from ..errors import InductionError

COMPONENTS = ("q", "k", "v")
VALUE_LAYOUTS = ("separate", "stacked_qkv", "interleaved_qkv", "grouped_qkv")


def kv_head(head: int, n_heads: int, n_kv_heads: int) -> int:
    """The key/value head that query head ``head`` reads (grouped-query attention)."""
    return head // (n_heads // n_kv_heads)


def qkv_features(
    value_layout: str | None, component: str, index: int, n_heads: int, d_head: int, n_kv_heads: int | None = None
) -> tuple[int, int]:
    """``(start, stop)`` of one head's ``component`` in the output features of the projection holding it.

    Args:
        value_layout: One of :data:`VALUE_LAYOUTS`.
        component: ``"q"``, ``"k"`` or ``"v"``.
        index: The query head for ``"q"``; the key/value head for ``"k"`` and ``"v"``.
        n_heads: Query heads (the width of the query block of a stacked projection).
        d_head: Features per head.
        n_kv_heads: Key/value heads (the width of a stacked projection's key and value blocks; None: ``n_heads``).

    Returns:
        ``(start, stop)``, ``stop - start == d_head``.

    Example:
        >>> qkv_features("stacked_qkv", "v", 1, n_heads=4, d_head=8)
        (72, 80)
        >>> qkv_features("interleaved_qkv", "k", 1, n_heads=4, d_head=8)
        (32, 40)
        >>> qkv_features("stacked_qkv", "v", 0, n_heads=4, d_head=8, n_kv_heads=1)
        (40, 48)
        >>> qkv_features("grouped_qkv", "k", 1, n_heads=4, d_head=8, n_kv_heads=2)
        (48, 56)
    """
    c = COMPONENTS.index(component)
    n_kv = n_heads if n_kv_heads is None else n_kv_heads
    if value_layout == "separate":
        start = index * d_head
    elif value_layout == "stacked_qkv":
        start = (0, n_heads, n_heads + n_kv)[c] * d_head + index * d_head
    elif value_layout == "interleaved_qkv":
        start = index * 3 * d_head + c * d_head
    elif value_layout == "grouped_qkv":
        group = n_heads // n_kv  # queries per key/value head
        block, within = (index // group, index % group) if c == 0 else (index, group + c - 1)
        start = (block * (group + 2) + within) * d_head
    else:
        raise InductionError(
            f"value_layout={value_layout!r}: pass set_layout(model, value_layout=...) with one of "
            + ", ".join(VALUE_LAYOUTS)
        )
    return start, start + d_head


def qkv_width(value_layout: str | None, n_heads: int, n_kv_heads: int, d_head: int) -> int:
    """Output features of the projection that holds the values: ``n_kv_heads * d_head`` for ``"separate"``,
    ``(n_heads + 2 * n_kv_heads) * d_head`` stacked or grouped, ``3 * n_heads * d_head`` interleaved."""
    if value_layout == "separate":
        return n_kv_heads * d_head
    if value_layout in ("stacked_qkv", "grouped_qkv"):
        return (n_heads + 2 * n_kv_heads) * d_head
    return 3 * n_heads * d_head


def value_heads(weight: torch.Tensor, value_layout: str, n_heads: int, n_kv_heads: int, d_head: int) -> torch.Tensor:
    """The values' rows of the projection holding them, head by head (inside a trace or outside).

    Args:
        weight: ``[out, ...]`` the projection's ``Linear``-style weight (or anything whose first
            dimension is its output features).
        value_layout: One of :data:`VALUE_LAYOUTS`.
        n_heads: Query heads.
        n_kv_heads: Key/value heads.
        d_head: Features per head.

    Returns:
        ``[kv_head, d_head, ...]``.
    """
    n_values = n_heads if value_layout == "interleaved_qkv" else n_kv_heads
    rows = [qkv_features(value_layout, "v", i, n_heads, d_head, n_kv_heads) for i in range(n_values)]
    return torch.stack([weight[start:stop] for start, stop in rows])
