"""Score reductions: pure tensor functions from attention patterns or logits.

They run inside a trace (so only their small results are saved, or sent back
from NDIF) and equally on hand-built tensors in tests.

Every pattern score of the heads pass is a mean over queries, so it is also written as a
*partial* reduction of some rows of the pattern, ``[batch, head, chunk, key]`` for the
queries at ``positions``, returning ``(total, count)``: the sum over those queries and how
many counted. Totals and counts add up over chunks of queries, and ``total / count`` is the
score (:func:`finish`), so a long sequence is scored without its whole pattern ever existing.
The whole-pattern functions below are these partials applied to every row at once.
"""

from __future__ import annotations

import torch


def diagonal_score_per_row(pattern: torch.Tensor, offset: int) -> torch.Tensor:
    """Mean attention on one diagonal of the pattern, per row and head.

    On repeated tokens (``[bos] r_1..r_T r_1..r_T``) the diagonal at offset ``1 - T`` is the
    induction stripe (the built-in ``induction`` score; the nnsight tutorial's, TransformerLens'
    and ARENA's score); offset ``-1`` is the previous token.

    Args:
        pattern: ``[batch, head, query, key]`` attention probabilities.
        offset: Diagonal offset, ``<= 0``: query ``i`` attends key ``i + offset``.

    Returns:
        ``[batch, head]``, the mean over every query on that diagonal.

    Example:
        >>> p = torch.zeros(1, 1, 7, 7); p[0, 0, torch.arange(7), torch.arange(7)] = 1
        >>> diagonal_score_per_row(p, 1 - 3).tolist()  # attends to itself only: no induction
        [[0.0]]
    """
    return finish(diagonal_partial(pattern, _all_queries(pattern), offset))


Partial = tuple[torch.Tensor, torch.Tensor]
"""``(total [batch, head], count broadcastable to [batch, head])`` of a partial reduction."""


def _all_queries(pattern: torch.Tensor) -> torch.Tensor:
    """``[query]`` positions of every row of a whole pattern (keys after a cache in front)."""
    n_query, n_key = pattern.shape[-2:]
    return torch.arange(n_query, device=pattern.device) + (n_key - n_query)


def finish(partial: Partial) -> torch.Tensor:
    """``total / count`` as float: the mean over every counted query (NaN where none counted).

    Example:
        >>> finish((torch.tensor([[3.0, 1.0]]), torch.tensor([[4.0]]))).tolist()
        [[0.75, 0.25]]
    """
    total, count = partial
    return (total / count).float()


def add_partials(a: Partial | None, b: Partial) -> Partial:
    """Two chunks' ``(total, count)`` summed (``a`` None: just ``b``)."""
    return b if a is None else (a[0] + b[0], a[1] + b[1])


def diagonal_partial(rows: torch.Tensor, positions: torch.Tensor, offset: int) -> Partial:
    """Attention from each query ``q`` to key ``q + offset``, summed over the queries that have it.

    Args:
        rows: ``[batch, head, chunk, key]`` pattern rows of the queries at ``positions``.
        positions: ``[chunk]`` query positions.
        offset: Diagonal offset, ``<= 0`` (``-1``: the previous token).

    Returns:
        ``(total [batch, head], count [1, 1])``.

    Example:
        >>> rows = torch.tensor([[[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]]])  # queries 1 and 2
        >>> [t.tolist() for t in diagonal_partial(rows, torch.tensor([1, 2]), -1)]
        [[[1.5]], [[2.0]]]
    """
    keys = positions.to(rows.device) + offset  # [chunk]
    valid = (keys >= 0) & (keys < rows.shape[-1])
    index = keys.clamp(0, max(rows.shape[-1] - 1, 0))[None, None, :, None].expand(*rows.shape[:3], 1)
    on = rows.gather(-1, index)[..., 0].float()  # [batch, head, chunk]
    total = (on * valid.float()).sum(-1)
    return total, valid.sum().float().reshape(1, 1)


def masked_partial(rows: torch.Tensor, key_mask: torch.Tensor, query_mask: torch.Tensor | None = None) -> Partial:
    """Attention mass on marked keys, summed over the queries that have any (see :func:`masked_attention_score`).

    Args:
        rows: ``[batch, head, chunk, key]``.
        key_mask: ``[batch, chunk, key]`` bool.
        query_mask: ``[batch, chunk]`` bool, the queries that may count (all when None).

    Returns:
        ``(total [batch, head], count [batch, 1])``.
    """
    return counted_mass(*key_mass(rows, key_mask), query_mask)


def key_mass(rows: torch.Tensor, key_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The query-independent half of :func:`masked_partial`: what several scores of one mask share.

    Returns:
        ``(mass [batch, head, chunk], eligible [batch, chunk])``: each query's attention on the marked
        keys, and whether it has any.
    """
    return (rows.float() * key_mask[:, None].float()).sum(-1), key_mask.any(-1)


def counted_mass(mass: torch.Tensor, eligible: torch.Tensor, query_mask: torch.Tensor | None = None) -> Partial:
    """:func:`masked_partial` from :func:`key_mass`'s ``(mass, eligible)``: summed over the eligible queries
    (and those ``query_mask`` [batch, chunk] keeps)."""
    if query_mask is not None:
        eligible = eligible & query_mask
    counted = eligible[:, None].float()  # [batch, 1, chunk]
    return (mass * counted).sum(-1), counted.sum(-1)


def first_token_partial(rows: torch.Tensor, positions: torch.Tensor) -> Partial:
    """Attention to position 0, summed over the queries after it.

    Returns:
        ``(total [batch, head], count [1, 1])``.
    """
    after = (positions.to(rows.device) >= 1).float()  # [chunk]
    return (rows[..., 0].float() * after).sum(-1), after.sum().reshape(1, 1)


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
    return duplicate_token_rows(tokens, _positions(tokens), tokens.shape[1])


def _positions(tokens: torch.Tensor) -> torch.Tensor:
    return torch.arange(tokens.shape[1], device=tokens.device)


def duplicate_token_rows(tokens: torch.Tensor, positions: torch.Tensor, n_keys: int) -> torch.Tensor:
    """The rows of :func:`duplicate_token_mask` at some queries, over the first ``n_keys`` keys.

    Args:
        tokens: ``[batch, pos]``.
        positions: ``[chunk]`` query positions.
        n_keys: Keys kept.

    Returns:
        ``[batch, chunk, key]`` bool.
    """
    positions = positions.to(tokens.device)
    keys = torch.arange(n_keys, device=tokens.device)
    same = tokens[:, positions, None] == tokens[:, None, :n_keys]
    return same & (keys[None, :] < positions[:, None])


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
    return induction_token_rows(tokens, _positions(tokens), tokens.shape[1])


def induction_token_rows(tokens: torch.Tensor, positions: torch.Tensor, n_keys: int) -> torch.Tensor:
    """The rows of :func:`induction_token_mask` at some queries, over the first ``n_keys`` keys.

    Returns:
        ``[batch, chunk, key]`` bool.
    """
    duplicate = duplicate_token_rows(tokens, positions, max(n_keys - 1, 0))  # [batch, chunk, key - 1]
    return torch.nn.functional.pad(duplicate, (1, 0))


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
    return finish(masked_partial(pattern, key_mask, query_mask))
