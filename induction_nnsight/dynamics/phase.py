"""The phase change: where the best induction score rises most steeply between checkpoints."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..scores.ranking import RANK_DECIMALS, rank_heads


def best_heads(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best score and its flat head index at each step, ranked by :func:`~induction_nnsight.scores.ranking.rank_heads`
    (near-ties by layer and head; NaN scores count as lowest).

    Args:
        scores: ``[step, n_layers, n_heads]``.

    Returns:
        ``([step] best score, [step] index layer * n_heads + head)``.
    """
    n_heads = scores.shape[-1]
    index = torch.tensor(
        [layer * n_heads + head for layer, head in ((rank_heads(step, 1) or [(0, 0)])[0] for step in scores)],
        dtype=torch.long,
    )
    best = scores.flatten(1).nan_to_num(float("-inf")).gather(1, index[:, None])[:, 0]
    return best, index


def phase_change(steps: Sequence[int], best: Sequence[float]) -> dict | None:
    """The steepest rise of the best induction score between consecutive checkpoints.

    The checkpoints are log-spaced in step, so the rise is taken per interval (not per step):
    each interval is one tick of the log axis the scores are read on.

    Args:
        steps: Checkpoint steps, increasing.
        best: The best induction score at each step.

    Returns:
        ``{"step", "before", "after", "rise", "score_before", "score_at"}``: ``step`` is the first
        checkpoint after the steepest rise, ``before`` the one before it, ``after`` the one after it
        (None at the last); None with fewer than two checkpoints.

    Example:
        >>> phase_change([0, 10, 100, 1000], [0.02, 0.05, 0.6, 0.7])["step"]
        100
    """
    if len(steps) < 2:
        return None
    rises = [b - a for a, b in zip(best[:-1], best[1:])]
    # the one ranking rule: rises rounded to RANK_DECIMALS, near-ties to the earliest
    i = max(range(len(rises)), key=lambda k: (round(rises[k], RANK_DECIMALS) if rises[k] == rises[k] else -1e9, -k))
    return {
        "step": int(steps[i + 1]),
        "before": int(steps[i]),
        "after": int(steps[i + 2]) if i + 2 < len(steps) else None,
        "rise": float(rises[i]),
        "score_before": float(best[i]),
        "score_at": float(best[i + 1]),
    }
