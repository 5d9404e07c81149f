"""AtP*'s QK fix (Kramár et al. 2024): the effect of changing one head's queries or keys, with the
softmax recomputed exactly instead of linearised.

A change of head ``h``'s query or key moves its attention logits ``S = q k^T * scale`` and, through
the softmax, its pattern ``A``. Attribution patching linearises both steps:
``dM ~ sum(dM/dS * dS)`` (:func:`linear_qk_effect`). The QK fix keeps only the step after the
pattern linear: ``dM ~ sum(dM/dA * (A' - A))`` with ``A'`` the exact softmax of the changed logits
(:func:`qk_fix_effect`). For a metric linear in the pattern (an induction score, a mean attention)
the fix is exact, whatever the size of the change; the linear estimate is not once the softmax
saturates. Both are pure tensor functions of one head's states, so they run inside a trace or on
saved tensors alike. The circuit's ``k`` and ``q`` edge estimates apply the same fix inside the
model (:mod:`~induction_nnsight.causal.paths.search`).
"""

from __future__ import annotations

import math

import torch

__all__ = ["attention_pattern", "linear_qk_effect", "qk_fix_effect"]


def attention_pattern(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Causal softmax attention of one head.

    Args:
        q: ``[batch, pos, d_head]`` queries (after any rotary).
        k: ``[batch, pos, d_head]`` keys.
        scale: Logit scale (None: ``1 / sqrt(d_head)``).

    Returns:
        ``[batch, query, key]`` probabilities, zero above the diagonal.
    """
    logits = (q @ k.transpose(-1, -2)) * _scale(q, scale)
    return torch.softmax(logits.masked_fill(_future(q), float("-inf")), dim=-1)


def _scale(q: torch.Tensor, scale: float | None) -> float:
    """The logit scale: ``scale``, or ``1 / sqrt(d_head)`` for None (``q``: ``[..., d_head]``)."""
    return 1 / math.sqrt(q.shape[-1]) if scale is None else scale


def _future(q: torch.Tensor) -> torch.Tensor:
    """``[query, key]`` mask, True where the key comes after the query (``q``: ``[batch, pos, d_head]``)."""
    n = q.shape[-2]
    return torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)


def qk_fix_effect(
    q: torch.Tensor,
    k: torch.Tensor,
    grad_pattern: torch.Tensor,
    *,
    new_q: torch.Tensor | None = None,
    new_k: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """``sum(dM/dA * (A' - A))`` per row: the QK-fixed estimate of changing the queries and/or keys.

    Args:
        q: ``[batch, pos, d_head]`` clean queries.
        k: ``[batch, pos, d_head]`` clean keys.
        grad_pattern: ``[batch, query, key]`` gradient of the metric with respect to the pattern.
        new_q: Changed queries (None: unchanged).
        new_k: Changed keys (None: unchanged).
        scale: Logit scale (None: ``1 / sqrt(d_head)``).

    Returns:
        ``[batch]`` estimated change of the metric.
    """
    before = attention_pattern(q, k, scale)
    after = attention_pattern(q if new_q is None else new_q, k if new_k is None else new_k, scale)
    return ((after - before) * grad_pattern).sum(dim=(-1, -2))


# The same signature as qk_fix_effect on purpose: the two estimates of one change are drop-in alternatives.
def linear_qk_effect(
    q: torch.Tensor,
    k: torch.Tensor,
    grad_pattern: torch.Tensor,
    *,
    new_q: torch.Tensor | None = None,
    new_k: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Plain attribution patching of the same change: ``sum(dM/dS * dS)`` with the softmax linearised at ``A``.

    ``dM/dS = A * (dM/dA - sum_key(A * dM/dA))`` (the softmax's Jacobian), ``dS`` the exact change of
    the logits. Same arguments and result as :func:`qk_fix_effect`.
    """
    scale = _scale(q, scale)
    pattern = attention_pattern(q, k, scale)
    grad_logits = pattern * (grad_pattern - (pattern * grad_pattern).sum(dim=-1, keepdim=True))
    new_q = q if new_q is None else new_q
    new_k = k if new_k is None else new_k
    change = (new_q @ new_k.transpose(-1, -2) - q @ k.transpose(-1, -2)) * scale
    change = change.masked_fill(_future(q), 0.0)
    return (grad_logits * change).sum(dim=(-1, -2))
