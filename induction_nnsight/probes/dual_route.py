"""Prompts of the dual-route probe (Feucht, Todd, Wallace, Bau 2025): multi-token entities copied from
earlier in the context, and random-token stand-ins for them.

Every row of a batch has the same length whatever its entity's length (2 to ``MAX_ENTITY`` tokens):
random filler tokens take the place of the missing entity tokens, in front. With ``r``, ``r'`` random
blocks, ``c`` the entity, ``f`` the filler and ``/`` the separator (the newline token):

- attention rows: ``[BOS] f r1 c r2 / r1``; from the last position (the end of the repeated ``r1``) a
  token induction head attends to ``c[0]``, the token after the earlier copy, and a concept induction
  head to ``c[-1]``, the end of the earlier entity;
- copying rows: clean ``[BOS] f r c / r c[0]``, corrupt ``[BOS] r' / r c[0]`` (the entity was never
  seen); a head's output at the second-to-last position (the end of the repeated ``r``) is patched from
  clean into corrupt, and the model's probability of ``c[1]`` at the last position (concept copying,
  real entities) or of ``c[0]`` at the second-to-last (token copying, random-token entities) measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InductionError

__all__ = ["MAX_ENTITY", "CopyingPrompts", "attention_prompts", "copying_prompts", "random_entities"]

MAX_ENTITY = 5
"""Longest entity, in tokens (rows are padded in front to this)."""


def random_entities(lengths: list[int], *, seed: int, low: int, high: int) -> list[tuple[int, ...]]:
    """Random-token stand-ins for entities, one per length (the token-induction control).

    Returns:
        One tuple of ids per entry of ``lengths``, drawn from ``[low, high)``.
    """
    generator = torch.Generator().manual_seed(seed)
    return [tuple(torch.randint(low, high, (n,), generator=generator).tolist()) for n in lengths]


def _check(entities: list[tuple[int, ...]], n_random: int) -> None:
    if not entities:
        raise InductionError("no entity to build prompts from: pass at least one 2-5-token entity")
    bad = [e for e in entities if not 2 <= len(e) <= MAX_ENTITY]
    if bad:
        raise InductionError(f"entity {bad[0]} has {len(bad[0])} tokens: entities need 2 to {MAX_ENTITY}")
    if n_random < 1:
        raise InductionError(f"the random block needs at least 1 token, got {n_random}")


def attention_prompts(
    entities: list[tuple[int, ...]],
    *,
    n_random: int,
    n_after: int,
    seed: int,
    low: int,
    high: int,
    separator: int,
    bos: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows ``[BOS] f r1 c r2 / r1``, one per entity, and where each entity's first and last tokens are.

    Args:
        entities: Token ids of each entity (2 to :data:`MAX_ENTITY` of them).
        n_random: Length of ``r1``.
        n_after: Length of ``r2``, the random tokens between the entity and the separator.
        seed: Seed of the random tokens.
        low: Smallest random token id.
        high: Random token ids lie below this.
        separator: The separator's id (the newline token).
        bos: Prepended when given.

    Returns:
        ``(tokens [batch, pos], first [batch], last [batch])``: the rows, and the positions of each
        entity's first token (the token after the earlier ``r1``) and last token.
    """
    _check(entities, n_random)
    generator = torch.Generator().manual_seed(seed)
    head = [] if bos is None else [bos]
    rows, first, last = [], [], []
    for entity in entities:
        filler, r1, r2 = (
            torch.randint(low, high, (n,), generator=generator).tolist()
            for n in (MAX_ENTITY - len(entity), n_random, n_after)
        )
        row = head + filler + r1 + list(entity) + r2 + [separator] + r1
        start = len(head) + len(filler) + n_random
        rows.append(row)
        first.append(start)
        last.append(start + len(entity) - 1)
    return torch.tensor(rows), torch.tensor(first), torch.tensor(last)


@dataclass(frozen=True)
class CopyingPrompts:
    """Clean and corrupt rows of the causal copying score, and the tokens it measures.

    Attributes:
        clean: ``[batch, pos]`` ``[BOS] f r c / r c[0]``.
        corrupt: ``[batch, pos]`` ``[BOS] r' / r c[0]``.
        entities: ``[batch, 2]`` each entity's first two tokens ``c[0], c[1]``.
    """

    clean: torch.Tensor
    corrupt: torch.Tensor
    entities: torch.Tensor


def copying_prompts(
    entities: list[tuple[int, ...]], *, n_random: int, seed: int, low: int, high: int, separator: int, bos: int | None
) -> CopyingPrompts:
    """Clean and corrupt rows for each entity (see the module docstring).

    Args:
        entities: Token ids of each entity (2 to :data:`MAX_ENTITY` of them).
        n_random: Length of ``r``.
        seed: Seed of the random tokens.
        low: Smallest random token id.
        high: Random token ids lie below this.
        separator: The separator's id.
        bos: Prepended when given.
    """
    _check(entities, n_random)
    generator = torch.Generator().manual_seed(seed)
    head = [] if bos is None else [bos]
    clean, corrupt = [], []
    for entity in entities:
        filler = torch.randint(low, high, (MAX_ENTITY - len(entity),), generator=generator).tolist()
        r = torch.randint(low, high, (n_random,), generator=generator).tolist()
        other = torch.randint(low, high, (MAX_ENTITY + n_random,), generator=generator).tolist()
        tail = [separator] + r + [entity[0]]
        clean.append(head + filler + r + list(entity) + tail)
        corrupt.append(head + other + tail)
    pairs = torch.tensor([e[:2] for e in entities])
    return CopyingPrompts(torch.tensor(clean), torch.tensor(corrupt), pairs)
