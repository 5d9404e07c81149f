"""Token generators: repeated random sequences, the classic induction probe."""

from __future__ import annotations

import torch

from .errors import InductionError

DEFAULT_LOW = 1000
DEFAULT_HIGH = 10000


def repeated_tokens(
    batch: int,
    seq_len: int,
    *,
    seed: int = 0,
    low: int = DEFAULT_LOW,
    high: int = DEFAULT_HIGH,
    bos_token_id: int | None = None,
    vocab_size: int | None = None,
    n_repeats: int = 2,
) -> torch.Tensor:
    """Random token rows, each repeated ``n_repeats`` times, optionally after a BOS.

    Row ``b`` is ``[bos] r_1 .. r_T r_1 .. r_T`` with ``r`` drawn uniformly from
    ``[low, high)`` by a ``torch.Generator`` seeded with ``seed``, so the same
    arguments always give the same tokens.

    Args:
        batch: Number of rows (>= 1).
        seq_len: Length ``T`` of the random block (>= 1).
        seed: Seed of the generator.
        low: Smallest token id drawn (inclusive).
        high: Largest token id drawn (exclusive).
        bos_token_id: Prepended to every row when given.
        vocab_size: When given, ``[low, high)`` must lie inside ``[0, vocab_size)``.
        n_repeats: How many times the random block appears in a row (>= 2).

    Returns:
        ``LongTensor[batch, bos + n_repeats * seq_len]``.

    Raises:
        InductionError: On a non-positive size or an id range outside the vocabulary.

    Example:
        >>> repeated_tokens(1, 3, seed=0, low=10, high=20, bos_token_id=1).tolist()
        [[1, 14, 19, 13, 14, 19, 13]]
    """
    if batch < 1:
        raise InductionError(f"batch must be at least 1, got {batch}: pass --batch 1 or more")
    if seq_len < 1:
        raise InductionError(f"seq_len must be at least 1, got {seq_len}: pass --seq-len 1 or more")
    if n_repeats < 2:
        raise InductionError(f"n_repeats must be at least 2, got {n_repeats}")
    if not 0 <= low < high:
        raise InductionError(
            f"token range [{low}, {high}) is empty or negative: pass --low and --high with 0 <= low < high"
        )
    if vocab_size is not None and high > vocab_size:
        raise InductionError(
            f"token range [{low}, {high}) exceeds the vocabulary of {vocab_size} tokens: "
            f"pass --high {vocab_size} or less"
        )
    generator = torch.Generator().manual_seed(seed)
    block = torch.randint(low, high, (batch, seq_len), generator=generator)
    rows = [block] * n_repeats
    if bos_token_id is not None:
        rows.insert(0, torch.full((batch, 1), bos_token_id, dtype=torch.long))
    return torch.cat(rows, dim=1)
