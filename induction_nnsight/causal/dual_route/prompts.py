"""Prompts of the dual-route probe, built as Feucht, Todd, Wallace and Bau's code builds them
(``sfeucht/dual-route-induction``: ``attention_scores.py``, ``causal_scores.py``, ``vocablist_ablation.py``).

With ``r`` random blocks, ``c`` a span of 2 to :data:`MAX_ENTITY` tokens (a real entity, or random
tokens standing in for one) and ``/`` the newline, every row has :data:`SPAN` tokens before the newline:

- attention rows ``[BOS] r1 c r2 / r1``: the span starts at ``p = |r1|``, drawn from
  ``range(FIRST_START, SPAN - |c| + 1)``, and ``|r2| = SPAN - p - |c|``; from the last position (the end
  of the repeated ``r1``) a token induction head attends to ``c[0]`` and a concept induction head to
  ``c[-1]``;
- copying rows: clean ``[BOS] r c / r c[0]`` with ``|r| = SPAN - |c|``, corrupt ``[BOS] r' / r c[0]``
  with ``|r'| = SPAN`` (the span never seen);
- list rows (the dissociation's word-list copying): ``[BOS] w1 / w2 / ... wn / / w1 / ... w(n-1) /``,
  whose next token is ``wn[0]``.

Rows of one kind differ in length (the span's start and length vary), so each builder returns its rows
grouped by length (:class:`AttentionPrompts`, :class:`CopyingPrompts`, each holding the original row
numbers in ``index``); a batch of one length runs in one trace.

Random tokens (:class:`RandomTokens`) are, where a text is given, shuffled chunks of it (the paper's
``pile_chunk``: ``n`` consecutive tokens from a random offset, shuffled), else uniform ids in
``[low, high)``. Every draw comes from one ``torch.Generator`` seeded with the builder's ``seed``, in
row order: for an attention row, ``p`` (``torch.randint(FIRST_START, SPAN - |c| + 1, (1,))``), then
``r1`` and ``r2``; for a copying row, ``r`` then ``r'``; for a list row, its words then the order of the
others. A block of ``n`` uniform ids is ``torch.randint(low, high, (n,))``; a block of text is
``ids[o : o + n][torch.randperm(n)]`` with ``o = torch.randint(0, len(ids) - n + 1, (1,))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ...errors import InductionError

__all__ = [
    "FIRST_START",
    "MAX_ENTITY",
    "SPAN",
    "AttentionPrompts",
    "CopyingPrompts",
    "ListPrompts",
    "RandomTokens",
    "attention_prompts",
    "copying_prompts",
    "list_prompts",
    "random_spans",
]

SPAN = 30
"""Tokens before the newline in every attention and copying row (the paper's ``seq_len``)."""
FIRST_START = 15
"""The earliest start of the span in an attention row (the paper's ``range(15, 30 - |c| + 1)``)."""
MAX_ENTITY = 5
"""Longest span, in tokens."""
MIN_TEXT = 64
"""Fewest distinct usable tokens a text must give for :class:`RandomTokens` to shuffle it."""


@dataclass(frozen=True)
class RandomTokens:
    """Where random tokens come from.

    Attributes:
        ids: ``[n]`` a tokenized text whose chunks are shuffled, or None for uniform ids.
        low: Smallest uniform id.
        high: Uniform ids lie below this.
        source: What the tokens are, as results name it.
    """

    ids: torch.Tensor | None
    low: int
    high: int
    source: str

    def block(self, n: int, generator: torch.Generator) -> list[int]:
        """``n`` random tokens (see the module docstring for the draws)."""
        if self.ids is None:
            return torch.randint(self.low, self.high, (n,), generator=generator).tolist()
        if len(self.ids) < n:
            raise InductionError(f"the text gives {len(self.ids)} usable tokens: a block of {n} needs more")
        offset = int(torch.randint(0, len(self.ids) - n + 1, (1,), generator=generator))
        return self.ids[offset : offset + n][torch.randperm(n, generator=generator)].tolist()

    @classmethod
    def from_text(
        cls, ids: Sequence[int], *, low: int, high: int, vocab_size: int, source: str, exclude: Sequence[int] = ()
    ) -> RandomTokens:
        """Shuffled chunks of a tokenized text, the ``exclude`` ids (the newline, BOS, unknown) and ids outside
        the vocabulary dropped; uniform ids in ``[low, high)`` when fewer than :data:`MIN_TEXT` distinct ids
        remain (a tokenizer that cannot read the text)."""
        drop = set(exclude)
        kept = [i for i in ids if 0 <= i < vocab_size and i not in drop]
        if len(set(kept)) < MIN_TEXT:
            return cls(None, low, high, f"uniform ids in [{low}, {high}) ({source} gives {len(kept)} usable tokens)")
        return cls(torch.tensor(kept), low, high, f"shuffled chunks of {source}")

    @classmethod
    def uniform(cls, low: int, high: int) -> RandomTokens:
        """Uniform ids in ``[low, high)``."""
        return cls(None, low, high, f"uniform ids in [{low}, {high})")


def _check(spans: Sequence[Sequence[int]]) -> None:
    if not spans:
        raise InductionError(f"no span to build prompts from: pass at least one 2-{MAX_ENTITY}-token entity")
    bad = [e for e in spans if not 2 <= len(e) <= MAX_ENTITY]
    if bad:
        raise InductionError(f"entity {tuple(bad[0])} has {len(bad[0])} tokens: entities need 2 to {MAX_ENTITY}")


def random_spans(lengths: Sequence[int], tokens: RandomTokens, *, seed: int) -> list[tuple[int, ...]]:
    """Random-token stand-ins for entities, one per length (the token-induction spans).

    Returns:
        One tuple of ids per entry of ``lengths``, drawn in order from one generator seeded with ``seed``.
    """
    generator = torch.Generator().manual_seed(seed)
    return [tuple(tokens.block(n, generator)) for n in lengths]


def _groups(lengths: list[int]) -> list[torch.Tensor]:
    """Row numbers grouped by row length, in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for row, n in enumerate(lengths):
        groups.setdefault(n, []).append(row)
    return [torch.tensor(rows) for rows in groups.values()]


@dataclass(frozen=True)
class AttentionPrompts:
    """Attention rows of one length.

    Attributes:
        tokens: ``[batch, pos]`` ``[BOS] r1 c r2 / r1``.
        first: ``[batch]`` the position of each span's first token ``c[0]``.
        last: ``[batch]`` the position of its last token ``c[-1]``.
        index: ``[batch]`` each row's number among all rows built.
    """

    tokens: torch.Tensor
    first: torch.Tensor
    last: torch.Tensor
    index: torch.Tensor


def attention_prompts(
    spans: Sequence[Sequence[int]], tokens: RandomTokens, *, seed: int, separator: int, bos: int | None
) -> list[AttentionPrompts]:
    """Rows ``[BOS] r1 c r2 / r1``, one per span, grouped by length (see the module docstring).

    Args:
        spans: Token ids of each span (2 to :data:`MAX_ENTITY` of them).
        tokens: Where the random tokens come from.
        seed: Seed of every draw.
        separator: The newline's id.
        bos: Prepended when given.

    Returns:
        One :class:`AttentionPrompts` per row length.
    """
    _check(spans)
    generator = torch.Generator().manual_seed(seed)
    head = [] if bos is None else [bos]
    rows, first, last = [], [], []
    for span in spans:
        start = int(torch.randint(FIRST_START, SPAN - len(span) + 1, (1,), generator=generator))
        r1 = tokens.block(start, generator)
        r2 = tokens.block(SPAN - start - len(span), generator)
        rows.append(head + r1 + list(span) + r2 + [separator] + r1)
        first.append(len(head) + start)
        last.append(len(head) + start + len(span) - 1)
    return [
        AttentionPrompts(
            torch.tensor([rows[i] for i in group]),
            torch.tensor([first[i] for i in group]),
            torch.tensor([last[i] for i in group]),
            group,
        )
        for group in _groups([len(r) for r in rows])
    ]


@dataclass(frozen=True)
class CopyingPrompts:
    """Clean and corrupt copying rows of one length, and the tokens the copying scores read.

    Attributes:
        clean: ``[batch, pos]`` ``[BOS] r c / r c[0]``.
        corrupt: ``[batch, pos]`` ``[BOS] r' / r c[0]``.
        entities: ``[batch, 2]`` each span's first two tokens ``c[0], c[1]``.
        index: ``[batch]`` each row's number among all rows built.
    """

    clean: torch.Tensor
    corrupt: torch.Tensor
    entities: torch.Tensor
    index: torch.Tensor


def copying_prompts(
    spans: Sequence[Sequence[int]], tokens: RandomTokens, *, seed: int, separator: int, bos: int | None
) -> list[CopyingPrompts]:
    """Clean and corrupt rows for each span, grouped by length (see the module docstring).

    Args:
        spans: Token ids of each span (2 to :data:`MAX_ENTITY` of them).
        tokens: Where the random tokens come from.
        seed: Seed of every draw.
        separator: The newline's id.
        bos: Prepended when given.

    Returns:
        One :class:`CopyingPrompts` per row length.
    """
    _check(spans)
    generator = torch.Generator().manual_seed(seed)
    head = [] if bos is None else [bos]
    clean, corrupt = [], []
    for span in spans:
        r = tokens.block(SPAN - len(span), generator)
        other = tokens.block(SPAN, generator)
        tail = [separator] + r + [span[0]]
        clean.append(head + r + list(span) + tail)
        corrupt.append(head + other + tail)
    return [
        CopyingPrompts(
            torch.tensor([clean[i] for i in group]),
            torch.tensor([corrupt[i] for i in group]),
            torch.tensor([list(spans[i][:2]) for i in group]),
            group,
        )
        for group in _groups([len(r) for r in clean])
    ]


@dataclass(frozen=True)
class ListPrompts:
    """Word-list copying rows of one length.

    Attributes:
        tokens: ``[batch, pos]`` ``[BOS] w1 / ... wn / / w1 / ... w(n-1) /``.
        answer: ``[batch]`` the next token, ``wn[0]``.
        index: ``[batch]`` each row's number among all rows built.
    """

    tokens: torch.Tensor
    answer: torch.Tensor
    index: torch.Tensor


def list_prompts(words: Sequence[Sequence[Sequence[int]]], *, separator: int, bos: int | None) -> list[ListPrompts]:
    """Rows that list words, then list them again up to the last word's first token.

    Args:
        words: For each row, its words (token ids each), the last one the copied word.
        separator: The newline's id, after each word (twice between the two lists).
        bos: Prepended when given.

    Returns:
        One :class:`ListPrompts` per row length.
    """
    head = [] if bos is None else [bos]
    rows, answers = [], []
    for row_words in words:
        listed = [t for word in row_words for t in (*word, separator)]
        again = [t for word in row_words[:-1] for t in (*word, separator)]
        rows.append(head + listed + [separator] + again)
        answers.append(row_words[-1][0])
    return [
        ListPrompts(torch.tensor([rows[i] for i in group]), torch.tensor([answers[i] for i in group]), group)
        for group in _groups([len(r) for r in rows])
    ]
