"""Dense checkpoints placed from the data: where a coarse pass's best induction score rises.

``induction-nnsight train`` (``--dense auto``, the default) first trains with log-spaced checkpoints
only, then scores them with one heads pass each on ``dynamics``' default probe
(:func:`coarse_scores`), takes the extent of the best induction score's rise (from the last
checkpoint at or below 10% of the net rise to the first at or above 90%,
:func:`~induction_nnsight.dynamics.phase.rise_extent`) and places ``N`` checkpoints evenly inside it
(:func:`dense_window`); training again from the checkpoint at the window's start saves them
(:func:`~induction_nnsight.training.loop.train_window`). No step is known in advance: a run whose
score never rises gets its dense checkpoints wherever its noise is highest, and the phase-change test
must still say none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..ndif.execution import Execution
from .checkpoints import find_checkpoints
from .phase import rise_extent
from .scoring import ProbeSettings, score_checkpoints

__all__ = ["RULE", "coarse_scores", "dense_window"]

RULE = (
    "dense checkpoints evenly inside the coarse pass's rise of the best induction score (from the last "
    "checkpoint at or below 10% of the net rise to the first at or above 90%), on dynamics' default probe"
)
"""The placement rule, as the results record it."""


def dense_window(steps: Sequence[int], best: Sequence[float], n: int) -> dict:
    """Where to place ``n`` dense checkpoints, from a coarse pass's best induction scores.

    Args:
        steps: The coarse checkpoints' steps, increasing.
        best: The best induction score at each.
        n: How many checkpoints to place.

    Returns:
        ``{"start", "end", "steps"}``: the window (:func:`~induction_nnsight.dynamics.phase.rise_extent`
        of the series) and the ``n`` steps spaced evenly strictly inside it, rounded, without those the
        coarse pass has (fewer when the window is narrower than ``n + 1`` steps; none when the score
        never rises).

    Example:
        >>> dense_window([0, 10, 100, 1000], [0.02, 0.03, 0.6, 0.62], 4)
        {'start': 10, 'end': 100, 'steps': [28, 46, 64, 82]}
    """
    extent = rise_extent(steps, best)
    start, end = extent["start"], extent["end"]
    placed = {round(start + (end - start) * k / (n + 1)) for k in range(1, n + 1)}
    return {"start": start, "end": end, "steps": sorted(s for s in placed if start < s < end and s not in set(steps))}


def coarse_scores(
    checkpoints: Sequence[str | Path], probe: ProbeSettings | None = None, *, progress: bool = False
) -> tuple[list[int], list[float]]:
    """The steps and best induction scores of the coarse pass's checkpoints (one heads pass each, nothing kept).

    Args:
        checkpoints: The coarse pass's checkpoint directories (``checkpoint-STEP/``).
        probe: The probe (None: ``dynamics``' default).
        progress: One line per checkpoint on stderr.

    Returns:
        ``([checkpoint] steps, [checkpoint] best induction score)``, by step.
    """
    scored = score_checkpoints(
        find_checkpoints(list(checkpoints)), probe or ProbeSettings(), out=None, execution=Execution(progress=progress)
    )
    return scored.steps, [float(v) for v in scored.best()[0]]
