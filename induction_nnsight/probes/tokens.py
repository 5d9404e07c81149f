"""Token generators: repeated random sequences, the classic induction probe."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InductionError
from .checks import check_token_grid

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
    check_token_grid(batch, seq_len, low, high)
    if n_repeats < 2:
        raise InductionError(f"n_repeats must be at least 2, got {n_repeats}")
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


@dataclass
class Probe:
    """Tokens of an induction probe with their ground truth.

    Attributes:
        name: Which generator made it.
        tokens: ``LongTensor[batch, pos]``.
        period: Distance from a token to its next copy when rows are clean
            repeats (the ``seq_len`` of the diagonal-offset score), else None.
        first_start: Position of the first copy's first token (None for free text).
        second_start: Position of the second copy's first token.
    """

    name: str
    tokens: torch.Tensor
    period: int | None = None
    first_start: int | None = None
    second_start: int | None = None

    @property
    def earlier_copy(self) -> torch.Tensor:
        """``[batch, pos]`` position of the latest earlier occurrence of each token, -1 if none."""
        n = self.tokens.shape[1]
        same = (self.tokens[:, :, None] == self.tokens[:, None, :]) & torch.ones(n, n, dtype=torch.bool).tril(-1)
        positions = torch.arange(n).expand_as(same)
        return torch.where(same, positions, torch.full_like(positions, -1)).amax(-1)

    @property
    def expected_next(self) -> torch.Tensor:
        """``[batch, pos]`` the token an induction head predicts next (after the earlier copy), -1 if none."""
        earlier = self.earlier_copy
        after = (earlier + 1).clamp(max=self.tokens.shape[1] - 1)
        return torch.where(earlier >= 0, self.tokens.gather(1, after), torch.full_like(earlier, -1))

    @property
    def repeat_queries(self) -> torch.Tensor:
        """``[batch, pos]`` bool: positions from the second copy on (all True for free text)."""
        mask = torch.ones_like(self.tokens, dtype=torch.bool)
        if self.second_start is not None:
            mask[:, : self.second_start] = False
        return mask


def repeated_probe(batch: int, seq_len: int, *, n_repeats: int = 2, bos_token_id: int | None = None, **kwargs) -> Probe:
    """Random blocks repeated ``n_repeats`` times (see :func:`repeated_tokens` for ``kwargs``)."""
    tokens = repeated_tokens(batch, seq_len, n_repeats=n_repeats, bos_token_id=bos_token_id, **kwargs)
    return repeated_tokens_probe(tokens, seq_len, bos=bos_token_id is not None)


def repeated_tokens_probe(tokens: torch.Tensor, seq_len: int | None, *, bos: bool | None = None) -> Probe:
    """The :class:`Probe` of rows :func:`repeated_tokens` made: ``[bos] r_1..r_T r_1..r_T ...``.

    Args:
        tokens: ``[batch, bos + n_repeats * seq_len]`` token ids.
        seq_len: Length ``T`` of the repeated block (None: unknown, a probe without ground truth).
        bos: Whether the rows start with a BOS token (None: read from a row of ``2 * seq_len`` or
            ``2 * seq_len + 1`` tokens; any other length leaves the copies' starts unknown).

    Returns:
        A ``"repeated"`` probe with ``period = seq_len`` and the copies' starts.

    Example:
        >>> p = repeated_tokens_probe(repeated_tokens(1, 3, bos_token_id=0), 3)
        >>> p.period, p.first_start, p.second_start
        (3, 1, 4)
    """
    if bos is None and seq_len is not None:
        bos = {2 * seq_len: False, 2 * seq_len + 1: True}.get(int(tokens.shape[1]))
    if seq_len is None or bos is None:
        return Probe("repeated", tokens, seq_len)
    start = int(bos)
    return Probe("repeated", tokens, seq_len, start, start + seq_len)


def abab_probe(
    batch: int,
    n_pairs: int,
    *,
    seed: int = 0,
    low: int = DEFAULT_LOW,
    high: int = DEFAULT_HIGH,
    bos_token_id: int | None = None,
) -> Probe:
    """Rows ``[bos] A B A B ...`` with ``n_pairs`` pairs of two random distinct tokens per row."""
    if n_pairs < 2:
        raise InductionError(f"n_pairs must be at least 2, got {n_pairs}")
    pair = repeated_tokens(batch, 2, seed=seed, low=low, high=high, n_repeats=2)[:, :2]
    clash = pair[:, 0] == pair[:, 1]
    pair[clash, 1] = low + (pair[clash, 1] - low + 1) % (high - low)
    tokens = pair.repeat(1, n_pairs)
    if bos_token_id is not None:
        tokens = torch.cat([torch.full((batch, 1), bos_token_id, dtype=torch.long), tokens], 1)
    start = int(bos_token_id is not None)
    return Probe("abab", tokens, 2, start, start + 2)


def separator_probe(batch: int, seq_len: int, separator_id: int, *, bos_token_id: int | None = None, **kwargs) -> Probe:
    """Rows ``[bos] r_1..r_T SEP r_1..r_T``: copying across a separator token."""
    block = repeated_tokens(batch, seq_len, **kwargs)[:, :seq_len]
    sep = torch.full((batch, 1), separator_id, dtype=torch.long)
    rows = [block, sep, block]
    if bos_token_id is not None:
        rows.insert(0, torch.full((batch, 1), bos_token_id, dtype=torch.long))
    start = int(bos_token_id is not None)
    return Probe("separator", torch.cat(rows, 1), seq_len + 1, start, start + seq_len + 1)


def small_vocab_probe(
    batch: int, seq_len: int, vocab_ids: list[int], *, seed: int = 0, bos_token_id: int | None = None
) -> Probe:
    """Repeated blocks drawn from a small vocabulary (e.g. single letters): many accidental repeats.

    Args:
        vocab_ids: The token ids to draw from (at least 2).
    """
    if len(vocab_ids) < 2:
        raise InductionError("a small vocabulary needs at least 2 token ids")
    index = repeated_tokens(batch, seq_len, seed=seed, low=0, high=len(vocab_ids))
    tokens = torch.tensor(vocab_ids)[index]
    if bos_token_id is not None:
        tokens = torch.cat([torch.full((batch, 1), bos_token_id, dtype=torch.long), tokens], 1)
    start = int(bos_token_id is not None)
    return Probe("small_vocab", tokens, seq_len, start, start + seq_len)


def text_probe(ids: list[int], *, n_repeats: int = 2, bos_token_id: int | None = None) -> Probe:
    """A user's own token ids (one row) repeated ``n_repeats`` times."""
    if not ids:
        raise InductionError("the text has no tokens: pass a non-empty prompt")
    row = list(ids) * n_repeats
    if bos_token_id is not None:
        row = [bos_token_id, *row]
    start = int(bos_token_id is not None)
    return Probe("text", torch.tensor([row]), len(ids), start, start + len(ids))
