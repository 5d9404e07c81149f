"""The per-head part of ``induction-nnsight ablate``: the exhaustive sweep with a head estimate beside it,
or (``--search estimate``) the estimate first and exact ablation of its strongest candidates only.

Each part records what it ran as ``"cost"`` (:mod:`~induction_nnsight.causal.cost`), and the job's
top-level ``"cost"`` adds up every pass it made.
"""

from __future__ import annotations

import time

import torch

from ..causal.ablation.estimators import Estimator, head_estimate
from ..causal.ablation.method import Ablation
from ..causal.ablation.results import SweepResult
from ..causal.ablation.search import HeadSearch, compare, search_heads
from ..causal.ablation.sweep import ablation_sweep
from ..causal.cost import Cost, passes, variants_cost
from ..errors import InductionError
from ..figures.causal import attribution_scatter_figure
from ..names import head_name
from ..ndif.execution import Execution
from ..scores.ranking import rank_heads
from ..stats import ALPHA
from .outputs import rounded, table

SEARCHES = ("exhaustive", "estimate")
TOP = 10  # the exhaustive top heads whose recall and signs an estimate is judged by

__all__ = ["SEARCHES", "ablate_cost", "attribution_figure", "fraction", "sweep_section"]


def fraction(text: str) -> float | None:
    """``--verify-fraction``: a number in ``(0, 1]``, or ``none`` (no further rounds)."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise InductionError(f"--verify-fraction takes a number in (0, 1] or 'none', got {text!r}: pass e.g. 0.25")
    return value


def _estimate_entry(estimate, seconds: float) -> dict:
    return {
        "estimator": estimate.estimator,
        "steps": estimate.steps,
        "estimate": table(estimate.estimate),
        "seconds": round(seconds, 2),
        "cost": estimate.cost.as_dict(),
    }


def _comparison(estimate: torch.Tensor, exact: torch.Tensor) -> dict:
    found = compare(estimate, exact, TOP)
    return {
        "pearson_with_sweep": rounded(found["pearson"]),
        "spearman_with_sweep": rounded(found["spearman"]),
        f"recall_top{TOP}": rounded(found["recall_top"]),
        f"sign_agreement_top{TOP}": rounded(found["sign_agreement_top"]),
        f"wrong_sign_top{TOP}": found["wrong_sign"],
    }


def _interval_rows(delta: torch.Tensor, low, high, q) -> list[dict]:
    rows = []
    for layer, head in rank_heads(delta):
        row = {"layer": layer, "head": head, "delta": rounded(delta[layer, head])}
        if low is not None:
            row |= {
                "ci_low": rounded(low[layer, head]),
                "ci_high": rounded(high[layer, head]),
                "q": rounded(q[layer, head]),  # Benjamini-Hochberg over every head swept
                "distinguishable_from_zero": bool(q[layer, head] <= ALPHA),
            }
        rows.append(row)
    return rows


def sweep_section(
    model, tokens, metric, ablation: Ablation, config, execution: Execution
) -> tuple[dict, dict, SweepResult]:
    """``(results["sweep"], results["attribution"], the sweep)`` under ``config.search``.

    Under ``"exhaustive"`` every head is ablated (each change with its bootstrap interval over rows) and
    the estimate is compared with it; under ``"estimate"`` only the ``config.verify`` strongest by
    ``|estimate|`` (and more while ``config.verify_fraction`` allows) are ablated, the rest of
    ``values``/``delta`` is null and ``"verified"`` says which heads were ablated (a ``resample``
    search verifies against the first draw, as the estimate reads it).
    """
    estimator = Estimator(config.attribution, config.steps)
    method, source = ablation.estimated(tokens.shape[0])
    n_ref = 0 if source is None or method != "mean" else source.shape[0]
    started = time.perf_counter()
    low = high = q = None
    if config.search == "estimate":
        found = search_heads(
            model,
            tokens,
            metric,
            method,
            source=source,
            search=HeadSearch(estimator, config.verify, config.verify_fraction),
            execution=execution,
        )
        seconds = time.perf_counter() - started
        delta, baseline, low, high, q = found.delta, found.baseline, found.ci_low, found.ci_high, found.q_values
        attribution = {**_estimate_entry(found.estimate, 0.0), "seconds": None}  # timed with the search
        details = {"search": "estimate", "verified": table(found.verified.float()), "verify": config.verify}
        details["verify_fraction"] = config.verify_fraction
        details["cost"] = found.verify_cost.as_dict()
        details["cost_with_estimate"] = found.cost.as_dict()
        result = SweepResult(baseline, delta + baseline, delta, metric.label, None)
    else:
        result = ablation_sweep(model, tokens, metric, method=ablation, layers=config.layers, execution=execution)
        seconds = time.perf_counter() - started
        delta, baseline, low, high, q = result.delta, result.baseline, result.ci_low, result.ci_high, result.q_values
        n = int(torch.isfinite(delta).sum())
        started = time.perf_counter()
        estimate = head_estimate(model, tokens, metric, method, source=source, estimator=estimator, execution=execution)
        attribution = {
            **_estimate_entry(estimate, time.perf_counter() - started),
            **_comparison(estimate.estimate, delta),
        }
        details = {
            "search": "exhaustive",
            "cost": variants_cost(n + 1, tuple(tokens.shape), n_ref, execution).as_dict(),
            "delta_ci_low": table(low),
            "delta_ci_high": table(high),
        }
    details = {
        "baseline": rounded(baseline),
        "values": table(result.values),
        "delta": table(delta),
        "seconds": round(seconds, 2),
        "rows": _interval_rows(delta, low, high, q),
        **details,
    }
    return details, attribution, result


def ablate_cost(results, config, shape: tuple[int, int], n_ref: int, execution: Execution) -> Cost:
    """Every pass the ablate job ran (``results``: its :class:`~induction_nnsight.app.ablate_job.AblateJobResult`
    so far): the scan, the optional head set, the curve, the sweep (or search) and the estimate."""
    batch, n_pos = shape
    total = passes(batch, n_pos, forward=1)  # the baseline scan
    if results.ablated is not None:
        total = total + variants_cost(1, shape, n_ref, execution)
    total = total + variants_cost(1 + config.top_k * (1 + config.draws), shape, n_ref, execution)
    if results.sweep is not None:
        sweep = results.sweep.get("cost_with_estimate") or results.sweep["cost"]
        total = total + Cost(sweep["forward_passes"], sweep["backward_passes"], sweep["tokens"])
        if results.sweep["search"] == "exhaustive":
            own = results.attribution["cost"]
            total = total + Cost(own["forward_passes"], own["backward_passes"], own["tokens"])
    return total


def attribution_figure(attribution: dict, sweep: dict, model: str, subtitle: str):
    """The estimate against the exhaustive sweep, one point per head (a ``go.Figure``)."""
    exact = [v for row in sweep["delta"] for v in row]
    estimate = [v for row in attribution["estimate"] for v in row]
    n_heads = len(sweep["delta"][0])
    labels = [head_name(i // n_heads, i % n_heads) for i in range(len(exact))]
    name = attribution["estimator"] + (f" ({attribution['steps']} steps)" if attribution["estimator"] == "ig" else "")
    return attribution_scatter_figure(
        [float("nan") if v is None else v for v in exact],
        [float("nan") if v is None else v for v in estimate],
        labels,
        correlation=attribution["pearson_with_sweep"],
        title=f"Head estimate ({name}) vs exhaustive ablation sweep — {model}",
        subtitle=subtitle,
        axis_title="Δ repeated-half loss (nats)",
    )
