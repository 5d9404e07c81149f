"""Token and concept induction heads (Feucht, Todd, Wallace, Bau 2025, "The Dual-Route Model of
Induction"): every head's attention and causal copying scores, and the dissociation test.

- ``token_attention``: value-weighted attention from the end of a repeated random block to the token
  that followed its earlier copy, when that token starts a random-token span;
- ``concept_attention``: the same query's attention to the *last* token of the earlier multi-token
  entity (``entity_first_attention``, to its first token, is kept beside it);
- ``token_copying``: the rise of the log-probability (nats) of the next random token when the head's
  output is patched from a clean row (span seen) into a corrupt one (never seen);
- ``concept_copying``: the rise of the log-probability of the entity's second token, patched alike.

Each grid is a mean over prompts with a 95% t interval over prompts
(:func:`~induction_nnsight.stats.mean_interval`, the heads pass's routine).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import torch

from ..errors import InductionError
from ..models.layout import model_facts
from ..ndif.execution import Execution, as_execution
from ..probes.dual_route import attention_prompts, copying_prompts, random_entities
from ..probes.tokens import DEFAULT_HIGH, DEFAULT_LOW
from ..scores.dual_attention import value_weighted_attention
from ..scores.ranking import rank_heads
from ..stats import mean_interval, split_half_reliability
from .copying_patch import caches_prefix, copying_sweep
from .cost import Cost, copying_cost, passes, variants_cost
from .dissociation import dissociation

__all__ = ["GRIDS", "DualRouteProbe", "DualRouteResult", "dual_route", "pick_entities", "separator_id"]

GRIDS = ("token_attention", "concept_attention", "entity_first_attention", "token_copying", "concept_copying")
"""Every per-head grid of a :class:`DualRouteResult`, in the order results list them."""


@dataclass(frozen=True)
class DualRouteProbe:
    """The sizes and seeds of the dual-route probe.

    Attributes:
        n_attention: Prompts of each kind (entity, random span) for the attention scores.
        n_copying: Prompts of each kind for the copying scores and the dissociation test.
        n_random: Length of the random block before the span (and repeated after the separator).
        n_after: Random tokens between the span and the separator (attention prompts).
        seed: Seed of the entity choice and every random token.
        low: Smallest random token id.
        high: Random token ids lie below this.
        top: Heads listed per grid, and ablated per kind in the dissociation test.
    """

    n_attention: int = 32
    n_copying: int = 8
    n_random: int = 10
    n_after: int = 4
    seed: int = 0
    low: int = DEFAULT_LOW
    high: int = DEFAULT_HIGH
    top: int = 5


@dataclass
class DualRouteResult:
    """Per-head dual-route scores.

    Attributes:
        scores: ``{grid: {"mean", "ci_low", "ci_high"}}``, each ``[n_layers, n_heads]``.
        top: ``{grid: [(layer, head), ...]}`` the best heads of each grid, best first.
        entities: ``{"attention": [...], "copying": [...]}`` the entity names used.
        dissociation: What :func:`~induction_nnsight.causal.dissociation.dissociation` returned.
        probe: The probe's settings.
        cost: The passes it ran (:class:`~induction_nnsight.causal.cost.Cost`).
        reliability: ``{grid: split-half reliability}`` over the grid's heads
            (:func:`~induction_nnsight.stats.split_half_reliability`): how far its ranking would repeat.
    """

    scores: dict[str, dict[str, torch.Tensor]]
    top: dict[str, list[tuple[int, int]]]
    entities: dict[str, list[str]]
    dissociation: dict = field(default_factory=dict)
    probe: DualRouteProbe = field(default_factory=DualRouteProbe)
    cost: Cost = field(default_factory=Cost)
    reliability: dict[str, float] = field(default_factory=dict)

    def mean(self, grid: str) -> torch.Tensor:
        """``[n_layers, n_heads]`` mean scores of one grid."""
        return self.scores[grid]["mean"]

    def settings(self) -> dict:
        """The probe's settings as a plain dict."""
        return asdict(self.probe)


def separator_id(tokenizer, fallback: int) -> int:
    """The newline's token id, or ``fallback`` where the tokenizer has no one-token newline."""
    ids = tokenizer.encode("\n", add_special_tokens=False) if tokenizer is not None else []
    return ids[0] if len(ids) == 1 else fallback


def pick_entities(entities: list, n: int, seed: int) -> list:
    """``n`` entities, as even across their token lengths as the list allows, in a seeded order.

    Entities are drawn in turn from each token length (2, 3, 4, 5), each length's own list shuffled
    with ``seed``; the list is cycled when it has fewer than ``n``.
    """
    if not entities:
        raise InductionError("no entity of 2-5 tokens under this tokenizer: pass entities explicitly")
    rng = random.Random(seed)
    by_length: dict[int, list] = {}
    for entity in entities:
        by_length.setdefault(len(entity.ids), []).append(entity)
    for group in by_length.values():
        rng.shuffle(group)
    order = [g[i] for i in range(max(map(len, by_length.values()))) for _, g in sorted(by_length.items()) if i < len(g)]
    return [order[i % len(order)] for i in range(n)]


def _interval(per_row: torch.Tensor) -> dict[str, torch.Tensor]:
    low, high = mean_interval(per_row)
    return {"mean": per_row.mean(0), "ci_low": low, "ci_high": high, "rows": per_row}


def dual_route(
    model, entities: list, *, probe: DualRouteProbe | None = None, execution: Execution | None = None
) -> DualRouteResult:
    """Every head's token- and concept-induction scores, and the dissociation test.

    Args:
        model: An nnsight ``TransformersModel``.
        entities: :class:`~induction_nnsight.probes.entities.Entity` objects (2-5 tokens each).
        probe: Sizes and seeds (:class:`DualRouteProbe`); None for the defaults.
        execution: How the traces run (:class:`~induction_nnsight.ndif.execution.Execution`); None
            for the defaults.

    Returns:
        A :class:`DualRouteResult`.
    """
    probe = probe or DualRouteProbe()
    run = as_execution(execution)
    facts = model_facts(model)
    if probe.high > facts.vocab_size or probe.low < 0 or probe.low >= probe.high:
        raise InductionError(
            f"random token range [{probe.low}, {probe.high}) must lie inside the vocabulary of {facts.vocab_size}: "
            f"pass --low/--high within it"
        )
    common = dict(low=probe.low, high=probe.high, bos=facts.bos_token_id)
    common["separator"] = separator_id(getattr(model, "tokenizer", None), probe.low)
    scores = {}
    # attention: real entities (first and last token) and random spans (the next token)
    chosen = pick_entities(entities, probe.n_attention, probe.seed)
    ids = [e.ids for e in chosen]
    stand_ins = random_entities([len(e) for e in ids], seed=probe.seed + 1, low=probe.low, high=probe.high)
    tokens, first, last = attention_prompts(
        ids, n_random=probe.n_random, n_after=probe.n_after, seed=probe.seed, **common
    )
    cost = passes(*tokens.shape, forward=1)
    per_row = value_weighted_attention(model, tokens, torch.stack([first, last], 1), execution=run)
    scores["entity_first_attention"] = _interval(per_row[:, 0])
    scores["concept_attention"] = _interval(per_row[:, 1])
    tokens, first, _ = attention_prompts(
        stand_ins, n_random=probe.n_random, n_after=probe.n_after, seed=probe.seed + 2, **common
    )
    cost = cost + passes(*tokens.shape, forward=1)
    scores["token_attention"] = _interval(value_weighted_attention(model, tokens, first[:, None], execution=run)[:, 0])
    # copying: patch each head at the end of the repeated block
    copied = pick_entities(entities, probe.n_copying, probe.seed + 3)
    copy_ids = [e.ids for e in copied]
    spans = random_entities([len(e) for e in copy_ids], seed=probe.seed + 4, low=probe.low, high=probe.high)
    rows = {
        "entity": copying_prompts(copy_ids, n_random=probe.n_random, seed=probe.seed + 5, **common),
        "random": copying_prompts(spans, n_random=probe.n_random, seed=probe.seed + 6, **common),
    }
    shape = (facts.n_layers, facts.n_heads)
    for grid, target, span in (("concept_copying", "concept", "entity"), ("token_copying", "token", "random")):
        probs = copying_sweep(model, rows[span], target, execution=run)  # [1 + heads, batch]
        cost = cost + copying_cost(tuple(rows[span].corrupt.shape), probs.shape[0], cached=caches_prefix(run))
        rise = (probs[1:] - probs[:1]).T.reshape(-1, *shape)  # [batch, n_layers, n_heads]
        scores[grid] = _interval(rise)
    reliability = {grid: split_half_reliability(scores[grid].pop("rows")) for grid in GRIDS}
    scores = {grid: scores[grid] for grid in GRIDS}
    top = {grid: rank_heads(scores[grid]["mean"], probe.top) for grid in GRIDS}
    ablated = {"concept": top["concept_copying"], "token": top["token_copying"]}
    tested = dissociation(model, rows, ablated, execution=run)
    for span in rows.values():  # the unablated rows and each head set, in batched traces
        cost = cost + variants_cost(1 + len(ablated), tuple(span.clean.shape), 0, run)
    tested["heads"] = {kind: [list(h) for h in heads] for kind, heads in ablated.items()}
    names = {"attention": [e.name for e in chosen], "copying": [e.name for e in copied]}
    return DualRouteResult(scores, top, names, tested, probe, cost, reliability)
