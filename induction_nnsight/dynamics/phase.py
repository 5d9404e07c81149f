"""The phase change, with a null: an abrupt rise of the best induction score against the training
step, or none.

The test (stated in ``docs/dynamics.md``):

1. Each checkpoint's best induction score gets a 95% interval from a bootstrap over the probe rows
   (:func:`bootstrap_best`): the rows are resampled *paired* (one draw of row indices for every
   checkpoint, since every checkpoint reads the same rows) and the best head is chosen anew in each
   replicate. The interval's half-width over 1.96 is that checkpoint's *row noise*.
2. Two families are fit by least squares on the *step* axis (so uneven checkpoint spacing counts):
   the *smooth* models ``a + b f(step)`` with ``f`` the step, its square root or ``log(1 + step)``
   (:data:`SMOOTH_MODELS`, any sign of ``b``), and the *abrupt* model, a rising sigmoid
   ``a + b / (1 + exp(-(step - centre) / scale))`` (``b >= 0``) whose 10%-90% width is at most
   :data:`MAX_WIDTH` of the run's span (down to a plain step) and whose rise lies inside the run;
   its centre and width come from a grid (:func:`abrupt_bases`), ``a`` and ``b`` in closed form.
3. The statistic is the BIC of the best smooth model (3 parameters with the noise variance) minus
   the BIC of the abrupt one (5), with Gaussian residuals whose variance is the fit's mean squared
   residual, floored at the median row noise squared (and at :data:`SCORE_RESOLUTION` squared).
   The floor only ever lowers the statistic.
4. The threshold is :data:`MIN_THRESHOLD` (0: the abrupt model must have the lower BIC), raised to
   the ``1 - ALPHA`` quantile of the statistic on simulated smooth series at the same steps where
   that is higher (:func:`null_statistics`: ramps from 0.02 to 0.62 linear, square-root and
   logarithmic in step, and a flat series, each with Gaussian noise of standard deviation 0 to
   0.03; :data:`NULL_DRAWS` draws a condition, seeded). The test reports the threshold and the
   simulated false-positive rate at it (the highest over the null conditions).
5. The fitted sigmoid's rise (its ``b``, the ``amplitude``) must be at least :data:`MIN_AMPLITUDE`
   (0.1 in induction-score units): a head that formed moves the best score by more than that, and a
   rise too small to be a formed head is no phase change however well a sigmoid fits it (a run
   whose best score creeps from 0.02 to 0.05 can still beat every smooth curve in BIC). The rule can
   only lower the false-positive rate of step 4.

Where both hold the change is the fitted sigmoid's centre; otherwise ``phase_change`` is ``None``
and the test's ``note`` says why in one line.

A detected change also gets its extent: the checkpoints from the last one below 10% of the net rise
(first checkpoint to the highest) to the first one above 90% of it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from ..scores.ranking import rank_heads
from ..stats import bootstrap_picks
from ..strict_json import rounded

N_BOOTSTRAP = 1000
"""Bootstrap replicates over the probe rows."""
Z95 = 1.959964
"""Half-width of a 95% normal interval in standard deviations: interval -> row noise."""
SMOOTH_MODELS = ("linear", "sqrt", "log")
"""The smooth models ``a + b f(step)``: ``f`` the step, its square root, ``log(1 + step)``."""
SMOOTH_PARAMETERS = 3
"""Offset, slope and noise variance."""
ABRUPT_PARAMETERS = 5
"""Offset, rise, centre, width and noise variance."""
MAX_WIDTH = 0.25
"""The abrupt model's 10%-90% width is at most this fraction of the run's span."""
N_WIDTHS = 16
"""Widths on the grid: a plain step and 15 log-spaced from 1/1000 of :data:`MAX_WIDTH` to it."""
CENTRES_PER_INTERVAL = 4
"""Sigmoid centres on the grid inside each interval between consecutive checkpoints."""
SCORE_RESOLUTION = 1e-4
"""Lowest residual standard deviation the likelihood assumes (scores are ranked at 4 decimals)."""
MIN_THRESHOLD = 0.0
"""The BIC difference must exceed this (0: the abrupt model has the lower BIC), or the null's quantile."""
ALPHA = 0.05
"""The false-positive rate the threshold holds on the simulated smooth series."""
MIN_AMPLITUDE = 0.1
"""The least rise of the fitted sigmoid (induction-score units) a phase change must have: a formed head's."""
NULL_SHAPES = ("linear", "sqrt", "log", "flat")
"""The simulated smooth series: ramps in step from ``NULL_RAMP[0]`` to ``NULL_RAMP[1]``, and a flat one."""
NULL_RAMP = (0.02, 0.62)
"""Start and end of the simulated ramps (a flat series stays at the start)."""
NULL_NOISE = (0.0, 0.001, 0.003, 0.01, 0.03)
"""Standard deviations of the Gaussian noise added to the simulated series."""
NULL_DRAWS = 1000
"""Simulated series per noisy condition (a noiseless one is drawn once)."""
NULL_SEED = 0
"""Seed of the simulated noise."""
_WIDTH_TO_SCALE = 2 * math.log(9)
"""A sigmoid's 10%-90% width over its scale."""
_CHUNK = 2000
"""Series fit at once (memory: chunk x grid doubles)."""


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
    picks = bootstrap_picks(batch, n_bootstrap, seed)  # [boot, batch]
    means = flat[:, picks].mean(2)  # [step, boot, heads]
    best = means.max(-1).values  # [step, boot]: the best head chosen anew in each replicate
    low, high = torch.quantile(best.double(), torch.tensor([0.025, 0.975], dtype=torch.float64), dim=1)
    rises = best[1:] - best[:-1]  # [step - 1, boot]
    spread = rises.std(1) if n_bootstrap > 1 and n_steps > 1 else torch.zeros(max(n_steps - 1, 0))
    return low.float(), high.float(), spread


def _rounded(value: float) -> float | None:
    """A test statistic as the results hold it: 4 decimals, null where undefined."""
    return rounded(value, 4)


def rise_extent(steps: Sequence[int], best: Sequence[float]) -> dict:
    """The extent of a series' rise: from the last checkpoint at or below 10% of the net rise (the first
    checkpoint to the highest) to the first at or above 90% of it.

    Returns:
        ``{"start", "end", "checkpoints"}``: the two steps, and how many checkpoints lie from one to the
        other (both counted); ``start == end`` when the series never rises above its first value.

    Example:
        >>> rise_extent([0, 10, 20, 30, 40], [0.0, 0.05, 0.5, 0.95, 1.0])
        {'start': 10, 'end': 30, 'checkpoints': 3}
    """
    top = max(range(len(best)), key=lambda k: (best[k], -k))
    base, rise = best[0], best[top] - best[0]
    low_line, high_line = base + 0.1 * rise, base + 0.9 * rise
    end = next(k for k in range(top + 1) if best[k] >= high_line)
    start = max((k for k in range(end) if best[k] <= low_line), default=0)
    return {"start": int(steps[start]), "end": int(steps[end]), "checkpoints": end - start + 1}


def _step_axis(steps: Sequence[int]) -> torch.Tensor:
    """``[n]`` the steps from the first, float64."""
    t = torch.tensor([float(s) for s in steps], dtype=torch.float64)
    return t - t[0]


def smooth_bases(steps: Sequence[int]) -> torch.Tensor:
    """``[3, n]`` the smooth models' ``f(step)`` (:data:`SMOOTH_MODELS`), steps counted from the first."""
    t = _step_axis(steps)
    return torch.stack([t, t.sqrt(), t.log1p()])


@functools.lru_cache(maxsize=16)
def abrupt_bases(steps: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The abrupt model's grid: sigmoids whose rise (10% to 90%) lies inside the run.

    Centres: :data:`CENTRES_PER_INTERVAL` evenly inside each interval between consecutive checkpoints;
    10%-90% widths: 0 (a step) and log-spaced up to :data:`MAX_WIDTH` of the span.

    Args:
        steps: Checkpoint steps, increasing.

    Returns:
        ``([grid, n] sigmoid at each step, [grid] centre, [grid] 10%-90% width)``.

    Example:
        >>> bases, centres, widths = abrupt_bases((0, 10, 20))
        >>> bases.shape[1], bool((centres > 0).all() and (centres < 20).all()), float(widths.max()) <= 5
        (3, True, True)
    """
    t = torch.tensor([float(s) for s in steps], dtype=torch.float64)
    fractions = (torch.arange(CENTRES_PER_INTERVAL, dtype=torch.float64) + 0.5) / CENTRES_PER_INTERVAL
    centres = (t[:-1, None] + (t[1:] - t[:-1])[:, None] * fractions).flatten()
    top = MAX_WIDTH * float(t[-1] - t[0])
    widths = torch.cat(
        [torch.zeros(1, dtype=torch.float64), top * torch.logspace(-3, 0, N_WIDTHS - 1, dtype=torch.float64)]
    )
    centre, width = (grid.flatten() for grid in torch.meshgrid(centres, widths, indexing="ij"))
    inside = (centre - width / 2 >= t[0]) & (centre + width / 2 <= t[-1])
    centre, width = centre[inside], width[inside]
    scale = (width / _WIDTH_TO_SCALE).clamp_min(1e-12)[:, None]
    bases = torch.where(
        width[:, None] > 0, torch.sigmoid((t - centre[:, None]) / scale), (t > centre[:, None]).double()
    )
    return bases, centre, width


def _best_fits(
    series: torch.Tensor, bases: torch.Tensor, rises_only: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least squares of each series on ``a + b basis`` for every basis, the best basis kept.

    Args:
        series: ``[draw, n]``.
        bases: ``[model, n]``.
        rises_only: Constrain ``b >= 0`` (a basis with ``b < 0`` fits as the mean alone).

    Returns:
        ``([draw] residual sum of squares, [draw] best basis, [draw] its b)``.
    """
    centred = series - series.mean(-1, keepdim=True)
    total = (centred**2).sum(-1)
    shape = bases - bases.mean(-1, keepdim=True)
    norm = (shape**2).sum(-1).sqrt()
    unit = shape / norm.clamp_min(1e-300)[:, None]
    projection = centred @ unit.T  # [draw, model]
    if rises_only:
        projection = projection.clamp_min(0.0)
    best = (projection**2).max(-1)
    slope = projection.gather(1, best.indices[:, None])[:, 0] / norm[best.indices].clamp_min(1e-300)
    return (total - best.values).clamp_min(0.0), best.indices, slope


def _minus_two_log_likelihood(rss: torch.Tensor, n: int, floor: float) -> torch.Tensor:
    """``-2 log L`` of Gaussian residuals, the variance their mean square floored at ``floor``."""
    variance = (rss / n).clamp_min(floor)
    return n * torch.log(2 * math.pi * variance) + rss / variance


def bic_difference(steps: Sequence[int], series: torch.Tensor, floor_sd: float = SCORE_RESOLUTION) -> dict:
    """The BIC of the best smooth model minus that of the abrupt one, for each series.

    Args:
        steps: Checkpoint steps, increasing.
        series: ``[draw, n]`` (or ``[n]``) values at the steps.
        floor_sd: Lowest residual standard deviation.

    Returns:
        ``{"delta", "smooth", "centre", "width", "rise", "noise"}``, each ``[draw]``: the BIC difference
        (positive: the abrupt model is preferred), the best smooth model (index into
        :data:`SMOOTH_MODELS`), the sigmoid's centre, 10%-90% width and rise, and the residual standard
        deviation of the abrupt fit (floored).

    Example:
        >>> steps = [0, 100, 200, 300, 400, 500, 600, 700]
        >>> jump = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5])
        >>> flat = torch.full((8,), 0.1)
        >>> float(bic_difference(steps, jump)["delta"][0]) > 0, float(bic_difference(steps, flat)["delta"][0]) > 0
        (True, False)
    """
    series = torch.as_tensor(series, dtype=torch.float64).reshape(-1, len(steps))
    n, floor = len(steps), max(floor_sd, SCORE_RESOLUTION) ** 2
    bases, centres, widths = abrupt_bases(tuple(int(s) for s in steps))
    abrupt_rss, index, rise = _best_fits(series, bases, rises_only=True)
    smooth_rss, smooth, _ = _best_fits(series, smooth_bases(steps), rises_only=False)
    penalty = (ABRUPT_PARAMETERS - SMOOTH_PARAMETERS) * math.log(n)
    delta = _minus_two_log_likelihood(smooth_rss, n, floor) - _minus_two_log_likelihood(abrupt_rss, n, floor) - penalty
    return {
        "delta": delta,
        "smooth": smooth,
        "centre": centres[index],
        "width": widths[index],
        "rise": rise,
        "noise": (abrupt_rss / n).clamp_min(floor).sqrt(),
    }


def null_series(steps: Sequence[int], shape: str, noise: float, draws: int, generator: torch.Generator) -> torch.Tensor:
    """``[draws, n]`` a smooth series of :data:`NULL_SHAPES` at the steps, with Gaussian noise.

    Example:
        >>> ramp = null_series([0, 10, 100], "linear", 0.0, 1, torch.Generator().manual_seed(0))
        >>> [round(v, 3) for v in ramp[0].tolist()]
        [0.02, 0.08, 0.62]
    """
    low, high = NULL_RAMP
    if shape == "flat":
        clean = torch.full((len(steps),), low, dtype=torch.float64)
    else:
        f = smooth_bases(steps)[SMOOTH_MODELS.index(shape)]
        clean = low + (high - low) * (f - f[0]) / (f[-1] - f[0])
    return clean + noise * torch.randn(draws, len(steps), generator=generator, dtype=torch.float64)


@functools.lru_cache(maxsize=16)
def null_statistics(steps: tuple[int, ...], draws: int = NULL_DRAWS, seed: int = NULL_SEED) -> dict:
    """The BIC difference on simulated smooth series at ``steps``: what the threshold is calibrated on.

    Args:
        steps: Checkpoint steps, increasing.
        draws: Series per noisy condition (a noiseless one is drawn once).
        seed: Seed of the noise.

    Returns:
        ``{(shape, noise sd): [draws] BIC differences}`` over :data:`NULL_SHAPES` x :data:`NULL_NOISE`.
    """
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for shape in NULL_SHAPES:
        for noise in NULL_NOISE:
            series = null_series(steps, shape, noise, draws if noise > 0 else 1, generator)
            out[shape, noise] = torch.cat([bic_difference(steps, chunk)["delta"] for chunk in series.split(_CHUNK)])
    return out


def calibrated_threshold(steps: Sequence[int], alpha: float = ALPHA) -> float:
    """:data:`MIN_THRESHOLD`, or the ``1 - alpha`` quantile of the null condition where it is highest.

    Example:
        >>> calibrated_threshold([0, 10, 20, 40, 80, 160, 320, 640, 1280]) >= MIN_THRESHOLD
        True
    """
    null = null_statistics(tuple(int(s) for s in steps))
    quantile = max(float(torch.quantile(delta, 1 - alpha)) for delta in null.values() if len(delta) > 1)
    return max(MIN_THRESHOLD, quantile)


def false_positive_rate(steps: Sequence[int], threshold: float) -> float:
    """The highest share, over the null conditions, of simulated smooth series above ``threshold``."""
    null = null_statistics(tuple(int(s) for s in steps))
    return max(float((delta > threshold).double().mean()) for delta in null.values())


def row_noise(score_sd: Sequence[float] | None) -> float:
    """The median row noise of the checkpoints' best scores (0 without it).

    Example:
        >>> row_noise([0.01, 0.03, 0.02]), row_noise(None)
        (0.02, 0.0)
    """
    values = [float(v) for v in score_sd or [] if v == v]
    return float(torch.tensor(values, dtype=torch.float64).median()) if values else 0.0


def interval_sd(low: Sequence[float], high: Sequence[float]) -> list[float]:
    """Each checkpoint's row noise from its 95% interval: the half-width over 1.96."""
    return [(float(h) - float(lo)) / (2 * Z95) for lo, h in zip(low, high)]


def _null_description(draws: int = NULL_DRAWS, seed: int = NULL_SEED) -> dict:
    return {
        "shapes": list(NULL_SHAPES),
        "ramp": list(NULL_RAMP),
        "noise_sd": list(NULL_NOISE),
        "draws": draws,
        "seed": seed,
    }


def phase_test(
    steps: Sequence[int],
    best: Sequence[float],
    score_sd: Sequence[float] | None = None,
    threshold: float | None = None,
) -> dict:
    """The phase-change test: does an abrupt rise in step, of at least :data:`MIN_AMPLITUDE`, fit the best
    score better than a smooth curve?

    Args:
        steps: Checkpoint steps, increasing.
        best: The best induction score at each step.
        score_sd: ``[step]`` row noise of each best score (:func:`interval_sd` of :func:`bootstrap_best`'s
            interval); None counts it as 0.
        threshold: The BIC difference a change must exceed; None: :func:`calibrated_threshold`.

    Returns:
        ``{"change", "note", "bic_difference", "threshold", "false_positive_rate", "alpha", "smooth_model",
        "noise", "row_noise", "amplitude", "min_amplitude", "null", "method"}``: ``change`` is
        :func:`phase_change`'s dict or None; ``false_positive_rate`` the simulated rate at ``threshold``
        on smooth series at these steps; ``noise`` the residual standard deviation of the sigmoid fit;
        ``amplitude`` its rise (a change needs at least ``min_amplitude``, :data:`MIN_AMPLITUDE`);
        ``note`` one line saying what was found.

    Example:
        >>> steps = [0, 10, 20, 40, 80, 160, 320, 640, 1280]
        >>> jump = [0.02, 0.021, 0.019, 0.02, 0.021, 0.6, 0.61, 0.6, 0.6]
        >>> phase_test(steps, jump)["change"]["step"], phase_test(steps, [0.02 + s / 2000 for s in steps])["change"]
        (160, None)
    """
    steps, best = [int(s) for s in steps], [float(b) for b in best]
    test = {
        "alpha": ALPHA,
        "method": "rising sigmoid in step against linear, sqrt and log(1 + step) least-squares fits: BIC difference, "
        "the threshold calibrated on simulated smooth series; the sigmoid's rise at least min_amplitude "
        "(docs/dynamics.md)",
    }
    if len(steps) < ABRUPT_PARAMETERS:
        note = f"no phase-change test on {len(steps)} checkpoints: it needs {ABRUPT_PARAMETERS}"
        return {**test, "change": None, "note": note}
    noise_floor = row_noise(score_sd)
    fit = {k: float(v[0]) for k, v in bic_difference(steps, torch.tensor(best), noise_floor).items()}
    threshold = calibrated_threshold(steps) if threshold is None else float(threshold)
    rate = false_positive_rate(steps, threshold)
    delta, centre, amplitude = fit["delta"], fit["centre"], fit["rise"]
    test.update(
        bic_difference=_rounded(delta),
        threshold=_rounded(threshold),
        false_positive_rate=_rounded(rate),
        smooth_model=SMOOTH_MODELS[int(fit["smooth"])],
        noise=_rounded(fit["noise"]),
        row_noise=_rounded(noise_floor),
        amplitude=_rounded(amplitude),
        min_amplitude=MIN_AMPLITUDE,
        null=_null_description(),
    )
    i = max(k for k in range(len(steps) - 1) if steps[k] < centre)  # the interval holding the centre
    where = f"between steps {steps[i]} and {steps[i + 1]}"
    odds = f"threshold {threshold:.1f}; {100 * rate:.1f}% false positives on smooth series"
    if not delta > threshold:
        note = (
            f"no phase change found: a rising sigmoid in step fits the best induction score no better than a smooth "
            f"{test['smooth_model']} curve (BIC difference {delta:.1f}, {odds})"
        )
        return {**test, "change": None, "note": note}
    if not amplitude >= MIN_AMPLITUDE:
        note = (
            f"no phase change found: a rising sigmoid in step beats a smooth {test['smooth_model']} curve by "
            f"{delta:.1f} in BIC ({odds}), but a rise of {amplitude:.3f} is under the {MIN_AMPLITUDE:g} a formed "
            "head needs"
        )
        return {**test, "change": None, "note": note}
    rise = best[i + 1] - best[i]
    change = {
        "step": steps[i + 1],
        "before": steps[i],
        "after": steps[i + 2] if i + 2 < len(steps) else None,
        "rise": rise,
        "score_before": best[i],
        "score_at": best[i + 1],
        "signal_to_noise": rise / fit["noise"],
        "centre": round(centre, 1),
        "width": round(fit["width"], 1),
        "amplitude": amplitude,
        **rise_extent(steps, best),
    }
    note = (
        f"phase change {where}: a rising sigmoid centred at step {centre:.0f} (10%-90% width {fit['width']:.0f} steps, "
        f"rise {amplitude:.3f}, at least {MIN_AMPLITUDE:g}) beats a smooth {test['smooth_model']} curve in step by "
        f"{delta:.1f} in BIC ({odds})"
    )
    return {**test, "change": change, "note": note}


def phase_change(steps: Sequence[int], best: Sequence[float], score_sd: Sequence[float] | None = None) -> dict | None:
    """The phase change of :func:`phase_test`, or None when the abrupt model does not win (or rises too little).

    Returns:
        ``{"step", "before", "after", "rise", "score_before", "score_at", "signal_to_noise", "centre",
        "width", "amplitude", "start", "end", "checkpoints"}``: ``step`` is the first checkpoint after the
        fitted sigmoid's centre, ``before`` the one before it, ``after`` the one after it (None at the
        last); ``rise`` the score's rise between ``before`` and ``step`` and ``signal_to_noise`` that over
        the sigmoid fit's residual standard deviation; ``centre``, ``width`` (10% to 90%) and
        ``amplitude`` the sigmoid's; ``start``/``end``/``checkpoints`` the extent of the whole rise (10%
        to 90%) and how many checkpoints resolve it.

    Example:
        >>> phase_change([0, 10, 100, 300, 1000, 2000], [0.02, 0.021, 0.02, 0.6, 0.61, 0.6])["step"]
        300
    """
    return phase_test(steps, best, score_sd)["change"]
