"""The phase change, with a null: a rise of the best induction score between two checkpoints that is
large against the noise, or none.

The test (stated in ``docs/dynamics.md``):

1. Each checkpoint's best induction score gets a 95% interval from a bootstrap over the probe rows
   (:func:`bootstrap_best`). The rows are resampled *paired* (one draw of row indices for every
   checkpoint, since every checkpoint reads the same rows), the best head is chosen anew in each
   replicate, and the standard deviation of each rise between consecutive checkpoints is read off
   the same replicates: the *row noise* of that rise.
2. The *checkpoint-to-checkpoint noise* is ``1.4826 x`` the median absolute rise over the other
   intervals (a robust standard deviation of the rises; a smooth drift makes it large, a flat
   series with one jump leaves it small).
3. The steepest rise is a phase change only when it exceeds ``NOISE_MULTIPLE`` (5) times the larger
   of the two noises. Otherwise there is none: ``phase_change`` is ``None`` and the test's ``note``
   says so in one line.

A detected change also gets its extent: the checkpoints from the last one below 10% of the net rise
(first checkpoint to the highest) to the first one above 90% of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..scores.ranking import RANK_DECIMALS, rank_heads
from ..strict_json import rounded

NOISE_MULTIPLE = 5.0
"""A rise counts as a phase change only above this multiple of the noise."""
MAD_SCALE = 1.4826
"""Median absolute deviation -> standard deviation of a normal sample."""
N_BOOTSTRAP = 1000
"""Bootstrap replicates over the probe rows."""


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


def bootstrap_best(
    rows: torch.Tensor, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """95% percentile intervals of each checkpoint's best score, and the row noise of each rise.

    Args:
        rows: ``[step, batch, n_layers, n_heads]`` per-row scores on the same probe rows at every step.
        n_bootstrap: Replicates.
        seed: Seed of the resampling.

    Returns:
        ``([step] ci_low, [step] ci_high, [step - 1] standard deviation of each rise)``; with one row
        the intervals are the point and the deviations 0.

    Example:
        >>> rows = torch.zeros(2, 4, 1, 1)
        >>> rows[1, :, 0, 0] = torch.tensor([0.5, 0.6, 0.7, 0.8])
        >>> low, high, sd = bootstrap_best(rows, 200)
        >>> bool(0.5 <= low[1] < high[1] <= 0.8), bool(sd[0] > 0)
        (True, True)
    """
    n_steps, batch = rows.shape[:2]
    flat = rows.flatten(2).nan_to_num(float("-inf"))  # [step, batch, heads]
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, batch, (n_bootstrap, batch), generator=generator)  # [boot, batch]
    means = flat[:, picks].mean(2)  # [step, boot, heads]
    best = means.max(-1).values  # [step, boot]: the best head chosen anew in each replicate
    low, high = torch.quantile(best.double(), torch.tensor([0.025, 0.975], dtype=torch.float64), dim=1)
    rises = best[1:] - best[:-1]  # [step - 1, boot]
    spread = rises.std(1) if n_bootstrap > 1 and n_steps > 1 else torch.zeros(max(n_steps - 1, 0))
    return low.float(), high.float(), spread


def _rounded(value: float) -> float | None:
    """A test statistic as the results hold it: 4 decimals, null where undefined."""
    return rounded(value, 4)


def _extent(steps: Sequence[int], best: Sequence[float]) -> dict:
    """From the last checkpoint below 10% of the net rise to the first above 90% of it."""
    top = max(range(len(best)), key=lambda k: (best[k], -k))
    base, rise = best[0], best[top] - best[0]
    low_line, high_line = base + 0.1 * rise, base + 0.9 * rise
    end = next(k for k in range(top + 1) if best[k] >= high_line)
    start = max((k for k in range(end) if best[k] <= low_line), default=0)
    return {"start": int(steps[start]), "end": int(steps[end]), "checkpoints": end - start + 1}


def phase_test(
    steps: Sequence[int],
    best: Sequence[float],
    rise_sd: Sequence[float] | None = None,
    multiple: float = NOISE_MULTIPLE,
) -> dict:
    """The phase-change test: is the steepest rise of the best score large against the noise?

    Args:
        steps: Checkpoint steps, increasing.
        best: The best induction score at each step.
        rise_sd: ``[step - 1]`` row noise of each rise (:func:`bootstrap_best`); None counts it as 0.
        multiple: How many times the noise the rise must exceed.

    Returns:
        ``{"change", "note", "largest_rise", "noise", "row_noise", "checkpoint_noise", "multiple",
        "method"}``: ``change`` is :func:`phase_change`'s dict or None; ``note`` one line saying what was
        found.

    Example:
        >>> flat = [0.02, 0.021, 0.019, 0.02, 0.6, 0.61, 0.6]
        >>> phase_test(range(7), flat)["change"]["step"], phase_test(range(7), [0.02 * k for k in range(7)])["change"]
        (4, None)
    """
    steps, best = [int(s) for s in steps], [float(b) for b in best]
    test = {"multiple": multiple, "method": "paired row bootstrap + median absolute rise (docs/dynamics.md)"}
    if len(steps) < 3:
        return {**test, "change": None, "note": f"no phase-change test on {len(steps)} checkpoints: it needs 3"}
    rises = [b - a for a, b in zip(best[:-1], best[1:])]
    # the one ranking rule: rises rounded to RANK_DECIMALS, near-ties to the earliest
    i = max(range(len(rises)), key=lambda k: (round(rises[k], RANK_DECIMALS) if rises[k] == rises[k] else -1e9, -k))
    others = torch.tensor([abs(r) for k, r in enumerate(rises) if k != i and r == r])
    checkpoint_noise = MAD_SCALE * float(others.median()) if len(others) else 0.0
    row_noise = float(rise_sd[i]) if rise_sd is not None else 0.0
    noise = max(checkpoint_noise, row_noise)
    found = rises[i] > 0 and rises[i] > multiple * noise
    where = f"between steps {steps[i]} and {steps[i + 1]}"
    test.update(
        largest_rise=_rounded(rises[i]),
        noise=_rounded(noise),
        row_noise=_rounded(row_noise),
        checkpoint_noise=_rounded(checkpoint_noise),
    )
    if not found:
        note = (
            f"no phase change found: the largest rise of the best induction score ({rises[i]:.4f}, {where}) "
            f"is under {multiple:g} x the noise ({noise:.4f})"
        )
        return {**test, "change": None, "note": note}
    change = {
        "step": steps[i + 1],
        "before": steps[i],
        "after": steps[i + 2] if i + 2 < len(steps) else None,
        "rise": float(rises[i]),
        "score_before": best[i],
        "score_at": best[i + 1],
        "signal_to_noise": float(rises[i] / noise) if noise > 0 else None,
        **_extent(steps, best),
    }
    ratio = f"{rises[i] / noise:.0f} x the noise" if noise > 0 else "with no noise"
    note = f"phase change {where}: the best induction score rises by {rises[i]:.3f}, {ratio}"
    return {**test, "change": change, "note": note}


def phase_change(steps: Sequence[int], best: Sequence[float], rise_sd: Sequence[float] | None = None) -> dict | None:
    """The phase change of :func:`phase_test`, or None when its rise is not large against the noise.

    Returns:
        ``{"step", "before", "after", "rise", "score_before", "score_at", "signal_to_noise", "start",
        "end", "checkpoints"}``: ``step`` is the first checkpoint after the steepest rise, ``before`` the one
        before it, ``after`` the one after it (None at the last); ``start``/``end``/``checkpoints`` the
        extent of the whole rise (10% to 90%) and how many checkpoints resolve it.

    Example:
        >>> phase_change([0, 10, 100, 300, 1000], [0.02, 0.021, 0.6, 0.61, 0.6])["step"]
        100
    """
    return phase_test(steps, best, rise_sd)["change"]
