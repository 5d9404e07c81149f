"""Trace functions: a model and tokens in, small reduced tensors out.

Each function opens one ``model.trace``; every reduction happens inside it, so
what is saved (and, with ``remote=True``, downloaded from NDIF) is a loss vector
and an ``[n_layers, n_heads]`` table, never logits or attention patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

import nnsight
import torch

from ..models.attention import attention_call_name, attention_modules, attention_pattern
from ..models.loading import model_facts
from ..ndif.backend import remote_backend
from ..ndif.settings import Remote, on_ndif
from .reductions import induction_stripe_score, per_position_loss


@dataclass
class ScanResult:
    """What one scan pass returns.

    Attributes:
        loss_by_position: ``[pos - 1]`` mean next-token loss at each position.
        induction_scores: ``[n_layers, n_heads]`` diagonal-offset induction scores.
    """

    loss_by_position: torch.Tensor
    induction_scores: torch.Tensor


def _scan(model, tokens: torch.Tensor, seq_len: int | None, *, loss: bool, scores: bool, remote: Remote):
    attentions = attention_modules(model) if scores else []
    # NDIF serves models under sdpa (no attention weights): recompute there.
    eager = model_facts(model).attn_implementation == "eager" and not on_ndif(remote)
    calls = [attention_call_name(a) for a in attentions]
    saved_loss = saved_scores = None
    # No autograd graph: it would keep every layer's activations alive until the end.
    with torch.no_grad(), model.trace(tokens, backend=remote_backend(model, remote)):
        if scores:
            per_layer = [
                induction_stripe_score(attention_pattern(a, eager, call), seq_len)
                for a, call in zip(attentions, calls)
            ]
            saved_scores = nnsight.save(torch.stack(per_layer))  # [n_layers, n_heads]
        if loss:
            saved_loss = nnsight.save(per_position_loss(model.output.logits, tokens))  # [pos - 1]
    return saved_loss, saved_scores


def loss_by_position(model, tokens: torch.Tensor, *, remote: Remote = False) -> torch.Tensor:
    """Mean next-token loss at each position, computed inside the trace.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        tokens: ``[batch, pos]`` token ids.
        remote: ``True``, a host URL or :class:`~induction_nnsight.ndif.remote.RemoteSettings`
            to run the trace on NDIF; ``"local"`` for a dry run of the remote path.

    Returns:
        ``[pos - 1]``: entry ``i`` is the loss of predicting token ``i + 1``.
    """
    return _scan(model, tokens, None, loss=True, scores=False, remote=remote)[0].detach().cpu()


def induction_scores(model, tokens: torch.Tensor, seq_len: int, *, remote: Remote = False) -> torch.Tensor:
    """Every head's diagonal-offset induction score, reduced inside the trace.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        tokens: ``[batch, bos + 2 * seq_len]`` repeated tokens (see
            :func:`~induction_nnsight.probes.tokens.repeated_tokens`).
        seq_len: Length of the repeated block.
        remote: ``True``, a host URL or :class:`~induction_nnsight.ndif.remote.RemoteSettings`
            to run the trace on NDIF; ``"local"`` for a dry run of the remote path.

    Returns:
        ``[n_layers, n_heads]`` scores in ``[0, 1]``.
    """
    return _scan(model, tokens, seq_len, loss=False, scores=True, remote=remote)[1].detach().cpu()


def scan(model, tokens: torch.Tensor, seq_len: int, *, remote: Remote = False) -> ScanResult:
    """Loss by position and induction scores from one forward pass.

    Returns:
        A :class:`ScanResult` with ``loss_by_position [pos - 1]`` and
        ``induction_scores [n_layers, n_heads]``.
    """
    loss, scores = _scan(model, tokens, seq_len, loss=True, scores=True, remote=remote)
    return ScanResult(loss.detach().cpu(), scores.detach().cpu())


def half_losses(loss: torch.Tensor, seq_len: int, bos: bool) -> tuple[float, float]:
    """Mean loss on the first copy and on the repeated copy of the random block.

    Both halves skip the first token of their copy (nothing predicts it), so the
    two means cover the same ``seq_len - 1`` tokens, once unseen and once seen.

    Args:
        loss: ``[pos - 1]`` from :func:`loss_by_position`.
        seq_len: Length of the repeated block.
        bos: Whether the rows start with a BOS token.

    Returns:
        ``(first_half_mean, repeated_half_mean)`` in nats.
    """
    b = int(bos)
    first = loss[b : b + seq_len - 1]
    repeated = loss[b + seq_len : b + 2 * seq_len - 1]
    if seq_len < 2:
        return float("nan"), float("nan")
    return float(first.mean()), float(repeated.mean())


def head_attention(model, tokens: torch.Tensor, layer: int, head: int, *, remote: Remote = False) -> torch.Tensor:
    """One head's attention pattern on one row of tokens.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        tokens: ``[1, pos]`` token ids.
        layer: Layer index.
        head: Query-head index.
        remote: Run the trace on NDIF.

    Returns:
        ``[query, key]`` attention probabilities.
    """
    attention = attention_modules(model)[layer]
    call = attention_call_name(attention)
    eager = model_facts(model).attn_implementation == "eager" and not on_ndif(remote)
    with torch.no_grad(), model.trace(tokens, backend=remote_backend(model, remote)):
        pattern = nnsight.save(attention_pattern(attention, eager, call)[0, head])
    return pattern.detach().cpu()
