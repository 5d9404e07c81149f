"""Path patching: one earlier head's direct contribution removed only where one later head reads it.

- :mod:`.patching`: the engine and its result: variants (source, target, path), :func:`path_patching`,
  :class:`PathResult`;
- :mod:`.traces`: the clean trace and the plan of runs, each from its start layer;
- :mod:`.runs`: the runs of one start layer batched into traces;
- :mod:`.edits`: the edits inside a run's trace (a source removed from a target's k/q/v, the output
  projection, the frozen norm);
- :mod:`.estimates`: every run's loss and score effects estimated from a few passes;
- :mod:`.search`: estimate every edge, then verify the strongest exactly (:func:`path_search`).

The circuit (:mod:`induction_nnsight.causal.circuit`) is built on them. Part of
:mod:`induction_nnsight.causal`: may import what that stage may import, its flat modules
(metrics, head weights, cost, ...) and :mod:`induction_nnsight.causal.ablation` (how a head is removed).
"""

from .estimates import Known, estimate, estimate_all, loss_gradients, probe, removal_estimate, score_estimates
from .patching import (
    DEFAULT_EXACT_LOSSES,
    PATHS,
    PathResult,
    PathVariant,
    all_earlier,
    path_patching,
    path_variants,
    plan_runs,
)
from .search import DEFAULT_FRACTION, DEFAULT_VERIFY, Verification, circuit_costs, path_search
from .traces import Clean, Plan, Run, clean_trace, make_plan

__all__ = [
    "DEFAULT_EXACT_LOSSES",
    "DEFAULT_FRACTION",
    "DEFAULT_VERIFY",
    "PATHS",
    "Clean",
    "Known",
    "PathResult",
    "PathVariant",
    "Plan",
    "Run",
    "Verification",
    "all_earlier",
    "circuit_costs",
    "clean_trace",
    "estimate",
    "estimate_all",
    "loss_gradients",
    "make_plan",
    "path_patching",
    "path_search",
    "path_variants",
    "plan_runs",
    "probe",
    "removal_estimate",
    "score_estimates",
]
