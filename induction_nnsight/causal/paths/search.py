"""Estimate, then verify, for the circuit: estimate every (source, target, path) edge, path-patch exactly
only the strongest.

Estimates (every edge, from a few passes):

* ``k``, ``q``, ``v``: the QK fix. The source's direct contribution is removed from the target's key
  (query, value) input and the target's attention is recomputed exactly from there, in a *probe* that
  runs the target's layer alone (:func:`~induction_nnsight.causal.paths.estimates.probe`): the change of
  the induction score is exact (the pattern depends on nothing else), the loss effect is first order
  from the target's output on (one backward pass).
* ``total``: the direct path QK-fixed (the sum of the source's ``k`` and ``q`` probes), plus
  attribution patching on the target's induction score for every other path, through the heads in
  between: the estimate through every path minus its direct part
  (:func:`~induction_nnsight.causal.paths.estimates.score_estimates`: one copy of the rows per target,
  run to the last target's layer, one backward pass; in post-norm blocks the direct path alone). Its
  loss effect is attribution patching on the loss
  (:func:`~induction_nnsight.causal.paths.estimates.removal_estimate`, from the probes' backward pass).

Verification: per target and path, the ``verify`` strongest edges by the estimate, ranked as
:meth:`~induction_nnsight.causal.circuit.CircuitResult.strongest` ranks exact ones (largest drop of
the score; on ``v`` largest rise of the loss), run exactly (:mod:`~induction_nnsight.causal.paths.traces`).
A ``total`` run serves every target, so the verified ``total`` runs are the union over the targets.
Besides, the ``total`` runs of the sources whose removal is the largest share of the residual stream
(``Verification.largest``), whose first-order estimates are the least to be trusted. Then, under
``Verification.fraction``, further rounds while an unverified edge's estimate comes within that fraction of
the exact top ``n`` verified so far.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ...models.layout import model_facts
from ...ndif.execution import Execution, as_execution
from ...scores.ranking import RANK_DECIMALS
from ..cost import Cost, passes, runs_cost
from .estimates import estimate, loss_gradients, removal_estimate, score_estimates
from .patching import Ablation, PathResult, PathVariant, plan_runs
from .runs import run_traces
from .traces import Run, clean_trace, make_plan

__all__ = ["DEFAULT_FRACTION", "DEFAULT_VERIFY", "Verification", "circuit_costs", "path_search"]

DEFAULT_VERIFY = 10
"""Edges path-patched exactly per target and path under ``--search estimate``."""
DEFAULT_FRACTION = 0.75
"""The circuit's ``--verify-fraction``: chosen on SmolLM2's default targets with two seeds' rows, checked on
two more (docs/estimate.md)."""


@dataclass(frozen=True)
class Verification:
    """How many edges ``--search estimate`` path-patches exactly.

    Attributes:
        n: Edges per target and path, the strongest by the estimate; the size of each further round.
        fraction: None: stop after ``n``. A number ``f``: go on in rounds, per target and path up to ``n``
            more edges, strongest first, while a candidate's estimated drop is at least ``f`` times the
            ``n``-th largest exact drop among that target and path's verified edges (on ``k`` and ``q``, whose
            estimated scores are exact, ``f`` is 1): an edge below that bar could enter the exact top ``n``
            only if its estimate fell short by more than ``f`` allows (``--verify-fraction``).
        largest: Besides, the ``total`` runs of this many sources whatever their estimate (None: ``n``):
            those whose removal is largest relative to the residual stream it is written into, where a
            first-order estimate is least to be trusted (``--verify-largest``; one run serves every target).
    """

    n: int = DEFAULT_VERIFY
    fraction: float | None = DEFAULT_FRACTION
    largest: int | None = None


# path_patching's arguments on purpose (``verify`` for ``exact_losses``): its estimate-then-verify twin.
def path_search(
    model,
    tokens: torch.Tensor,
    seq_len: int,
    variants: list[PathVariant],
    *,
    ablation: Ablation | None = None,
    bos: bool = True,
    verify: int | Verification = DEFAULT_VERIFY,
    execution: Execution | None = None,
) -> tuple[PathResult, torch.Tensor, Cost]:
    """Every variant's estimated target score and loss, exact for the ``verify`` strongest per target and path.

    Args:
        model: An nnsight ``TransformersModel``.
        tokens: ``[batch, pos]`` repeated-token rows.
        seq_len: ``T``, the length of the repeated block.
        variants: From :func:`~induction_nnsight.causal.paths.patching.path_variants`; ``variants[0]`` clean.
        ablation: How a source's contribution is removed (None: zero).
        bos: Whether the rows start with BOS.
        verify: Edges verified per target and path (exactly that many), or a :class:`Verification` that may go
            on in rounds.
        execution: How the traces run; None for the defaults.

    Returns:
        ``(result, verified, cost)``: a :class:`~induction_nnsight.causal.paths.patching.PathResult`
        (``exact`` marks the verified variants, whose scores and losses are exact), ``[n]`` bool
        verified per variant (the clean one True), and what it ran.
    """
    ablation, run = ablation or Ablation(), as_execution(execution)
    facts = model_facts(model)
    runs, index = plan_runs(variants)
    targets = sorted({v.target for v in variants[1:]})
    layers = {t[0] for t in targets}
    plan = replace(
        make_plan(model, seq_len, bos, run), freeze_norm=ablation.freeze_norm, sender_norm=ablation.sender_norm
    )
    reference = ablation.reference
    shape = tuple(tokens.shape)
    n_ref = 0 if reference is None else reference.shape[0]
    cost = passes(shape[0] + n_ref, shape[1], forward=1)
    scores = torch.full((len(runs),), float("nan"))
    losses = torch.full((len(runs),), float("nan"))
    kqv = [i for i, r in enumerate(runs) if r.path != "total"]
    total = [i for i, r in enumerate(runs) if r.path == "total"]
    probes = [Run(runs[i].source, p, t) for i in total for t in targets if runs[i].source[0] < t[0] for p in "kq"]
    known = set(runs)  # once: rebuilt per probe it made 405B's search quadratic
    every = runs + [p for p in dict.fromkeys(probes) if p not in known]
    clean = clean_trace(model, plan, tokens, ablation, every, layers)
    p_scores = torch.full((len(every),), float("nan"))
    p_losses = torch.full((len(every),), float("nan"))
    chosen = kqv + list(range(len(runs), len(every)))
    if chosen or total:  # one backward pass: the loss gradients at every probed target and every total source
        wanted = {every[i].target[0] for i in chosen} | {runs[i].source[0] for i in total}
        clean.grads = loss_gradients(model, plan, tokens, wanted)
        cost = cost + passes(*shape, forward=1, backward=1)
    if chosen:
        estimate(model, plan, tokens, clean, every, chosen, run, (p_scores, p_losses))
        cost = cost + runs_cost([every[i] for i in chosen], facts.n_layers, shape, probe=True)
    scores[kqv], losses[kqv] = p_scores[kqv], p_losses[kqv]
    total_score: dict[tuple, float] = {}  # (run index, target) -> estimated score
    rule = verify if isinstance(verify, Verification) else Verification(verify, None)
    largest: list[int] = []
    if total:
        ordered = sorted(targets)
        through, direct, sizes = score_estimates(model, plan, tokens, clean, ordered)  # [target, layer, head]
        by_size = sorted(total, key=lambda i: (-round(float(sizes[runs[i].source]), RANK_DECIMALS), runs[i].source))
        largest = by_size[: rule.n if rule.largest is None else rule.largest]
        blocks = (max(t[0] for t in ordered) + 1) / facts.n_layers
        cost = cost + passes(shape[0] * len(ordered), shape[1], forward=blocks, backward=blocks)
        at = {r: i for i, r in enumerate(every)}
        for i in total:
            s = runs[i].source
            losses[i] = clean.loss + removal_estimate(clean, s)
            for j, t in enumerate(ordered):
                if s[0] < t[0]:
                    base = float(clean.scores[t[0]][t[1]])
                    drop = sum(float(p_scores[at[Run(s, p, t)]]) - base for p in "kq")  # direct, QK-fixed
                    rest = 0.0 if direct is None else float(through[j, s[0], s[1]] - direct[j, s[0], s[1]])
                    total_score[(i, t)] = base + drop + rest
    groups = _ranked(variants, index, scores, losses, total_score, clean)
    exact, found_scores, found_losses = _verify(
        groups,
        rule,
        clean,
        lambda new: run_traces(model, plan, tokens, clean, [runs[i] for i in new], layers, run),
        set(largest),
    )
    cost = cost + runs_cost([runs[i] for i in exact], facts.n_layers, shape)
    where = {i: j for j, i in enumerate(exact)}
    out_scores = torch.full((len(variants),), float("nan"))
    out_losses = torch.full((len(variants),), clean.loss)
    b = tokens.shape[0]
    score_rows = torch.full((len(variants), b), float("nan"))  # row by row where verified, for intervals
    loss_rows = torch.full((len(variants), b), float("nan"))
    loss_rows[0] = clean.loss_rows
    verified = torch.ones(len(variants), dtype=torch.bool)
    for n, v in enumerate(variants[1:], start=1):
        i = index[n]
        if i in where:
            score_rows[n] = found_scores[where[i], v.target[0], :, v.target[1]]
            loss_rows[n] = found_losses[where[i]]
            out_scores[n], out_losses[n] = score_rows[n].mean(), loss_rows[n].mean()
        else:
            out_scores[n] = total_score[(i, v.target)] if v.path == "total" else scores[i]
            out_losses[n] = losses[i]
            verified[n] = False
    clean_scores = {t: float(clean.scores[t[0]][t[1]]) for t in targets}
    clean_rows = {t: clean.score_rows[t[0]][:, t[1]].float().cpu() for t in targets}
    result = PathResult(
        variants, out_scores, out_losses, clean_scores, verified.clone(), score_rows, loss_rows, clean_rows
    )
    return result, verified, cost


def _ranked(variants, index, scores, losses, total_score, clean) -> dict[tuple, list[tuple[float, tuple, int]]]:
    """``(target, path) -> [(key, source, run index)]``, strongest first by estimate: the largest score drop
    (the most negative key), on ``v`` the largest loss rise."""
    groups: dict[tuple, list[tuple[float, tuple, int]]] = {}
    for k, v in enumerate(variants[1:], start=1):
        i = index[k]
        if v.path == "v":
            key = -round(float(losses[i]) - clean.loss, RANK_DECIMALS)
        else:
            score = total_score[(i, v.target)] if v.path == "total" else float(scores[i])
            key = round(score - float(clean.scores[v.target[0]][v.target[1]]), RANK_DECIMALS)
        groups.setdefault((v.target, v.path), []).append((key, v.source, i))
    return {group: sorted(members) for group, members in groups.items()}


def _verify(
    groups: dict, rule: Verification, clean, run, extra: set[int]
) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """Path-patch per target and path the ``rule.n`` strongest runs and the ``extra`` ones (``run(indices)``
    gives their ``(scores, losses)``), then, under ``rule.fraction``, more in rounds (see :class:`Verification`).

    Returns:
        ``(run indices, their scores, their losses)``, in the order run.
    """
    exact: list[int] = []
    found: list[tuple[torch.Tensor, torch.Tensor]] = []
    new = sorted(set(extra) | {i for members in groups.values() for _, _, i in members[: rule.n]})
    while True:
        found.append(run(new))
        exact += new
        if rule.fraction is None or rule.n == 0:
            break
        scores, losses = (torch.cat([f[k] for f in found]) for k in (0, 1))
        new = _next_round(groups, rule, clean, {i: j for j, i in enumerate(exact)}, scores, losses)
        if not new:
            break
    return exact, torch.cat([f[0] for f in found]), torch.cat([f[1] for f in found])


def _next_round(groups: dict, rule: Verification, clean, where: dict[int, int], scores, losses) -> list[int]:
    """The runs of a further round: per target and path, up to ``rule.n`` unverified edges, strongest first, whose
    estimated drop reaches the bar, ``rule.fraction`` times the ``rule.n``-th largest exact drop verified so far (on
    ``k`` and ``q``, whose estimated scores are exact, the ``rule.n``-th itself): below it an edge could enter the
    exact top ``rule.n`` only if its estimate fell short by more than the fraction allows."""
    chosen: set[int] = set()
    for (target, path), members in groups.items():
        if path == "v":
            drops = [float(losses[where[i]].mean()) - clean.loss for _, _, i in members if i in where]
        else:
            base = float(clean.scores[target[0]][target[1]])
            at = [where[i] for _, _, i in members if i in where]
            drops = [base - float(scores[j, target[0], :, target[1]].mean()) for j in at]
        if len(drops) < rule.n:
            continue
        bar = (1.0 if path in "kq" else rule.fraction) * sorted(drops, reverse=True)[rule.n - 1]
        nxt = [i for key, _, i in members if i not in where and -key >= bar and -key > 0]
        chosen |= set(nxt[: rule.n])
    return sorted(chosen)


def circuit_costs(variants, n_layers: int, shape, reference, measure, spent: Cost | None, exact: torch.Tensor) -> dict:
    """``{"forward_passes", "backward_passes", "tokens", "forward_equivalents", "exhaustive": {...}}``: what a
    circuit ran (``spent`` under ``--search estimate``; else counted from the runs it made exact) and what
    every edge path-patched exactly costs (the exhaustive run with every loss exact)."""
    runs, index = plan_runs(variants)
    n_ref = 0 if reference is None else reference.shape[0]
    clean = passes(shape[0] + n_ref, shape[1], forward=1)
    everything = clean + runs_cost(runs, n_layers, shape)
    if spent is None:
        exact_runs = sorted({index[i] for i in range(1, len(variants)) if bool(exact[i])})
        spent = clean + runs_cost([runs[i] for i in exact_runs], n_layers, shape)
        if measure.exact_losses is not None and runs:
            kqv = [r for r in runs if r.path != "total"]
            last = max(v.target[0] for v in variants[1:])  # total runs are scored up to the last target layer
            blocks = sum(last + 1 - r.start for r in runs if r.path == "total")
            spent = (
                spent
                + passes(*shape, forward=1 + blocks / n_layers, backward=1)
                + runs_cost(kqv, n_layers, shape, probe=True)
            )
    return {**spent.as_dict(), "exhaustive": everything.as_dict()}
