"""Token and concept induction heads (Feucht, Todd, Wallace, Bau 2025, "The Dual-Route Model of
Induction"): every head's attention and causal copying scores, and the dissociation test.

- ``token_attention``: value-weighted attention from the end of a repeated random block to the token
  that followed its earlier copy, when that token starts a random-token span;
- ``concept_attention``: the same query's attention to the *last* token of the earlier multi-token
  entity (``entity_first_attention``, to its first token, is kept beside it);
- ``random_end_attention``: the control for ``concept_attention`` (the paper's ``end_tok_attn`` on
  random spans): the same attention to the last token of a random-token span, the baseline a concept
  head's entity score must beat;
- ``token_copying``: the change of the probability of ``c[0]`` at the patched position (the end of the
  repeated block) when one head's output there is patched from a clean row (a random-token span seen)
  into a corrupt one (never seen);
- ``concept_copying``: the change of the probability of the entity's second token ``c[1]`` at the last
  position, patched alike on real entities.

The copying scores are changes of probability, as the paper's; ``measure="log_probability"`` compares
log-probabilities (nats) instead. Each grid is a mean over prompts with a 95% t interval over prompts
(:func:`~induction_nnsight.stats.mean_interval`) and its split-half reliability
(:func:`~induction_nnsight.stats.split_half_reliability`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import torch

from ...errors import InductionError
from ...models.layout import model_facts
from ...ndif.execution import Execution, as_execution
from ...probes.tokens import DEFAULT_HIGH, DEFAULT_LOW
from ...scores.ranking import rank_heads
from ...stats import mean_interval, split_half_reliability
from ..cost import Cost, copying_cost, passes, variants_cost
from ..variants import variants_per_trace
from .attention import value_weighted_attention
from .copying import caches_prefix, copying_sweep
from .dissociation import dissociation, head_sets, text_means
from .prompts import MAX_ENTITY, RandomTokens, attention_prompts, copying_prompts, list_prompts, random_spans

__all__ = [
    "GRIDS",
    "MEASURES",
    "DualRouteProbe",
    "DualRouteResult",
    "dual_route",
    "dual_route_prompts",
    "pick_entities",
    "separator_id",
]

GRIDS = (
    "token_attention",
    "concept_attention",
    "random_end_attention",
    "entity_first_attention",
    "token_copying",
    "concept_copying",
)
"""Every per-head grid of a :class:`DualRouteResult`, in the order results list them."""
MEASURES = ("probability", "log_probability")
"""What a copying score compares: the paper's change of probability, or the change of log-probability."""
LIST_WORDS = 4
"""Words per list row of the dissociation test."""
REFERENCE_LENGTH = 64
"""Tokens per text window the ablation means are taken over."""


@dataclass(frozen=True)
class DualRouteProbe:
    """The sizes and seeds of the dual-route probe.

    Attributes:
        n_attention: Prompts of each kind (entity, random span) for the attention scores.
        n_copying: Prompts of each kind for the copying scores (they rank the heads).
        n_dissociation: List rows of each task for the dissociation test (fresh rows).
        max_k: The dissociation ablates the top 1..``max_k`` heads of each ranking.
        n_reference: Text windows the ablation means are taken over.
        measure: What the copying scores compare (:data:`MEASURES`).
        seed: Seed of the entity choice and every random token.
        low: Smallest uniform random token id.
        high: Uniform random token ids lie below this (and text ids too).
        top: Heads listed per grid.
    """

    n_attention: int = 256
    n_copying: int = 64
    n_dissociation: int = 32
    max_k: int = 16
    n_reference: int = 32
    measure: str = "probability"
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
        entities: ``{"attention": [...], "copying": [...], "dissociation": [...]}`` the entity names used.
        dissociation: What :func:`~induction_nnsight.causal.dual_route.dissociation.dissociation` returned.
        probe: The probe's settings.
        cost: The passes it ran (:class:`~induction_nnsight.causal.cost.Cost`).
        reliability: ``{grid: split-half reliability}`` over the grid's heads: how far its ranking would repeat.
        random_tokens: Where the random tokens came from (:attr:`RandomTokens.source`).
    """

    scores: dict[str, dict[str, torch.Tensor]]
    top: dict[str, list[tuple[int, int]]]
    entities: dict[str, list[str]]
    dissociation: dict = field(default_factory=dict)
    probe: DualRouteProbe = field(default_factory=DualRouteProbe)
    cost: Cost = field(default_factory=Cost)
    reliability: dict[str, float] = field(default_factory=dict)
    random_tokens: str = ""

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
    with ``random.Random(seed)`` (lengths in increasing order); the list is cycled when it has fewer than ``n``.
    """
    if not entities:
        raise InductionError(f"no entity of 2-{MAX_ENTITY} tokens under this tokenizer: pass entities explicitly")
    rng = random.Random(seed)
    by_length: dict[int, list] = {}
    for entity in entities:
        by_length.setdefault(len(entity.ids), []).append(entity)
    groups = [g for _, g in sorted(by_length.items())]
    for group in groups:
        rng.shuffle(group)
    order = [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]
    return [order[i % len(order)] for i in range(n)]


def _list_words(pool: list, n_rows: int, seed: int) -> list[list]:
    """For each list row, :data:`LIST_WORDS` distinct entities of fixed lengths (rows of one copied length
    have one length): row ``i`` copies a word of the ``i``-th length in turn, the others fill the pattern."""
    rng = random.Random(seed)
    by_length: dict[int, list] = {}
    for entity in pool:
        by_length.setdefault(len(entity.ids), []).append(entity)
    lengths = sorted(by_length)
    pattern = [lengths[i % len(lengths)] for i in range(LIST_WORDS)]
    rows = []
    for i in range(n_rows):
        last = pattern[i % LIST_WORDS]
        others = list(pattern)
        others.remove(last)
        rng.shuffle(others)
        need = {n: others.count(n) + (n == last) for n in set(pattern)}
        drawn = {n: rng.sample(by_length[n], min(need[n], len(by_length[n]))) for n in need}
        drawn = {n: (d * LIST_WORDS)[: need[n]] for n, d in drawn.items()}  # a short list repeats words
        rows.append([drawn[n].pop() for n in others] + [drawn[last].pop()])
    return rows


def dual_route_prompts(entities: list, probe: DualRouteProbe, tokens: RandomTokens, *, separator: int, bos) -> dict:
    """Every prompt of the probe, from its seed: ``{"attention": {"entity", "random"}, "copying": {"entity",
    "random"}, "dissociation": {"meaning", "verbatim"}, "names": {...}}``.

    Seeds: entities for attention ``seed``, random spans ``seed + 1``, attention rows ``seed + 2`` (entity)
    and ``seed + 3`` (random); entities for copying ``seed + 4``, spans ``seed + 5``, copying rows
    ``seed + 6`` and ``seed + 7``; the dissociation's words ``seed + 8`` (meaning) and ``seed + 9`` (verbatim
    spans, of the same lengths), from entities not used for copying where enough remain.
    """
    s = probe.seed
    common = dict(separator=separator, bos=bos)
    chosen = pick_entities(entities, probe.n_attention, s)
    spans = random_spans([len(e.ids) for e in chosen], tokens, seed=s + 1)
    copied = pick_entities(entities, probe.n_copying, s + 4)
    copy_spans = random_spans([len(e.ids) for e in copied], tokens, seed=s + 5)
    used = {e.name for e in copied}
    fresh = [e for e in entities if e.name not in used]
    pool = fresh if len(fresh) >= LIST_WORDS else list(entities)
    words = _list_words(pool, probe.n_dissociation, s + 8)
    generator = torch.Generator().manual_seed(s + 9)
    nonsense = [[tokens.block(len(w.ids), generator) for w in row] for row in words]
    return {
        "attention": {
            "entity": attention_prompts([e.ids for e in chosen], tokens, seed=s + 2, **common),
            "random": attention_prompts(spans, tokens, seed=s + 3, **common),
        },
        "copying": {
            "entity": copying_prompts([e.ids for e in copied], tokens, seed=s + 6, **common),
            "random": copying_prompts(copy_spans, tokens, seed=s + 7, **common),
        },
        "dissociation": {
            "meaning": list_prompts([[w.ids for w in row] for row in words], **common),
            "verbatim": list_prompts(nonsense, **common),
        },
        "names": {
            "attention": [e.name for e in chosen],
            "copying": [e.name for e in copied],
            "dissociation": [row[-1].name for row in words],
        },
    }


def _interval(per_row: torch.Tensor) -> dict[str, torch.Tensor]:
    low, high = mean_interval(per_row)
    return {"mean": per_row.mean(0), "ci_low": low, "ci_high": high, "rows": per_row}


def _reference_rows(tokens: RandomTokens, n: int, seed: int, bos) -> torch.Tensor:
    """``[n, REFERENCE_LENGTH]`` windows of the text (in order, unshuffled), or of uniform ids without one."""
    generator = torch.Generator().manual_seed(seed)
    body = REFERENCE_LENGTH - (bos is not None)
    rows = []
    for _ in range(n):
        if tokens.ids is None or len(tokens.ids) < body:
            row = torch.randint(tokens.low, tokens.high, (body,), generator=generator)
        else:
            start = int(torch.randint(0, len(tokens.ids) - body + 1, (1,), generator=generator))
            row = tokens.ids[start : start + body]
        rows.append(row)
    out = torch.stack(rows)
    return out if bos is None else torch.cat([torch.full((n, 1), bos), out], 1)


def dual_route(
    model,
    entities: list,
    *,
    probe: DualRouteProbe | None = None,
    tokens: RandomTokens | None = None,
    execution: Execution | None = None,
) -> DualRouteResult:
    """Every head's token- and concept-induction scores, and the dissociation test.

    Args:
        model: An nnsight ``TransformersModel``.
        entities: :class:`~induction_nnsight.causal.dual_route.entities.Entity` objects (2-5 tokens each).
        probe: Sizes and seeds (:class:`DualRouteProbe`); None for the defaults.
        tokens: Where random tokens come from (:class:`~induction_nnsight.causal.dual_route.prompts.RandomTokens`);
            None for uniform ids in ``[probe.low, probe.high)``.
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
    if probe.measure not in MEASURES:
        raise InductionError(f"unknown copying measure {probe.measure!r}: pass one of {', '.join(MEASURES)}")
    tokens = tokens or RandomTokens.uniform(probe.low, probe.high)
    bos = facts.bos_token_id
    separator = separator_id(getattr(model, "tokenizer", None), probe.low)
    prompts = dual_route_prompts(entities, probe, tokens, separator=separator, bos=bos)
    scores, cost = {}, Cost()
    # attention: real entities (first and last token) and random spans (their first and last token)
    for kind, (first_grid, last_grid) in (
        ("entity", ("entity_first_attention", "concept_attention")),
        ("random", ("token_attention", "random_end_attention")),
    ):
        groups = prompts["attention"][kind]
        per_row = torch.zeros(sum(len(g.index) for g in groups), 2, facts.n_layers, facts.n_heads)
        for g in groups:
            keys = torch.stack([g.first, g.last], 1)
            per_row[g.index] = value_weighted_attention(model, g.tokens, keys, execution=run)
            cost = cost + passes(*g.tokens.shape, forward=1)
        scores[first_grid], scores[last_grid] = _interval(per_row[:, 0]), _interval(per_row[:, 1])
    # copying: patch each head at the end of the repeated block
    shape = (facts.n_layers, facts.n_heads)
    for grid, target, kind in (("concept_copying", "concept", "entity"), ("token_copying", "token", "random")):
        groups = prompts["copying"][kind]
        rise = torch.zeros(sum(len(g.index) for g in groups), *shape)
        for g in groups:
            logp = copying_sweep(model, g, target, execution=run)  # [1 + heads, batch]
            cached, (batch, n_pos) = caches_prefix(run), g.corrupt.shape
            per_trace = variants_per_trace(batch, 0 if cached else batch, n_pos, run)
            cost = cost + copying_cost((batch, n_pos), logp.shape[0], cached=cached, per_trace=per_trace)
            value = logp.exp() if probe.measure == "probability" else logp
            rise[g.index] = (value[1:] - value[:1]).T.reshape(-1, *shape).float()  # [batch, n_layers, n_heads]
        scores[grid] = _interval(rise)
    reliability = {grid: split_half_reliability(scores[grid].pop("rows")) for grid in GRIDS}
    scores = {grid: scores[grid] for grid in GRIDS}
    top = {grid: rank_heads(scores[grid]["mean"], probe.top) for grid in GRIDS}
    # the dissociation: mean-ablate the top 1..max_k heads of each copying ranking, on fresh list rows
    max_k = min(probe.max_k, facts.n_layers * facts.n_heads)
    ranked = {
        "concept": rank_heads(scores["concept_copying"]["mean"], max_k),
        "token": rank_heads(scores["token_copying"]["mean"], max_k),
    }
    reference = _reference_rows(tokens, probe.n_reference, probe.seed + 10, bos)
    means = text_means(model, reference, execution=run)
    cost = cost + passes(*reference.shape, forward=1)
    ks = list(range(1, max_k + 1))
    tested = dissociation(model, prompts["dissociation"], ranked, ks, means, execution=run)
    n_sets = len(head_sets(ranked, ks))
    for groups in prompts["dissociation"].values():
        for g in groups:
            cost = cost + variants_cost(n_sets, tuple(g.tokens.shape), 0, run)
    tested["heads"] = {kind: [list(h) for h in heads] for kind, heads in ranked.items()}
    tested["ablation"] = "mean over text windows"
    return DualRouteResult(scores, top, prompts["names"], tested, probe, cost, reliability, tokens.source)
