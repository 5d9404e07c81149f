"""Head ablation: knock heads out and measure what the model loses, exactly or estimated first.

- :mod:`.method`: how a head is removed (:class:`Ablation`: zero, mean, resample);
- :mod:`.sweep`: the exact ablations, batched: :func:`ablate_heads`, :func:`ablation_sweep` (every head
  alone), :func:`ablation_curve` (the top ``k`` against random sets);
- :mod:`.results`: what they return (:class:`SweepResult`, :class:`CurveResult`);
- :mod:`.estimators`: every head's effect from a few forward and backward passes (:func:`head_estimate`);
- :mod:`.search`: estimate, then ablate exactly only the strongest (:func:`search_heads`, :func:`compare`).

Part of :mod:`induction_nnsight.causal`: may import what that stage may import and its flat modules
(metrics, head outputs, variants, intervals, cost).
"""

from .estimators import (
    DEFAULT_ESTIMATOR,
    DEFAULT_STEPS,
    ESTIMATORS,
    Estimator,
    HeadEstimate,
    head_attribution,
    head_estimate,
)
from .method import DEFAULT_REFERENCE_ROWS, DEFAULT_RESAMPLE_DRAWS, METHODS, Ablation
from .results import CurveResult, SweepResult
from .search import HeadSearch, SearchResult, compare, search_heads, spearman
from .sweep import (
    RandomDraws,
    ablate_heads,
    ablation_curve,
    ablation_metrics,
    ablation_rows,
    ablation_sweep,
    random_head_draws,
    repeated_half_metric,
)

__all__ = [
    "DEFAULT_ESTIMATOR",
    "DEFAULT_REFERENCE_ROWS",
    "DEFAULT_RESAMPLE_DRAWS",
    "DEFAULT_STEPS",
    "ESTIMATORS",
    "METHODS",
    "Ablation",
    "CurveResult",
    "Estimator",
    "HeadEstimate",
    "HeadSearch",
    "RandomDraws",
    "SearchResult",
    "SweepResult",
    "ablate_heads",
    "ablation_curve",
    "ablation_metrics",
    "ablation_rows",
    "ablation_sweep",
    "compare",
    "head_attribution",
    "head_estimate",
    "random_head_draws",
    "repeated_half_metric",
    "search_heads",
    "spearman",
]
