"""The training corpus: random tokens in which spans repeat, so predicting by induction pays.

Each row is ``[bos]`` then pairs ``s s`` of a random span ``s`` (uniform tokens from
``[first_id, vocab_size)``, length uniform in ``[min_span, max_span]``), back to back and cut at
the row's length. A token of a second copy is predictable from its earlier copy, ``len(s)``
positions back, and only from it: about half the tokens of a row reward induction, at
distances the repeated-token probe uses too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InductionError


@dataclass
class CorpusBatch:
    """One batch of the corpus.

    Attributes:
        tokens: ``LongTensor[batch, length]``.
        source: ``LongTensor[batch, length]`` position of the earlier token each token copies, -1 for a fresh one.
    """

    tokens: torch.Tensor
    source: torch.Tensor


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of step ``step``'s batch: a pure function of ``(seed, step)``, so a resumed run
    draws the batches an uninterrupted one would."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def repeated_spans(
    batch: int, length: int, vocab_size: int, *, seed: int = 0, step: int = 0, min_span: int = 4,
    max_span: int = 32, first_id: int = 1, bos_token_id: int | None = 0,
) -> CorpusBatch:
    """A batch of rows of repeated random spans.

    Args:
        batch: Rows.
        length: Tokens per row, BOS included.
        vocab_size: Tokens are drawn from ``[first_id, vocab_size)``.
        seed: Seed of the corpus.
        step: Which batch (each ``(seed, step)`` gives its own rows).
        min_span: Shortest span.
        max_span: Longest span.
        first_id: Smallest token id drawn (ids below are special, e.g. BOS).
        bos_token_id: First token of every row (none when None).

    Returns:
        :class:`CorpusBatch` with ``[batch, length]`` tokens and copy sources.

    Example:
        >>> rows = repeated_spans(1, 9, 10, min_span=2, max_span=2)
        >>> t = rows.tokens[0].tolist(); t[1:3] == t[3:5] and t[5:7] == t[7:9], rows.source[0, :5].tolist()
        (True, [-1, -1, -1, 1, 2])
    """
    if not 1 <= min_span <= max_span:
        raise InductionError(f"span lengths [{min_span}, {max_span}] are empty: pass 1 <= min_span <= max_span")
    if not 0 <= first_id < vocab_size - 1:
        raise InductionError(f"token range [{first_id}, {vocab_size}) holds under 2 tokens: pass a larger vocabulary")
    if batch < 1 or length < 2:
        raise InductionError(f"a corpus batch needs at least 1 row of 2 tokens, got {batch} x {length}")
    generator = step_generator(seed, step)
    start = int(bos_token_id is not None)
    tokens = torch.randint(first_id, vocab_size, (batch, length), generator=generator)
    source = torch.full((batch, length), -1, dtype=torch.long)
    for row in range(batch):
        at = start
        while at < length:
            span = int(torch.randint(min_span, max_span + 1, (1,), generator=generator))
            copy = torch.arange(min(at + span, length), min(at + 2 * span, length))
            tokens[row, copy] = tokens[row, copy - span]
            source[row, copy] = copy - span
            at += 2 * span
    if bos_token_id is not None:
        tokens[:, 0] = bos_token_id
    return CorpusBatch(tokens, source)
