"""Intervals on causal effects, for every tool: :mod:`induction_nnsight.stats`' t interval over rows.

Every causal sweep keeps each row's metric per variant (``[n_variants, batch]``, small) so an
interval costs no extra forward pass. An effect is a mean over rows of a paired difference
(variant minus baseline, row by row); its 95% interval is Student's t interval on that mean, and a
sweep's verdict "distinguishable from 0" is the t test's p-value adjusted by Benjamini-Hochberg over
every variant of the sweep (:func:`effect_q_values`). Rows drawn with ``--seeds N`` are N
independent token draws of the same distribution, pooled.

>>> rows = torch.tensor([[1.0, 2.0, 3.0, 4.0]])  # [variants, batch]
>>> mean, low, high = row_interval(rows)
>>> float(mean[0]), round(float(low[0]), 3), round(float(high[0]), 3)
(2.5, 0.446, 4.554)
"""

from __future__ import annotations

import torch

from ..stats import INTERVAL_METHOD, LEVEL, bh_adjust, mean_interval, mean_test, ratio_interval

__all__ = [
    "INTERVAL_METHOD",
    "LEVEL",
    "distinguishable",
    "edge_intervals",
    "effect_interval",
    "effect_q_values",
    "recovery_interval",
    "row_interval",
]


def row_interval(rows: torch.Tensor, *, level: float = LEVEL) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean over rows and its t interval, for many variants at once.

    Args:
        rows: ``[n_variants, batch]`` per-row values (NaN rows skipped).
        level: Coverage.

    Returns:
        ``(mean, low, high)``, each ``[n_variants]``; the interval is NaN from one row.
    """
    low, high = mean_interval(rows.T, level)
    return rows.double().nanmean(dim=1).float(), low, high


def effect_interval(
    rows: torch.Tensor, baseline: torch.Tensor, *, level: float = LEVEL
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean paired difference ``rows - baseline`` over rows, with its t interval.

    Args:
        rows: ``[n_variants, batch]`` each variant's per-row metric.
        baseline: ``[batch]`` the unedited run's per-row metric (the same rows).

    Returns:
        ``(effect, low, high)``, each ``[n_variants]``.
    """
    return row_interval(rows - baseline[None], level=level)


def effect_q_values(rows: torch.Tensor, baseline: torch.Tensor | None = None) -> torch.Tensor:
    """Benjamini-Hochberg adjusted p-values of "the effect is not 0", over every variant tested.

    Args:
        rows: ``[n_variants, batch]`` each variant's per-row metric (or its paired differences).
        baseline: ``[batch]`` the unedited run's rows, subtracted first (None: ``rows`` are the differences).

    Returns:
        ``[n_variants]`` float32: an effect is distinguishable from 0 where its value is at most
        :data:`~induction_nnsight.stats.ALPHA` (1 where it has fewer than 2 rows).
    """
    diff = rows if baseline is None else rows - baseline[None]
    return bh_adjust(mean_test(diff.T)).float()


def recovery_interval(
    patched: torch.Tensor, corrupted: torch.Tensor, clean: torch.Tensor, *, level: float = LEVEL
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval on the recovery ``(patched - corrupted) / (clean - corrupted)``, a ratio of means
    (:func:`~induction_nnsight.stats.ratio_interval`: the delta method's t interval, rows paired).

    Args:
        patched: ``[n_variants, batch]`` the patched rows' metric.
        corrupted: ``[batch]`` the corrupted rows'.
        clean: ``[batch]`` the clean rows' (row ``i`` pairs with corrupted row ``i``).

    Returns:
        ``(low, high)``, each ``[n_variants]``; NaN with fewer than 2 rows (no interval from one row).
    """
    return ratio_interval((patched - corrupted[None]).T, (clean - corrupted)[:, None], level)


def distinguishable(low, high) -> torch.Tensor | bool:
    """Whether an interval excludes 0 (False: the effect is not distinguishable from zero)."""
    if isinstance(low, torch.Tensor):
        return (low > 0) | (high < 0)
    return bool(low > 0 or high < 0)


def edge_intervals(result) -> tuple[list, list, list, list]:
    """Each path-patching edge's 95% intervals of its score and loss effects (paired t intervals over rows;
    None where the edge's rows are missing, i.e. estimated), and their Benjamini-Hochberg q-values over
    every edge path-patched (score and loss effects each a family).

    Args:
        result: A :class:`~induction_nnsight.causal.paths.patching.PathResult` with its per-row fields.

    Returns:
        ``(score intervals, loss intervals, score q-values, loss q-values)``: one ``(low, high)`` or None,
        and one float or None, per edge (``variants[1:]``).
    """
    variants = result.variants[1:]
    clean = torch.stack([result.clean_score_rows[v.target] for v in variants]) if variants else None
    out = []
    for rows, base in ((result.score_rows, clean), (result.loss_rows, result.loss_rows[:1])):
        if not variants:
            out.append(([], []))
            continue
        diff = rows[1:] - base
        _, low, high = row_interval(diff)
        known = ~diff.isnan().any(dim=1)
        q = torch.full((diff.shape[0],), float("nan"))
        q[known] = effect_q_values(diff[known])
        out.append(
            (
                [(float(lo), float(hi)) if ok else None for lo, hi, ok in zip(low, high, known)],
                [float(v) if ok else None for v, ok in zip(q, known)],
            )
        )
    return out[0][0], out[1][0], out[0][1], out[1][1]
