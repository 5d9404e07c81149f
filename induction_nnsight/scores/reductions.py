"""Score reductions: pure tensor functions from attention patterns or logits.

They run inside a trace (so only their small results are saved, or sent back
from NDIF) and equally on hand-built tensors in tests.
"""

from __future__ import annotations

import torch
from einops import reduce


def diagonal_score(pattern: torch.Tensor, offset: int) -> torch.Tensor:
    """Mean attention on one diagonal of the pattern, per head.

    Args:
        pattern: ``[batch, head, query, key]`` attention probabilities.
        offset: Diagonal offset: query ``i`` attends key ``i + offset``
            (``-1`` is the previous token).

    Returns:
        ``[head]``, the mean over batch and every query on that diagonal.
    """
    stripe = pattern.diagonal(offset, dim1=-2, dim2=-1)  # [batch, head, n_on_diagonal]
    return reduce(stripe.float(), "batch head pos -> head", "mean")


def induction_stripe_score(pattern: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Diagonal-offset induction score of each head on repeated tokens.

    On a row ``[bos] r_1..r_T r_1..r_T`` a perfect induction head attends from
    each token of the second copy to the token after its first copy: key
    ``i - T + 1`` for query ``i``. The score is the mean attention on that
    diagonal (offset ``1 - T``), as in the nnsight tutorial, TransformerLens and
    ARENA, so its numbers are comparable with theirs.

    Args:
        pattern: ``[batch, head, query, key]`` on repeated tokens.
        seq_len: Length ``T`` of the repeated block.

    Returns:
        ``[head]`` scores in ``[0, 1]``.

    Example:
        >>> p = torch.zeros(1, 1, 7, 7); p[0, 0, torch.arange(7), torch.arange(7)] = 1
        >>> induction_stripe_score(p, seq_len=3).tolist()  # attends to itself only
        [0.0]
    """
    return diagonal_score(pattern, 1 - seq_len)


def diagonal_score_per_row(pattern: torch.Tensor, offset: int) -> torch.Tensor:
    """:func:`diagonal_score` kept per batch row.

    Returns:
        ``[batch, head]``.
    """
    stripe = pattern.diagonal(offset, dim1=-2, dim2=-1)  # [batch, head, n_on_diagonal]
    return reduce(stripe.float(), "batch head pos -> batch head", "mean")


def duplicate_token_mask(tokens: torch.Tensor) -> torch.Tensor:
    """Keys holding the same token as the query, earlier in the row.

    Args:
        tokens: ``[batch, pos]``.

    Returns:
        ``[batch, query, key]`` bool.

    Example:
        >>> duplicate_token_mask(torch.tensor([[5, 6, 5]]))[0].int().tolist()
        [[0, 0, 0], [0, 0, 0], [1, 0, 0]]
    """
    same = tokens[:, :, None] == tokens[:, None, :]
    earlier = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool, device=tokens.device).tril(-1)
    return same & earlier


def induction_token_mask(tokens: torch.Tensor) -> torch.Tensor:
    """Keys right after an earlier copy of the query's token: where an induction head looks.

    Key ``k`` is marked for query ``q`` when ``tokens[k - 1] == tokens[q]`` and
    ``k - 1 < q``. Unlike the diagonal-offset score this needs no clean repeat.

    Args:
        tokens: ``[batch, pos]``.

    Returns:
        ``[batch, query, key]`` bool.

    Example:
        >>> induction_token_mask(torch.tensor([[5, 6, 5]]))[0].int().tolist()
        [[0, 0, 0], [0, 0, 0], [0, 1, 0]]
    """
    duplicate = duplicate_token_mask(tokens)  # [batch, q, k - 1]
    return torch.nn.functional.pad(duplicate, (1, 0))[..., :-1]


def masked_attention_score(
    pattern: torch.Tensor, key_mask: torch.Tensor, query_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Attention mass each head puts on marked keys, averaged over the queries that have any.

    Args:
        pattern: ``[batch, head, query, key]``.
        key_mask: ``[batch, query, key]`` bool, the keys that count for each query.
        query_mask: ``[batch, query]`` bool, the queries to average over (all when None);
            queries with no marked key are left out either way.

    Returns:
        ``[batch, head]``; a row with no eligible query gives NaN.
    """
    mass = (pattern.float() * key_mask[:, None].float()).sum(-1)  # [batch, head, query]
    eligible = key_mask.any(-1)  # [batch, query]
    if query_mask is not None:
        eligible = eligible & query_mask
    weights = eligible[:, None].float()  # [batch, 1, query]
    return (mass * weights).sum(-1) / weights.sum(-1)


def first_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention to position 0 (BOS, an attention sink), over queries after it.

    Returns:
        ``[batch, head]``.
    """
    return reduce(pattern[..., 1:, 0].float(), "batch head query -> batch head", "mean")
