"""Pattern scores by chunks of queries: one layer's scores without its whole pattern.

A layer's pattern ``[batch, head, query, key]`` grows with the square of the length
(SmolLM2's 9 heads at 8,192 tokens: 2.4 GB in float32). Every built-in pattern score is a
mean over queries, declared as a ``partial`` reduction (see
:mod:`~induction_nnsight.scores.reductions`), so :func:`layer_pattern_scores` walks the
queries in chunks whose size :func:`~induction_nnsight.models.attention.query_chunk` draws
from an element budget: one ``[batch, head, chunk, key]`` block of rows is made (sliced
from the probabilities the attention call returns under ``eager``, recomputed from the query and key states under
``sdpa``), every score adds its chunk's ``(total, count)``, and the block is dropped. Short
sequences fit in one chunk, which is the whole pattern.

The budget (:data:`~induction_nnsight.ndif.execution.DEFAULT_PATTERN_BUDGET`, 16 MiB of float32:
56 queries of SmolLM2 at 8,192 tokens) keeps a block in the processor's cache between the
``Q K^T`` product, the softmax and the reductions: on a 2-core EPYC (32 MiB L3) one layer's
second-half rows at 8,191 tokens took 0.40 s with 16 MiB blocks and 1.13 s with 64 MiB blocks,
which spill to memory (docs/benchmarks.md). The heads pass stacks short layers into groups of at
most an eighth of it (see :data:`GROUP_SHARE`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from ..models.attention import LayerAttention, can_stack, query_chunk, stack_layers
from ..ndif.execution import DEFAULT_PATTERN_BUDGET
from .declaration import HeadScore, LogitInputs, call_reduction
from .reductions import add_partials, finish
from .views import ProbeView

__all__ = [
    "DEFAULT_PATTERN_BUDGET",
    "GROUP_SHARE",
    "GroupScores",
    "LayerInput",
    "PassPlan",
    "can_join",
    "collect",
    "layer_pattern_scores",
    "query_chunks",
    "reduce_group",
]

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
    if positions is None:  # on the CPU: a chunk's last query sets its key length, read as a number (not on meta)
        positions = torch.arange(n_query)
    return list(positions.split(query_chunk(batch, n_heads, max(n_key, width), budget)))


def _needed(scores: Sequence[HeadScore], view: ProbeView, offset: int) -> torch.Tensor | None:
    """``[query]`` indices some score counts, or None for every query."""
    if any(score.queries is None for score in scores):
        return None
    needed = torch.stack([score.queries(view) for score in scores]).any(0)  # [pos] bool
    return needed[offset:].nonzero().flatten()


def _chunk(where: str, positions: torch.Tensor) -> str:
    """``"layer 1, queries 0:7"``: a chunk of queries, named in errors."""
    return f"{where}, queries {int(positions[0])}:{int(positions[-1]) + 1}"


def layer_pattern_scores(
    attention: LayerAttention,
    view: ProbeView,
    scores: Sequence[HeadScore],
    budget: int = DEFAULT_PATTERN_BUDGET,
    where: str = "a layer",
) -> dict[str, torch.Tensor]:
    """Every pattern score of one layer, by chunks of queries.

    Scores declared with only a whole-pattern ``reduce`` get the whole pattern (built once
    for all of them).

    Args:
        attention: The layer (from :func:`~induction_nnsight.models.attention.layer_attention`).
        view: The probe's view.
        scores: Pattern scores.
        budget: The most elements of one ``[batch, head, chunk, key]`` block of rows.
        where: Which layer(s) these are, for the error a failing reduction raises (``"layers 0-1"``).

    Returns:
        ``name -> [batch, head]``, in the order of ``scores``.

    Raises:
        ScoreError: When a score's reduction raises, naming it, ``where``, the query chunk and the shapes.
    """
    out: dict[str, torch.Tensor] = {}
    whole = [score for score in scores if score.partial is None]
    if whole:
        pattern = attention.pattern()  # [batch, head, query, key]
        for score in whole:
            out[score.name] = call_reduction(score, score.reduce, f"{where}, every query", pattern=pattern, view=view)
        del pattern
    chunked = [score for score in scores if score.partial is not None]
    if chunked:
        n_query, n_key = attention.shape[2:]
        offset = n_key - n_query
        sums = dict.fromkeys((score.name for score in chunked), None)
        needed = _needed(chunked, view, offset)
        chunks = query_chunks(attention, budget, needed)
        # every query in one chunk: the returned probabilities themselves, not a copy of them
        contiguous = attention.probs is None or attention.probs.is_contiguous()
        every_query = needed is None and len(chunks) == 1 and contiguous
        for positions in chunks:
            rows = attention.pattern() if every_query else attention.rows(positions)  # [batch, head, chunk, key kept]
            part = view.rows(positions + offset, rows.shape[-1])
            for score in chunked:
                partial = call_reduction(
                    score, score.partial, lambda p=positions: _chunk(where, p), rows=rows, view=part
                )
                sums[score.name] = add_partials(sums[score.name], partial)
            del rows, part
        out.update({name: finish(total) for name, total in sums.items()})
    return {score.name: out[score.name] for score in scores}


@dataclass(frozen=True)
class LayerInput:
    """One layer as the heads pass reduces it (made inside the trace).

    Attributes:
        index: The layer.
        attention: Its rows of ``[batch, head, query, key]`` on demand.
        head_input: ``[batch, q, head * d_head]`` the output projection's input at the logit queries
            (None without logit scores, or when none reads it).
        w_out: ``[d_model, head * d_head]`` the output projection (likewise).
    """

    index: int
    attention: LayerAttention
    head_input: torch.Tensor | None = None
    w_out: torch.Tensor | None = None


@dataclass(frozen=True)
class PassPlan:
    """What every group of layers of a heads pass is reduced with, settled before the first layer.

    Attributes:
        view: The probe's view.
        pattern: The pattern scores.
        logits: The logit scores.
        budget: The most elements of one block of attention rows.
        n_heads: Query heads per layer.
        logit_queries: ``[q]`` positions where some logit score counts (None without logit scores).
        shared: The layer-independent logit inputs (tokens, norm, unembedding), None without logit scores.
        at_queries: ``(shape, width, chunk index) -> {name: value}``: what logit scores make once for a
            chunk of queries in every layer (:meth:`~induction_nnsight.scores.declaration.LogitInputs.once`
            with ``every_layer``), filled as the pass goes.
        on_meta: ``group shape -> GroupScores``: on the meta device (a plan) the first group of each
            shape is reduced and the rest take its results' shapes (see :func:`reduce_group`).
    """

    view: ProbeView
    pattern: tuple[HeadScore, ...]
    logits: tuple[HeadScore, ...]
    budget: int
    n_heads: int
    logit_queries: torch.Tensor | None
    shared: LogitInputs | None
    at_queries: dict = field(default_factory=dict)
    on_meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GroupScores:
    """One group's results: ``name -> [batch, head]`` per layer (pattern scores) and ``name -> [batch,
    head, q]`` per layer (logit scores, at the logit queries)."""

    rows: dict[str, list[torch.Tensor]]
    logits: dict[str, list[torch.Tensor]]


def can_join(group: list[LayerInput], attention: LayerAttention, budget: int) -> bool:
    """Whether a layer joins a group of consecutive layers within the budget."""
    held = sum(_numel(layer.attention) for layer in group)
    return can_stack(group[0].attention, attention) and held + _numel(attention) <= budget


def _numel(attention: LayerAttention) -> int:
    """Elements of a layer's whole pattern ``[batch, head, query, key]``."""
    return math.prod(attention.shape)


def reduce_group(group: list[LayerInput], plan: PassPlan) -> GroupScores:
    """Reduce consecutive layers together: pattern scores over their stacked heads (one set of tensor
    operations for the group), then the logit scores layer by layer from the same rows.

    On the meta device (a plan: shapes, no numbers) a group of the same shapes as one already reduced
    gives fresh meta tensors of that group's result shapes instead: the reductions run no module, so
    what a plan measures (passes, saved shapes) is the same, and a 126-layer plan traces one group's
    few thousand operations rather than every layer's.

    Returns:
        The group's :class:`GroupScores`, one entry per layer of ``group`` under each score.

    Raises:
        ScoreError: When a score's reduction raises (naming it, the layer(s), the chunk and the shapes).
    """
    shape = _meta_shape(group)
    if shape is not None and shape in plan.on_meta:
        return _like(plan.on_meta[shape])
    reduced = _reduce_group(group, plan)
    if shape is not None:
        plan.on_meta[shape] = reduced
    return reduced


def _meta_shape(group: list[LayerInput]) -> tuple | None:
    """What a group's reduction depends on when all its tensors are on the meta device, else None."""
    key = []
    for layer in group:
        for value in (*vars(layer.attention).values(), layer.head_input, layer.w_out):
            if isinstance(value, torch.Tensor):
                if not value.is_meta:
                    return None
                key.append((tuple(value.shape), value.dtype))
            else:
                key.append(value)
    return tuple(key)


def _like(reduced: GroupScores) -> GroupScores:
    """Fresh meta tensors of ``reduced``'s shapes and dtypes."""
    return GroupScores(
        {name: [torch.empty_like(v) for v in values] for name, values in reduced.rows.items()},
        {name: [torch.empty_like(v) for v in values] for name, values in reduced.logits.items()},
    )


def _reduce_group(group: list[LayerInput], plan: PassPlan) -> GroupScores:
    """:func:`reduce_group`'s work: the group reduced."""
    stacked = stack_layers([layer.attention for layer in group])
    if plan.logits and _numel(stacked) <= plan.budget:  # one block, made once, read by both kinds of score
        stacked = LayerAttention(probs=stacked.pattern())
    first, last = group[0].index, group[-1].index
    where = f"layer {first}" if first == last else f"layers {first}-{last} (heads stacked)"
    rows = {
        name: list(value.unflatten(1, (len(group), plan.n_heads)).unbind(1))  # [batch, head] per layer
        for name, value in layer_pattern_scores(stacked, plan.view, plan.pattern, plan.budget, where).items()
    }
    logits = {score.name: [] for score in plan.logits}
    for i, layer in enumerate(group if plan.logits else []):
        attention = layer.attention
        if stacked.probs is not None:  # the probabilities, already made
            attention = LayerAttention(probs=stacked.probs[:, i * plan.n_heads : (i + 1) * plan.n_heads])
        parts = {score.name: [] for score in plan.logits}  # per query chunk [batch, head, chunk]
        start = 0
        # logit reductions are per query; a [batch, head, chunk, d_model] block stays within half the budget
        width = layer.w_out.shape[0] if layer.w_out is not None else 0
        for j, chunk in enumerate(query_chunks(attention, plan.budget // 2, plan.logit_queries, width=width)):
            inputs = replace(
                plan.shared,
                pattern=attention.rows(chunk),
                positions=chunk,
                head_input=None if layer.head_input is None else layer.head_input[:, start : start + len(chunk)],
                w_out=layer.w_out,
            )
            start += len(chunk)
            # every layer's chunk j of the same shape holds the same queries: token masks made once per pass
            at_queries = plan.at_queries.setdefault((attention.shape, width, j), {})
            for score in plan.logits:
                declared = inputs.declared(score, at_queries)  # what several scores derive alike is made once
                place = lambda c=chunk, at=layer.index: f"layer {at}, queries at {c.tolist()}"  # noqa: E731
                parts[score.name].append(call_reduction(score, score.reduce, place, inputs=declared))
        for name, chunks in parts.items():
            logits[name].append(chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=-1))  # [batch, head, q]
    return GroupScores(rows, logits)


def collect(reduced: GroupScores, rows: dict[str, list], logits: dict[str, list]) -> None:
    """Add one group's per-layer results to the pass's ``name -> per layer`` lists (inside the trace)."""
    for name, values in reduced.rows.items():
        rows[name].extend(values)
    for name, values in reduced.logits.items():
        logits[name].extend(values)
