"""What a causal job costs, counted in passes: the one place of that arithmetic.

A pass over a batch of ``rows`` rows counts ``rows`` times (one per row), so a sweep batched into
few traces costs what the same variants run one at a time would. A pass that runs only some of
the model's ``n_layers`` blocks (path patching skips the blocks before a variant's first edited
layer and stops after the target) counts the fraction of blocks it ran. A backward pass costs about
two forward passes (:data:`BACKWARD_FORWARDS`), which :attr:`Cost.forward_equivalents` adds up.

Every function here is pure arithmetic of the model's shape (layers, heads) and the run's size
(rows, tokens per row, and the execution's row and token budgets that size its traces), so a planner can
price a job on a model it has never loaded; the sweeps and searches count what they ran with the same
functions (:func:`variants_cost`, :func:`runs_cost`, :func:`copying_cost`):

>>> sweep = sweep_cost(n_layers=30, n_heads=9, rows=4, tokens_per_row=61)
>>> sweep.forward_passes, sweep.backward_passes
(1084.0, 0.0)
>>> estimate = estimate_cost("plain", n_layers=30, rows=4, tokens_per_row=61)
>>> estimate.forward_equivalents / sweep.forward_equivalents < 0.02
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .variants import variants_per_trace

if TYPE_CHECKING:
    from ..ndif.execution import Execution
    from .paths.traces import Run

BACKWARD_FORWARDS = 2.0
"""Forward passes one backward pass costs (the usual rule: two matrix products per forward one)."""
ESTIMATORS = ("plain", "ig", "graddrop")
"""Head estimators of :mod:`~induction_nnsight.causal.ablation.estimators`, cheapest first."""
RENAMED_ESTIMATORS = {"atp-star": "graddrop"}  # GradDrop without AtP*'s QK fix: refused with its new name
"""Old estimator names -> their new names (an old name is refused with a line naming the new one)."""

__all__ = [
    "BACKWARD_FORWARDS",
    "ESTIMATORS",
    "RENAMED_ESTIMATORS",
    "Cost",
    "circuit_cost",
    "copying_cost",
    "estimate_cost",
    "exact_scores_circuit_cost",
    "pruned_circuit_cost",
    "runs_cost",
    "scale_table",
    "sweep_cost",
    "variants_cost",
]


@dataclass(frozen=True)
class Cost:
    """Passes a job ran, each counted once per row (a partial pass by the fraction of blocks it ran).

    Attributes:
        forward_passes: Row forward passes.
        backward_passes: Row backward passes.
        tokens: Tokens those passes processed (forward and backward; a partial pass counts its
            tokens fully, since every position is embedded and carried).
    """

    forward_passes: float = 0.0
    backward_passes: float = 0.0
    tokens: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.forward_passes + other.forward_passes,
            self.backward_passes + other.backward_passes,
            self.tokens + other.tokens,
        )

    def scaled(self, factor: float) -> Cost:
        """The cost of ``factor`` such jobs."""
        return Cost(self.forward_passes * factor, self.backward_passes * factor, self.tokens * factor)

    @property
    def forward_equivalents(self) -> float:
        """``forward_passes + BACKWARD_FORWARDS * backward_passes``."""
        return self.forward_passes + BACKWARD_FORWARDS * self.backward_passes

    def as_dict(self) -> dict:
        """``{"forward_passes", "backward_passes", "tokens", "forward_equivalents"}`` (strict JSON numbers)."""
        return {
            "forward_passes": round(self.forward_passes, 2),
            "backward_passes": round(self.backward_passes, 2),
            "tokens": round(self.tokens),
            "forward_equivalents": round(self.forward_equivalents, 2),
        }

    def __str__(self) -> str:
        return (
            f"{self.forward_passes:,.1f} forward + {self.backward_passes:,.1f} backward row passes "
            f"({self.forward_equivalents:,.1f} forward equivalents, {self.tokens:,.0f} tokens)"
        )


def passes(rows: int, tokens_per_row: int, *, forward: float = 0.0, backward: float = 0.0) -> Cost:
    """``forward`` and ``backward`` passes over ``rows`` rows of ``tokens_per_row`` tokens.

    >>> passes(4, 61, forward=1, backward=1)
    Cost(forward_passes=4.0, backward_passes=4.0, tokens=488.0)
    """
    return Cost(float(forward * rows), float(backward * rows), float((forward + backward) * rows * tokens_per_row))


def sweep_cost(n_layers: int, n_heads: int, rows: int, tokens_per_row: int, *, variants: int | None = None) -> Cost:
    """An exhaustive ablation sweep: the baseline and one variant per head (or ``variants``), full passes.

    Args:
        n_layers: Layers of the model.
        n_heads: Heads per layer.
        rows: Rows each variant runs on.
        tokens_per_row: Tokens per row.
        variants: Heads ablated (None: every head); the baseline is added.
    """
    n = n_layers * n_heads if variants is None else variants
    return passes(rows, tokens_per_row, forward=n + 1)


def variants_cost(n_variants: int, shape: tuple[int, int], n_ref: int, execution: Execution | None = None) -> Cost:
    """What :func:`~induction_nnsight.causal.ablation.sweep.ablation_metrics` runs for ``n_variants`` sets on rows
    of ``shape`` ``(batch, pos)``: every variant's rows, plus the ``n_ref`` reference rows once per trace
    (:func:`~induction_nnsight.causal.variants.variants_per_trace` under ``execution``)."""
    batch, n_pos = shape
    traces = -(-n_variants // variants_per_trace(batch, n_ref, n_pos, execution)) if n_ref else 0
    return passes(batch, n_pos, forward=n_variants) + passes(n_ref, n_pos, forward=traces)


def runs_cost(runs: Sequence[Run], n_layers: int, shape: tuple[int, int], *, probe: bool = False) -> Cost:
    """Path-patching runs over rows of ``shape`` ``(batch, pos)``: each runs from its start layer to the
    end (a probe: that layer alone), counted by the fraction of the ``n_layers`` blocks it runs."""
    batch, n_pos = shape
    blocks = sum(1 if probe else n_layers - r.start for r in runs)
    return passes(batch, n_pos, forward=blocks / n_layers)


def copying_cost(shape: tuple[int, int], n_variants: int, *, cached: bool, per_trace: int = 1) -> Cost:
    """What :func:`~induction_nnsight.causal.dual_route.copying.copying_sweep` runs for ``n_variants`` (the
    unpatched one included) on corrupt rows of ``shape`` ``(batch, pos)``. With the prefix ``cached``
    (:func:`~induction_nnsight.causal.dual_route.copying.caches_prefix`): the clean rows' head outputs, the
    prefix once and every variant's last two tokens (a pass over two tokens of a row counts one row pass, its
    two tokens); or else, ``per_trace`` variants a trace, every variant's whole rows and the clean rows once in
    each trace."""
    batch, n_pos = shape
    if cached:
        clean = passes(batch, n_pos, forward=1)
        return clean + passes(batch, n_pos - 2, forward=1) + passes(batch, 2, forward=n_variants)
    n_traces = -(-n_variants // per_trace)
    return passes(batch, n_pos, forward=n_variants + n_traces)


def estimate_cost(estimator: str, n_layers: int, rows: int, tokens_per_row: int, *, steps: int = 1) -> Cost:
    """One head estimate over every head (:func:`~induction_nnsight.causal.ablation.estimators.head_estimate`).

    ``plain``: one forward and one backward pass. ``ig``: ``steps`` of each. ``graddrop``:
    ``n_layers`` of each (one copy of the rows per dropped layer, batched).
    Mean ablation adds one forward pass over the reference rows (not counted here: add
    :func:`passes` of them).
    """
    if estimator == "plain":
        return passes(rows, tokens_per_row, forward=1, backward=1)
    if estimator == "ig":
        return passes(rows, tokens_per_row, forward=steps, backward=steps)
    if estimator == "graddrop":
        return passes(rows, tokens_per_row, forward=n_layers, backward=n_layers)
    raise ValueError(f"unknown estimator {estimator!r}: one of {', '.join(ESTIMATORS)}")


def circuit_cost(
    n_layers: int,
    n_heads: int,
    rows: int,
    tokens_per_row: int,
    target_layers: Sequence[int],
    *,
    paths: Sequence[str] = ("k", "q", "v", "total"),
) -> Cost:
    """An exhaustive circuit: every head of every earlier layer path-patched into each target.

    A ``k``/``q``/``v`` run into a target at layer ``l`` runs blocks ``l .. n_layers - 1``; a
    ``total`` run of a source at layer ``s`` runs ``s ..`` and serves every target; one clean pass
    runs first. Fractions of a pass count the blocks run.

    Args:
        n_layers: Layers of the model.
        n_heads: Heads per layer.
        rows: Rows each run covers.
        tokens_per_row: Tokens per row.
        target_layers: The layer of each target head (one entry per target).
        paths: The paths patched.
    """
    runs = 1.0
    kqv = sum(1 for p in paths if p != "total")
    for layer in target_layers:
        runs += kqv * layer * n_heads * (n_layers - layer) / n_layers
    if "total" in paths and target_layers:
        runs += sum(n_heads * (n_layers - s) / n_layers for s in range(max(target_layers)))
    return passes(rows, tokens_per_row, forward=runs)


def exact_scores_circuit_cost(
    n_layers: int,
    n_heads: int,
    rows: int,
    tokens_per_row: int,
    target_layers: Sequence[int],
    *,
    exact_losses: int = 8,
) -> Cost:
    """The default circuit (``--search exhaustive``, ``--exact-losses N``) on every path: every edge's score
    exact, its loss estimated, the loss of the ``exact_losses`` strongest edges per target and path exact.

    The clean pass; one forward and one backward pass for the loss gradients; a one-block probe per
    ``k``/``q``/``v`` edge; a ``total`` run per source stopped after the last target's layer; then the
    exact runs: per target and path the ``exact_losses`` largest estimated loss effects and the
    ``exact_losses`` largest score effects (``v``: the loss alone), ``k``/``q``/``v`` from the target's
    layer on and ``total`` counted as if from layer 0 (an upper bound), at most every edge.
    """
    last = max(target_layers, default=0)
    probes = sum(3 * layer * n_heads for layer in target_layers) / n_layers
    stopped = sum(n_heads * (last + 1 - s) for s in range(last)) / n_layers
    exact = 0.0
    for layer in target_layers:
        per_path = [min(2 * exact_losses, layer * n_heads)] * 2 + [min(exact_losses, layer * n_heads)]
        exact += sum(per_path) * (n_layers - layer) / n_layers
    exact += min(2 * exact_losses * len(target_layers), last * n_heads)
    forward = 1 + 1 + probes + stopped + exact
    return Cost(float(forward * rows), float(rows), float((forward + 1) * rows * tokens_per_row))


def pruned_circuit_cost(
    n_layers: int,
    n_heads: int,
    rows: int,
    tokens_per_row: int,
    target_layers: Sequence[int],
    *,
    verify: int = 10,
    largest: int | None = None,
    rounds: int = 1,
) -> Cost:
    """``circuit --search estimate`` on every path: estimate every edge, path-patch ``verify`` per target and path
    and the ``total`` runs of the ``largest`` sources by the size of their removal, in at most ``rounds`` rounds
    (``--verify-fraction``: each further round path-patches at most ``verify`` more per target and path; how
    many it takes depends on the estimates, so a price for a number of rounds is an upper bound for that many).

    The clean pass; one forward and one backward pass for the loss gradients at the targets and at the
    sources (the ``total`` edges' loss estimate reads the same gradients); a one-block probe per
    ``k``/``q``/``v`` edge and per ``total`` edge's ``k`` and ``q`` direct paths (the same probes); one copy
    of the rows per target, run forward and backward to the last target's layer, for the ``total`` edges'
    score estimates; then the verified runs, per round: ``3 * verify`` per target from its layer on, and at
    most ``verify`` ``total`` runs per target, and once ``largest`` more (None: ``verify``), each counted as
    if it started at layer 0 (an upper bound: the real ones start at their source's layer).
    """
    n_targets, per = len(target_layers), verify * rounds
    probes = sum(3 * layer * n_heads for layer in target_layers) / n_layers
    verified = sum(3 * min(per, layer * n_heads) * (n_layers - layer) / n_layers for layer in target_layers)
    extra = verify if largest is None else largest
    total_runs = min(n_targets * per + extra, max(target_layers, default=0) * n_heads)
    scored = n_targets * (max(target_layers, default=-1) + 1) / n_layers
    forward = 1 + 1 + probes + verified + total_runs + scored
    backward = 1 + scored
    return Cost(float(forward * rows), float(backward * rows), float((forward + backward) * rows * tokens_per_row))


def scale_table(
    shapes: dict[str, tuple[int, int]], rows: int, tokens_per_row: int, *, steps: int = 8, rounds: int = 2
) -> list[dict]:
    """The exhaustive sweep against each estimator, in forward equivalents, for models of given shapes.

    Args:
        shapes: ``name -> (n_layers, n_heads)``.
        rows: Rows per variant.
        tokens_per_row: Tokens per row.
        steps: Integrated-gradient steps.
        rounds: Verification rounds priced for the pruned circuit (at most; ``--verify-fraction``).

    Returns:
        One dict per model: its shape, ``"heads"``, the sweep's and each estimator's forward
        equivalents, each estimator's fraction of the sweep, and the circuit of one target in the
        middle layer: every edge exact (:func:`circuit_cost`), the default run (every score exact,
        :func:`exact_scores_circuit_cost`) and pruned (:func:`pruned_circuit_cost`, ``verify`` 10 in at most
        ``rounds`` rounds).
    """
    table = []
    for name, (n_layers, n_heads) in shapes.items():
        sweep = sweep_cost(n_layers, n_heads, rows, tokens_per_row).forward_equivalents
        row = {"model": name, "n_layers": n_layers, "n_heads": n_heads, "heads": n_layers * n_heads, "sweep": sweep}
        for estimator in ESTIMATORS:
            cost = estimate_cost(estimator, n_layers, rows, tokens_per_row, steps=steps).forward_equivalents
            row[estimator] = cost
            row[f"{estimator}_fraction"] = round(cost / sweep, 4)
        middle = [n_layers // 2]  # one target in the middle layer
        exhaustive = circuit_cost(n_layers, n_heads, rows, tokens_per_row, middle).forward_equivalents
        default = exact_scores_circuit_cost(n_layers, n_heads, rows, tokens_per_row, middle).forward_equivalents
        pruned = pruned_circuit_cost(n_layers, n_heads, rows, tokens_per_row, middle, rounds=rounds).forward_equivalents
        row |= {"circuit_exhaustive": round(exhaustive, 1), "circuit_default": round(default, 1)}
        row |= {"circuit_pruned": round(pruned, 1), "circuit_pruned_fraction": round(pruned / exhaustive, 4)}
        row["circuit_pruned_of_default"] = round(pruned / default, 4)
        table.append(row)
    return table
