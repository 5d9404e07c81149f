"""Losses: the one definition of the next-token loss, its mean by position, and the two halves
of a repeated-token row.

On a row ``[bos] r_1..r_T r_1..r_T`` entry ``i`` of a ``[pos - 1]`` loss vector is the loss
of predicting token ``i + 1``. Each half skips the first token of its copy (nothing predicts
it), so the first-half and repeated-half means cover the same ``T - 1`` tokens, once unseen
and once seen.
"""

from __future__ import annotations

import torch
from einops import reduce


def token_losses(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of every row at every position.

    Args:
        logits: ``[batch, pos, vocab]``.
        tokens: ``[batch, pos]`` the input ids.

    Returns:
        ``[batch, pos - 1]``: entry ``[b, i]`` is the loss of predicting token ``i + 1`` of row ``b``.
    """
    # logsumexp over the contiguous vocab axis is ~2.5x faster than cross_entropy on the
    # [batch, vocab, pos] view it needs, and allocates no log-softmax of the logits' size.
    logits = logits[:, :-1].float()
    targets = tokens[:, 1:].to(logits.device)
    return torch.logsumexp(logits, dim=-1) - logits.gather(-1, targets[..., None])[..., 0]


def per_position_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy at each position, averaged over the batch.

    Args:
        logits: ``[batch, pos, vocab]``.
        tokens: ``[batch, pos]`` the input ids.

    Returns:
        ``[pos - 1]``: entry ``i`` is the loss of predicting token ``i + 1``.
    """
    return reduce(token_losses(logits, tokens), "batch pos -> pos", "mean")


def first_half_slice(seq_len: int, bos: bool) -> slice:
    """Indices into a ``[pos - 1]`` loss vector covering the first copy, its first token skipped.

    Example:
        >>> first_half_slice(4, bos=True)
        slice(1, 4, None)
    """
    start = int(bos)
    return slice(start, start + seq_len - 1)


def repeated_half_slice(seq_len: int, bos: bool) -> slice:
    """Indices into a ``[pos - 1]`` loss vector covering the repeated copy, its first token skipped.

    Example:
        >>> repeated_half_slice(4, bos=True)
        slice(5, 8, None)
    """
    start = int(bos) + seq_len
    return slice(start, start + seq_len - 1)


def half_losses(loss: torch.Tensor, seq_len: int, bos: bool) -> tuple[float, float]:
    """Mean loss on the first copy and on the repeated copy of the random block.

    Args:
        loss: ``[pos - 1]`` from :func:`~induction_nnsight.scores.scan.loss_by_position`.
        seq_len: Length of the repeated block.
        bos: Whether the rows start with a BOS token.

    Returns:
        ``(first_half_mean, repeated_half_mean)`` in nats (NaN when ``seq_len < 2``).
    """
    if seq_len < 2:
        return float("nan"), float("nan")
    return float(loss[first_half_slice(seq_len, bos)].mean()), float(loss[repeated_half_slice(seq_len, bos)].mean())
