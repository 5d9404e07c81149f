"""The training corpus: a small random "language" in which spans repeat, so induction pays.

Each row is ``[bos]`` then segments ``f s g s``: fresh tokens ``f`` (0 to ``max_span // 2`` of
them), a span ``s`` (``min_span`` to ``max_span`` tokens), a fresh gap ``g`` (0 to
``max_span // 4``) and ``s`` again, back to back and cut at the row's length; every length is
drawn uniformly. Fresh tokens follow a fixed skip-bigram chain (each depends on the two before
it, see :func:`skip_bigram_logits`), so a previous-token head pays on its own, as bigram
statistics make it pay in text. A token of a second copy is predictable from its earlier copy,
``len(s) + len(g)`` positions back, and only from it: the distance varies independently of the
position, so only matching content (an induction head, composed with a previous-token head)
predicts it. Everything is a pure function of ``(seed, step)``.
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


def skip_bigram_logits(vocab_size: int, seed: int, first_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The corpus's "language": ``[vocab, vocab - first_id]`` logits of the next fresh token given the
    token two back and given the previous token (summed), a pure function of ``seed``.

    A fresh token depends on the two before it, so a previous-token head pays on its own (it brings
    the token two back to the position that predicts), as bigram statistics make it pay in text;
    an induction head composes with it.
    """
    generator = torch.Generator().manual_seed(seed * 7919 + 17)
    shape = (vocab_size, vocab_size - first_id)
    return 1.5 * torch.randn(shape, generator=generator), 1.5 * torch.randn(shape, generator=generator)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of step ``step``'s batch: a pure function of ``(seed, step)``, so a resumed run
    draws the batches an uninterrupted one would."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def repeated_spans(
    batch: int,
    length: int,
    vocab_size: int,
    *,
    seed: int = 0,
    step: int = 0,
    spans: tuple[int, int] | None = (4, 32),
    first_id: int = 1,
    bos_token_id: int | None = 0,
) -> CorpusBatch:
    """A batch of rows of repeated random spans.

    Args:
        batch: Rows.
        length: Tokens per row, BOS included.
        vocab_size: Tokens are drawn from ``[first_id, vocab_size)``.
        seed: Seed of the corpus.
        step: Which batch (each ``(seed, step)`` gives its own rows).
        spans: ``(shortest, longest)`` span length; None: no span is repeated, every token follows the
            chain (a control corpus in which induction does not pay).
        first_id: Smallest token id drawn (ids below are special, e.g. BOS).
        bos_token_id: First token of every row (none when None).

    Returns:
        :class:`CorpusBatch` with ``[batch, length]`` tokens and copy sources.

    Example:
        >>> rows = repeated_spans(2, 40, 10, spans=(2, 4))
        >>> copied = rows.source >= 0
        >>> bool((rows.tokens[copied] == rows.tokens.gather(1, rows.source.clamp(min=0))[copied]).all())
        True
    """
    min_span, max_span = spans or (1, 1)
    if not 1 <= min_span <= max_span:
        raise InductionError(
            f"span lengths [{min_span}, {max_span}] are empty: pass spans=(shortest, longest), 1 <= shortest <= longest"
        )
    if not 0 <= first_id < vocab_size - 1:
        raise InductionError(f"token range [{first_id}, {vocab_size}) holds under 2 tokens: pass a larger vocabulary")
    if batch < 1 or length < 2:
        raise InductionError(f"a corpus batch needs at least 1 row of 2 tokens, got {batch} x {length}")
    generator = step_generator(seed, step)
    start = int(bos_token_id is not None)
    source = torch.full((batch, length), -1, dtype=torch.long)
    for row in range(batch if spans else 0):
        at = start
        while at < length:
            span = int(torch.randint(min_span, max_span + 1, (1,), generator=generator))
            fresh, gap = (int(v) for v in torch.randint(0, max_span // 2 + 1, (2,), generator=generator))
            gap //= 2
            begin = at + fresh + span + gap  # the copy of tokens [at + fresh, at + fresh + span)
            copy = torch.arange(min(begin, length), min(begin + span, length))
            source[row, copy] = copy - span - gap
            at = begin + span
    first, second = skip_bigram_logits(vocab_size, seed, first_id)
    tokens = torch.full((batch, length), first_id, dtype=torch.long)
    if bos_token_id is not None:
        tokens[:, 0] = bos_token_id
    for t in range(start, length):  # fresh tokens follow the chain; copied ones repeat their source
        logits = second[tokens[:, t - 1]] + (first[tokens[:, t - 2]] if t >= 2 else 0.0)  # [batch, vocab - first_id]
        drawn = first_id + torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
        copied = source[:, t] >= 0
        tokens[:, t] = torch.where(copied, tokens.gather(1, source[:, t : t + 1].clamp(min=0))[:, 0], drawn)
    return CorpusBatch(tokens, source)
