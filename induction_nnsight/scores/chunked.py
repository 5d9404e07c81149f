"""Pattern scores by chunks of queries: one layer's scores without its whole pattern.

A layer's pattern ``[batch, head, query, key]`` grows with the square of the length
(SmolLM2's 9 heads at 8,192 tokens: 2.4 GB in float32). Every built-in pattern score is a
mean over queries, declared as a ``partial`` reduction (see
:mod:`~induction_nnsight.scores.reductions`), so :func:`layer_pattern_scores` walks the
queries in chunks whose size :func:`~induction_nnsight.models.attention.query_chunk` draws
from an element budget: one ``[batch, head, chunk, key]`` block of rows is made (sliced
from the returned weights under ``eager``, recomputed from the query and key states under
``sdpa``), every score adds its chunk's ``(total, count)``, and the block is dropped. Short
sequences fit in one chunk, which is the whole pattern.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models.attention import LayerAttention, query_chunk
from ..ndif.execution import DEFAULT_PATTERN_BUDGET
from .reductions import add_partials, finish
from .registry import HeadScore, ProbeView

GROUP_SHARE = 8
"""Consecutive layers are reduced together while their patterns hold at most ``budget // GROUP_SHARE``
elements: few enough that holding them (and their stacked copy) adds little to a short pass's peak
memory, many enough that a short pass makes a few sets of reductions rather than one per layer."""


def query_chunks(
    attention: LayerAttention, budget: int, positions: torch.Tensor | None = None, width: int = 0
) -> list[torch.Tensor]:
    """The queries (every one when ``positions`` is None) split into chunks that fit the budget.

    Args:
        width: Elements per batch row, head and query of the largest block made from a chunk,
            when wider than its keys (a logit score's ``d_model``).

    Returns:
        ``[chunk]`` query-index tensors, in order.
    """
    batch, n_heads, n_query, n_key = attention.shape
    if positions is None:
        positions = torch.arange(n_query, device=attention.device)
    return list(positions.split(query_chunk(batch, n_heads, max(n_key, width), budget)))


def _needed(scores: Sequence[HeadScore], view: ProbeView, offset: int) -> torch.Tensor | None:
    """``[query]`` indices some score counts, or None for every query."""
    if any(score.queries is None for score in scores):
        return None
    needed = torch.stack([score.queries(view) for score in scores]).any(0)  # [pos] bool
    return needed[offset:].nonzero().flatten()


def layer_pattern_scores(
    attention: LayerAttention, view: ProbeView, scores: Sequence[HeadScore], budget: int = DEFAULT_PATTERN_BUDGET
) -> dict[str, torch.Tensor]:
    """Every pattern score of one layer, by chunks of queries.

    Scores declared with only a whole-pattern ``reduce`` get the whole pattern (built once
    for all of them).

    Args:
        attention: The layer (from :func:`~induction_nnsight.models.attention.layer_attention`).
        view: The probe's view.
        scores: Pattern scores.
        budget: The most elements of one ``[batch, head, chunk, key]`` block of rows.

    Returns:
        ``name -> [batch, head]``, in the order of ``scores``.
    """
    out: dict[str, torch.Tensor] = {}
    whole = [score for score in scores if score.partial is None]
    if whole:
        pattern = attention.pattern()  # [batch, head, query, key]
        for score in whole:
            out[score.name] = score.reduce(pattern, view)
        del pattern
    chunked = [score for score in scores if score.partial is not None]
    if chunked:
        n_query, n_key = attention.shape[2:]
        offset = n_key - n_query
        sums = dict.fromkeys((score.name for score in chunked), None)
        for positions in query_chunks(attention, budget, _needed(chunked, view, offset)):
            rows = attention.rows(positions)  # [batch, head, chunk, key kept]
            part = view.rows(positions + offset, rows.shape[-1])
            for score in chunked:
                sums[score.name] = add_partials(sums[score.name], score.partial(rows, part))
            del rows, part
        out.update({name: finish(total) for name, total in sums.items()})
    return {score.name: out[score.name] for score in scores}
