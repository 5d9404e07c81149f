"""Intervals on causal effects: a percentile bootstrap over rows, one definition for every tool.

Every causal sweep keeps each row's metric per variant (``[n_variants, batch]``, small) so an
interval costs no extra forward pass. An effect is a mean over rows of a paired difference
(variant minus baseline, row by row); its 95% interval resamples the rows with replacement
(:func:`~induction_nnsight.scores.detect.bootstrap_interval`, the routine the ``heads`` command
uses, checked against ``scipy.stats.bootstrap`` in the tests). Rows drawn with ``--seeds N``
are N independent token draws of the same distribution, pooled before resampling.

>>> rows = torch.tensor([[1.0, 2.0, 3.0, 4.0]])  # [variants, batch]
>>> mean, low, high = row_interval(rows)
>>> float(mean[0]), bool(low[0] >= 1.0), bool(high[0] <= 4.0)
(2.5, True, True)
"""

from __future__ import annotations

import torch

from ..scores.detect import bootstrap_interval

__all__ = [
    "INTERVAL_METHOD",
    "LEVEL",
    "N_BOOT",
    "distinguishable",
    "edge_intervals",
    "effect_interval",
    "recovery_interval",
    "row_interval",
]

LEVEL = 0.95
"""Coverage of every causal interval."""
N_BOOT = 1000
"""Bootstrap resamples."""
INTERVAL_METHOD = "percentile bootstrap over rows (1000 resamples, 95%); rows of all seeds pooled"
"""How the intervals are computed, as the JSON ``settings`` record it."""
_CHUNK = 2**24  # elements of one block of resampled means [n_boot, batch, columns] (64 MiB of float32)


def row_interval(
    rows: torch.Tensor, *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean over rows and its bootstrap interval, for many variants at once.

    Args:
        rows: ``[n_variants, batch]`` per-row values (NaN rows skipped).
        n_boot: Resamples.
        level: Coverage.
        seed: Seed of the resampling (the same rows are drawn for every variant).

    Returns:
        ``(mean, low, high)``, each ``[n_variants]``. With one row the interval is the value itself.
    """
    rows = rows.double()
    mean = rows.nanmean(dim=1)
    per_row = rows.T  # [batch, n_variants]
    per = max(1, _CHUNK // max(1, n_boot * per_row.shape[0]))
    lows, highs = [], []
    for start in range(0, per_row.shape[1], per):
        low, high = bootstrap_interval(per_row[:, start : start + per], n_boot=n_boot, level=level, seed=seed)
        lows.append(low)
        highs.append(high)
    if not lows:
        return mean.float(), mean.float(), mean.float()
    return mean.float(), torch.cat(lows).float(), torch.cat(highs).float()


def effect_interval(
    rows: torch.Tensor, baseline: torch.Tensor, *, n_boot: int = N_BOOT, level: float = LEVEL
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean paired difference ``rows - baseline`` over rows, with its bootstrap interval.

    Args:
        rows: ``[n_variants, batch]`` each variant's per-row metric.
        baseline: ``[batch]`` the unedited run's per-row metric (the same rows).

    Returns:
        ``(effect, low, high)``, each ``[n_variants]``.
    """
    return row_interval(rows - baseline[None], n_boot=n_boot, level=level)


def recovery_interval(
    patched: torch.Tensor, corrupted: torch.Tensor, clean: torch.Tensor, *, n_boot: int = N_BOOT, level: float = LEVEL
) -> tuple[torch.Tensor, torch.Tensor]:
    """Percentile bootstrap over rows of the recovery ``(patched - corrupted) / (clean - corrupted)``, a ratio
    of means: each resample draws rows (the same rows for the three), as
    :func:`~induction_nnsight.scores.detect.bootstrap_interval` draws them, and takes the ratio of their means.

    Args:
        patched: ``[n_variants, batch]`` the patched rows' metric.
        corrupted: ``[batch]`` the corrupted rows'.
        clean: ``[batch]`` the clean rows' (row ``i`` pairs with corrupted row ``i``).

    Returns:
        ``(low, high)``, each ``[n_variants]``; NaN with fewer than 2 rows (no interval from one row).
    """
    n = patched.shape[1]
    if n < 2:
        nan = torch.full((patched.shape[0],), float("nan"))
        return nan, nan
    generator = torch.Generator().manual_seed(0)
    picks = torch.randint(0, n, (n_boot, n), generator=generator)
    patched, corrupted, clean = patched.double(), corrupted.double(), clean.double()
    base = corrupted[picks].mean(dim=1)  # [n_boot]
    gap = clean[picks].mean(dim=1) - base
    tail = (1 - level) / 2
    lows, highs = [], []
    for start in range(0, patched.shape[0], 256):
        part = patched[start : start + 256][:, picks].mean(dim=2)  # [chunk, n_boot]
        ratios = (part - base) / gap
        lows.append(ratios.nanquantile(tail, dim=1))
        highs.append(ratios.nanquantile(1 - tail, dim=1))
    return torch.cat(lows).float(), torch.cat(highs).float()


def distinguishable(low, high) -> torch.Tensor | bool:
    """Whether an interval excludes 0 (False: the effect is not distinguishable from zero)."""
    if isinstance(low, torch.Tensor):
        return (low > 0) | (high < 0)
    return bool(low > 0 or high < 0)


def edge_intervals(result) -> tuple[list, list]:
    """Each path-patching edge's 95% intervals of its score and loss effects (paired bootstrap over rows;
    None where the edge's rows are missing, i.e. estimated).

    Args:
        result: A :class:`~induction_nnsight.causal.path_patching.PathResult` with its per-row fields.

    Returns:
        ``(score intervals, loss intervals)``: one ``(low, high)`` or None per edge (``variants[1:]``).
    """
    variants = result.variants[1:]
    clean = torch.stack([result.clean_score_rows[v.target] for v in variants]) if variants else None
    out = []
    for rows, base in ((result.score_rows, clean), (result.loss_rows, result.loss_rows[:1])):
        if not variants:
            out.append([])
            continue
        diff = rows[1:] - base
        _, low, high = row_interval(diff)
        known = ~diff.isnan().any(dim=1)
        out.append([(float(lo), float(hi)) if ok else None for lo, hi, ok in zip(low, high, known)])
    return out[0], out[1]
