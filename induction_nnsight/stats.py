"""Intervals and multiple-comparison control: the one definition every verdict of the tool uses.

**Intervals.** Every interval on a mean over rows (a head's score, an ablation's or a patch's effect,
a dual-route grid, Olsson's ICL score) is Student's t interval on the row mean,
``mean +- t(1 - a/2, n - 1) * sd / sqrt(n)``, which holds its level at any row count for normal rows
(a percentile bootstrap, used before, covers far less at 4 and 8 rows:
``results/interval_coverage.json``). A ratio of two means (a
patching recovery) gets the same t interval on its linearisation (the delta method: the rows
``a - r b``, divided by the mean of ``b``). Rows of all seeds are pooled. The statistics that are not
a mean (the best score of a training checkpoint) keep a bootstrap, :func:`bootstrap_picks` drawing
its rows.

**Multiple comparisons.** Where the tool flags many heads or edges at once (distinguishable from zero,
clearly above a threshold), each test's p-value (:func:`t_p_value`, the same t statistic as the
interval) is adjusted over every test of that family by Benjamini-Hochberg (:func:`bh_adjust`): a
flag is raised where the adjusted value is at most :data:`ALPHA`, so at most 5% of the flagged are
expected to be false discoveries. Holm's family-wise adjustment (:func:`holm_adjust`) is here for
those who want it.

>>> low, high = mean_interval(torch.tensor([[1.0], [2.0], [3.0], [4.0]]))  # [batch, columns]
>>> round(float(low[0]), 3), round(float(high[0]), 3)
(0.446, 4.554)
>>> [round(p, 6) for p in bh_adjust(torch.tensor([0.01, 0.04, 0.03])).tolist()]
[0.03, 0.04, 0.04]
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = [
    "ALPHA",
    "CORRECTION",
    "INTERVAL_METHOD",
    "LEVEL",
    "bh_adjust",
    "bootstrap_picks",
    "holm_adjust",
    "mean_interval",
    "mean_test",
    "ratio_interval",
    "rows_to_resolve",
    "split_half_reliability",
    "t_cdf",
    "t_p_value",
    "t_quantile",
]

LEVEL = 0.95
"""Coverage of every interval."""
ALPHA = 0.05
"""False-discovery rate of every family of flags."""
INTERVAL_METHOD = "t interval on the row mean (95%, n - 1 degrees of freedom); rows of all seeds pooled"
"""How the intervals are computed, as the JSON ``settings`` record it."""
CORRECTION = "Benjamini-Hochberg over every test of the family, false-discovery rate 0.05"
"""How flags over many heads or edges are corrected, as the JSON ``settings`` record it."""


def t_cdf(t: torch.Tensor, df: int | torch.Tensor) -> torch.Tensor:
    """Student's t distribution function ``P(T <= t)`` for whole degrees of freedom (float64).

    The closed form of Abramowitz and Stegun 26.7.3-4: with ``theta = atan(|t| / sqrt(df))``,
    ``P(|T| < |t|)`` is a finite sum of powers of ``cos(theta)``, exact to float64 rounding.

    Args:
        t: Values (any shape; infinities allowed).
        df: Degrees of freedom, whole numbers >= 1 (an int, or a tensor broadcast with ``t``).
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    df = torch.as_tensor(df).expand(t.shape).long()
    out = torch.full_like(t, float("nan"))
    for d in df.unique().tolist():
        mask = df == d
        out[mask] = _t_cdf(t[mask], int(d))
    return out


def _t_cdf(t: torch.Tensor, df: int) -> torch.Tensor:
    theta = torch.atan(t.abs() / math.sqrt(df))
    cos2 = torch.cos(theta) ** 2
    if df % 2:  # (2 / pi) (theta + sin cos [1 + (2/3) cos^2 + (2 4)/(3 5) cos^4 + ...]), df - 2 the last power
        term = torch.cos(theta)
        total = term.clone() if df > 1 else torch.zeros_like(t)
        for k in range(1, (df - 1) // 2):
            term = term * (2 * k) / (2 * k + 1) * cos2
            total = total + term
        inside = (2 / math.pi) * (theta + torch.sin(theta) * total)
    else:  # sin [1 + (1/2) cos^2 + (1 3)/(2 4) cos^4 + ...], df - 2 the last power
        term = torch.ones_like(t)
        total = term.clone()
        for k in range(1, df // 2):
            term = term * (2 * k - 1) / (2 * k) * cos2
            total = total + term
        inside = torch.sin(theta) * total
    return torch.where(t >= 0, 0.5 + inside / 2, 0.5 - inside / 2)


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` (whole, >= 1) degrees of freedom, by bisection of :func:`t_cdf`."""
    if not 0 < p < 1:
        raise ValueError(f"a quantile needs 0 < p < 1, not {p}")
    low, high = -1.0, 1.0
    while float(t_cdf(torch.tensor(low, dtype=torch.float64), df)) > p:
        low *= 2
    while float(t_cdf(torch.tensor(high, dtype=torch.float64), df)) < p:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if float(t_cdf(torch.tensor(mid, dtype=torch.float64), df)) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-13 * max(1.0, abs(mid)):
            break
    return (low + high) / 2


def _moments(per_row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean, sd, n)`` over dim 0, NaN rows skipped per column (float64; sd NaN below 2 rows)."""
    per_row = per_row.double()
    known = ~per_row.isnan()
    n = known.sum(0)
    mean = per_row.nanmean(0)
    centred = torch.where(known, per_row - mean, torch.zeros_like(per_row))
    var = (centred**2).sum(0) / (n - 1).clamp(min=1)
    sd = torch.where(n >= 2, var.sqrt(), torch.full_like(var, float("nan")))
    return mean, sd, n


def _half_width(sd: torch.Tensor, n: torch.Tensor, level: float) -> torch.Tensor:
    counts = n.unique()  # a few distinct row counts: one quantile each, then one gather
    quantiles = torch.tensor(
        [t_quantile(0.5 + level / 2, int(k) - 1) if k >= 2 else float("nan") for k in counts.tolist()],
        dtype=torch.float64,
    )
    q = quantiles[torch.searchsorted(counts, n.flatten())].reshape(n.shape)
    return q * sd / n.clamp(min=1).sqrt()


def mean_interval(per_row: torch.Tensor, level: float = LEVEL) -> tuple[torch.Tensor, torch.Tensor]:
    """Student's t interval on the mean over rows, for every column at once.

    Args:
        per_row: ``[batch, ...]`` per-row values (NaN rows skipped, column by column).
        level: Coverage.

    Returns:
        ``(low, high)``, each ``[...]`` (float32); NaN where a column has fewer than 2 rows.
    """
    mean, sd, n = _moments(per_row)
    half = _half_width(sd, n, level)
    return (mean - half).float(), (mean + half).float()


def t_p_value(mean: torch.Tensor, sd: torch.Tensor, n: torch.Tensor, null: float = 0.0, *, side: str = "two-sided"):
    """P-value of the t test of a row mean against ``null`` (float64, same shape as ``mean``).

    Args:
        mean: Row means.
        sd: Row standard deviations (``n - 1`` in the denominator).
        n: Rows.
        null: The value under the null hypothesis.
        side: ``"two-sided"`` (the mean differs from ``null``) or ``"greater"`` (it exceeds it).

    Returns:
        P-values; 1 where fewer than 2 rows (nothing to test); a mean off ``null`` with no spread gets 0.
    """
    mean, sd, n = mean.double(), sd.double(), torch.as_tensor(n)
    diff = mean - null
    t = torch.where(sd > 0, diff / (sd / n.clamp(min=1).sqrt()), diff.sign() * math.inf)
    t = torch.where(diff == 0, torch.zeros_like(t), t)
    df = (n - 1).clamp(min=1)
    if side == "two-sided":
        p = 2 * t_cdf(-t.abs(), df)
    elif side == "greater":
        p = t_cdf(-t, df)
    else:
        raise ValueError(f"side is 'two-sided' or 'greater', not {side!r}")
    return torch.where((n >= 2) & ~p.isnan(), p.clamp(max=1.0), torch.ones_like(p))


def mean_test(per_row: torch.Tensor, null: float = 0.0, *, side: str = "two-sided") -> torch.Tensor:
    """:func:`t_p_value` of each column's row mean (``per_row`` ``[batch, ...]``, NaN rows skipped)."""
    mean, sd, n = _moments(per_row)
    return t_p_value(mean, sd, n, null, side=side)


def ratio_interval(
    numerator: torch.Tensor, denominator: torch.Tensor, level: float = LEVEL
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval on a ratio of row means ``mean(a) / mean(b)`` (the delta method's t interval).

    The ratio ``r`` is linearised row by row: ``(a - r b) / mean(b)`` has mean 0 and the ratio's
    sampling spread, so ``r +- t * sd(a - r b) / (sqrt(n) |mean(b)|)``.

    Args:
        numerator: ``[batch, ...]`` rows ``a``.
        denominator: ``[batch, ...]`` rows ``b`` (broadcast with ``a``), row ``i`` paired with ``a``'s.
        level: Coverage.

    Returns:
        ``(low, high)`` (float32); NaN with fewer than 2 rows.
    """
    a, b = torch.broadcast_tensors(numerator.double(), denominator.double())
    ratio = a.mean(0) / b.mean(0)
    _, sd, n = _moments(a - ratio * b)
    half = _half_width(sd, n, level) / b.mean(0).abs()
    return (ratio - half).float(), (ratio + half).float()


def rows_to_resolve(mean: float, sd: float, level: float = LEVEL, most: int = 100_000) -> float:
    """The fewest rows whose t interval would exclude 0 for an effect of this mean and row spread.

    The smallest ``n >= 2`` with ``t(1 - a/2, n - 1) * sd / sqrt(n) < |mean|``: how many rows a
    question needs if the effect is as large as measured (an estimate, as noisy as ``mean`` and ``sd``).

    Returns:
        ``n`` as a float; NaN where the mean is 0 or the spread unknown, infinite beyond ``most`` rows.

    Example:
        >>> rows_to_resolve(1.0, 1.0)  # an effect of one standard deviation: 7 rows
        7.0
    """
    if not (mean == mean and sd == sd) or mean == 0:
        return float("nan")
    low, high = 2, most
    if t_quantile(0.5 + level / 2, high - 1) * sd / math.sqrt(high) >= abs(mean):
        return float("inf")
    while low < high:  # the half-width falls with n: bisect
        mid = (low + high) // 2
        if t_quantile(0.5 + level / 2, mid - 1) * sd / math.sqrt(mid) < abs(mean):
            high = mid
        else:
            low = mid + 1
    return float(low)


def split_half_reliability(per_row: torch.Tensor) -> float:
    """How far a table of means would repeat on new rows: the split-half reliability over its columns.

    The rows are split into even and odd halves; the Pearson correlation ``r`` of the two halves' means
    across every column (every head) is stepped up to the full row count by Spearman-Brown,
    ``2 r / (1 + r)``. Near 1: the table's ranking is stable; near 0: beyond its largest entries it is
    row noise.

    Args:
        per_row: ``[batch, ...]`` per-row values (at least 2 rows; NaN ignored).

    Returns:
        The reliability (NaN with fewer than 2 rows or constant columns).

    Example:
        >>> signal = torch.arange(6.0)  # six heads of distinct true scores
        >>> rows = signal + 0.01 * torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
        >>> round(split_half_reliability(rows), 3)
        1.0
    """
    flat = per_row.double().flatten(1)
    if flat.shape[0] < 2:
        return float("nan")
    a, b = flat[0::2].nanmean(0), flat[1::2].nanmean(0)
    known = ~(a.isnan() | b.isnan())
    a, b = a[known] - a[known].mean(), b[known] - b[known].mean()
    r = float((a * b).sum() / ((a * a).sum() * (b * b).sum()).sqrt())
    return 2 * r / (1 + r) if r == r and r > -1 else float("nan")


def _adjusted(p: torch.Tensor, step) -> torch.Tensor:
    """``p`` adjusted by ``step(sorted p-values, m) -> sorted adjusted values`` over its known entries."""
    flat = p.double().flatten()
    known = ~flat.isnan()
    values = flat[known]
    out = torch.full_like(flat, float("nan"))
    if values.numel():
        order = values.argsort()
        adjusted = torch.empty_like(values)
        adjusted[order] = step(values[order], values.numel()).clamp(max=1.0)
        out[known] = adjusted
    return out.reshape(p.shape)


def bh_adjust(p: torch.Tensor) -> torch.Tensor:
    """Benjamini-Hochberg adjusted p-values over every entry of ``p`` (any shape, NaN ignored), as
    ``scipy.stats.false_discovery_control`` computes them: flag where the result is at most the rate."""

    def step(values: torch.Tensor, m: int) -> torch.Tensor:  # m p_(k) / k, made monotone from the largest down
        ranked = values * m / torch.arange(1, m + 1, dtype=torch.float64)
        return ranked.flip(0).cummin(0).values.flip(0)

    return _adjusted(p, step)


def holm_adjust(p: torch.Tensor) -> torch.Tensor:
    """Holm's step-down adjusted p-values over every entry of ``p`` (family-wise error; NaN ignored)."""
    return _adjusted(p, lambda v, m: (v * torch.arange(m, 0, -1, dtype=torch.float64)).cummax(0).values)


def bootstrap_picks(n_rows: int, n_boot: int, seed: int = 0) -> torch.Tensor:
    """``[n_boot, n_rows]`` row indices drawn with replacement: the one resampling of every bootstrap."""
    return torch.randint(0, n_rows, (n_boot, n_rows), generator=torch.Generator().manual_seed(seed))
