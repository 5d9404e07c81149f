"""Estimate, then verify, for the per-head sweep: rank every head by an estimate, ablate only the strongest.

:func:`search_heads` runs one head estimate (:mod:`~induction_nnsight.causal.ablation.estimators`), then the
exact ablation of the ``verify`` heads with the largest ``|estimate|`` (ties by layer and head), and
optionally more, in rounds of ``verify``, while the next candidate's ``|estimate|`` reaches
``fraction`` times the weakest ``|exact effect|`` among the ``verify`` strongest verified so far.
:func:`compare` scores an estimate against an exhaustive sweep: Pearson and Spearman correlation,
recall of the exhaustive top ``n`` and whether each of them has the right sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import InductionError
from ...models.layout import model_facts
from ...names import head_name
from ...ndif.execution import Execution, as_execution
from ...scores.ranking import rank_heads
from ...stats import bh_adjust, mean_test
from ..cost import Cost, variants_cost
from ..intervals import effect_interval
from ..metrics import CausalMetric, MetricFn, pearson
from .estimators import Estimator, HeadEstimate, head_estimate
from .sweep import ablation_rows

__all__ = ["HeadSearch", "SearchResult", "compare", "search_heads", "spearman"]

Head = tuple[int, int]


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two same-shape tables over the cells where both are finite
    (ties broken by position: the tables are floats)."""
    a, b = a.flatten().double(), b.flatten().double()
    keep = torch.isfinite(a) & torch.isfinite(b)
    ranks = [torch.argsort(torch.argsort(t[keep], stable=True)).double() for t in (a, b)]
    return pearson(ranks[0], ranks[1])


def compare(estimate: torch.Tensor, exact: torch.Tensor, n: int = 10) -> dict:
    """How well ``estimate`` stands in for ``exact`` (both ``[n_layers, n_heads]``).

    Returns:
        ``{"pearson", "spearman", "top": n, "recall_top": share of the exact top ``n`` by ``|effect|``
        among the estimate's top ``n`` by ``|estimate|``, "sign_agreement_top": share of the exact top
        ``n`` whose estimate has the same sign, "wrong_sign": those heads' names}``.
    """
    top = rank_heads(exact.abs(), n)
    mine = set(rank_heads(estimate.abs(), n))
    wrong = [
        head_name(layer, head)
        for layer, head in top
        if torch.sign(estimate[layer, head]) != torch.sign(exact[layer, head])
    ]
    return {
        "pearson": pearson(estimate, exact),
        "spearman": spearman(estimate, exact),
        "top": n,
        "recall_top": len(mine & set(top)) / max(1, len(top)),
        "sign_agreement_top": 1 - len(wrong) / max(1, len(top)),
        "wrong_sign": wrong,
    }


@dataclass(frozen=True)
class HeadSearch:
    """How :func:`search_heads` chooses what to verify.

    Attributes:
        estimator: The estimate that ranks the heads (:class:`~induction_nnsight.causal.ablation.estimators.Estimator`).
        verify: Heads ablated exactly (the strongest by ``|estimate|``), and the size of each further round.
        fraction: None: stop after ``verify``. A number ``f``: go on while the next candidate's
            ``|estimate|`` is at least ``f`` times the smallest ``|exact effect|`` of the ``verify``
            strongest verified heads.
    """

    estimator: Estimator = Estimator()
    verify: int = 20
    fraction: float | None = None


@dataclass
class SearchResult:
    """What :func:`search_heads` found.

    Attributes:
        estimate: The head estimate (:class:`~induction_nnsight.causal.ablation.estimators.HeadEstimate`).
        baseline: The metric of the unablated rows.
        delta: ``[n_layers, n_heads]`` exact change of the metric where verified, NaN elsewhere.
        verified: ``[n_layers, n_heads]`` bool.
        verify_cost: What the exact ablations ran.
        ci_low: ``[n_layers, n_heads]`` lower end of the t interval of ``delta`` over rows where verified,
            NaN elsewhere (None: not computed).
        ci_high: ``[n_layers, n_heads]`` its upper end.
        q_values: ``[n_layers, n_heads]`` Benjamini-Hochberg adjusted p-values of "the effect is not 0" over
            every head of the model, a head not verified counting as p = 1 (which only makes the correction
            stricter); NaN where not verified.
    """

    estimate: HeadEstimate
    baseline: float
    delta: torch.Tensor
    verified: torch.Tensor
    verify_cost: Cost
    ci_low: torch.Tensor | None = None
    ci_high: torch.Tensor | None = None
    q_values: torch.Tensor | None = None

    @property
    def cost(self) -> Cost:
        """Estimate and verification together."""
        return self.estimate.cost + self.verify_cost


# head_estimate's arguments on purpose (``search`` for ``estimator``): the search wraps one estimate.
def search_heads(
    model,
    tokens: torch.Tensor,
    metric: CausalMetric | MetricFn,
    method: str = "zero",
    *,
    source: torch.Tensor | None = None,
    search: HeadSearch | None = None,
    execution: Execution | None = None,
) -> SearchResult:
    """Estimate every head's ablation effect, then ablate exactly only the strongest candidates.

    Args:
        model: An nnsight ``TransformersModel``.
        tokens: ``[batch, pos]`` token ids.
        metric: What to measure.
        method: ``"zero"`` or ``"mean"``.
        source: ``[n_ref, pos]`` rows for mean ablation.
        search: What ranks the heads and how many are verified (:class:`HeadSearch`; None: the defaults).
        execution: How the traces run; None for the defaults.

    Returns:
        A :class:`SearchResult`.
    """
    search, run = search or HeadSearch(), as_execution(execution)
    if search.verify < 1:
        raise InductionError(f"--verify must be at least 1, got {search.verify}")
    facts = model_facts(model)
    estimate = head_estimate(model, tokens, metric, method, source=source, estimator=search.estimator, execution=run)
    order = rank_heads(estimate.estimate.abs())
    delta = torch.full((facts.n_layers, facts.n_heads), float("nan"))
    low, high, p = delta.clone(), delta.clone(), torch.ones(facts.n_layers, facts.n_heads, dtype=torch.float64)
    verified = torch.zeros(facts.n_layers, facts.n_heads, dtype=torch.bool)
    base_rows = None
    n_ref = 0 if source is None or method != "mean" else source.shape[0]
    cost, baseline, done = Cost(), None, 0
    while done < len(order):
        chunk = order[done : done + search.verify]
        if done and search.fraction is not None:
            strongest = delta[verified].abs().sort(descending=True).values[: search.verify]
            bar = search.fraction * float(strongest.min())
            chunk = [h for h in chunk if float(estimate.estimate[h].abs()) >= bar]
        if not chunk:
            break
        sets = ([[]] if baseline is None else []) + [[h] for h in chunk]
        rows = ablation_rows(model, tokens, sets, metric, method=method, source=source, execution=run)  # [set, batch]
        if baseline is None:
            base_rows, rows = rows[0], rows[1:]
            baseline = float(base_rows.mean())
        _, lows, highs = effect_interval(rows, base_rows)
        tests = mean_test((rows - base_rows[None]).T)  # [len(chunk)]
        for i, ((layer, head), row) in enumerate(zip(chunk, rows)):
            delta[layer, head] = float(row.mean()) - baseline
            low[layer, head], high[layer, head], p[layer, head] = lows[i], highs[i], tests[i]
            verified[layer, head] = True
        cost = cost + variants_cost(len(sets), tokens.shape, n_ref, run)
        done += search.verify
        if search.fraction is None:
            break
    q = bh_adjust(p.nan_to_num(1.0)).float()
    q[~verified] = float("nan")
    return SearchResult(estimate, baseline, delta, verified, cost, low, high, q)
