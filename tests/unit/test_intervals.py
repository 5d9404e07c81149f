"""The causal intervals: the bootstrap of ``heads`` reused, checked against ``scipy.stats.bootstrap``
and against the coverage a 95% interval must have."""

import numpy as np
import pytest
import torch

from induction_nnsight.causal.intervals import distinguishable, effect_interval, row_interval


def test_row_interval_matches_scipy_percentile_bootstrap():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(3, 40, generator=g) * torch.tensor([[0.5], [1.0], [2.0]]) + torch.tensor([[0.0], [1.0], [-3.0]])
    mean, low, high = row_interval(rows, n_boot=4000)
    for i in range(3):
        ref = stats.bootstrap((rows[i].numpy(),), np.mean, n_resamples=4000, method="percentile", random_state=1)
        width = float(high[i] - low[i])
        # two independent Monte Carlo bootstraps of the same data: ends agree to a few % of the width
        assert abs(float(low[i]) - ref.confidence_interval.low) < 0.06 * width
        assert abs(float(high[i]) - ref.confidence_interval.high) < 0.06 * width
        assert float(low[i]) < float(mean[i]) < float(high[i])


def test_intervals_cover_the_true_mean_about_95_percent_of_the_time():
    g = torch.Generator().manual_seed(1)
    rows = torch.randn(400, 30, generator=g) + 0.3  # 400 experiments of 30 rows, true mean 0.3
    _, low, high = row_interval(rows, n_boot=500)
    coverage = float(((low <= 0.3) & (high >= 0.3)).float().mean())
    assert 0.88 <= coverage <= 0.99, coverage  # percentile bootstrap runs a little narrow at n = 30


def test_paired_effect_and_zero():
    baseline = torch.tensor([1.0, 2.0, 3.0, 4.0])
    rows = torch.stack([baseline + 1.0, baseline, baseline + torch.tensor([0.1, -0.1, 0.2, -0.2])])
    effect, low, high = effect_interval(rows, baseline)
    assert torch.allclose(effect, torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert float(low[0]) == pytest.approx(1.0) and float(high[0]) == pytest.approx(1.0)  # paired: no spread
    assert distinguishable(low, high).tolist() == [True, False, False]
    assert distinguishable(0.1, 0.3) and not distinguishable(-0.1, 0.3)


def test_recovery_interval_is_the_ratio_of_resampled_means():
    from induction_nnsight.causal.intervals import recovery_interval

    g = torch.Generator().manual_seed(2)
    clean, corrupted = torch.randn(12, generator=g) + 5.0, torch.randn(12, generator=g)
    patched = torch.stack([corrupted + 0.5 * (clean - corrupted), corrupted])  # recovery 0.5 exactly, and 0
    low, high = recovery_interval(patched, corrupted, clean, n_boot=200)
    assert float(low[0]) == pytest.approx(0.5) and float(high[0]) == pytest.approx(0.5)
    assert float(low[1]) == pytest.approx(0.0) and float(high[1]) == pytest.approx(0.0)
    # a noisy recovery: the interval from the same picks, computed by hand
    noisy = (corrupted + 0.5 * (clean - corrupted) + torch.randn(12, generator=g))[None]
    low, high = recovery_interval(noisy, corrupted, clean, n_boot=200)
    picks = torch.randint(0, 12, (200, 12), generator=torch.Generator().manual_seed(0))
    ratio = (noisy[0][picks].mean(1) - corrupted[picks].mean(1)) / (clean[picks].mean(1) - corrupted[picks].mean(1))
    assert float(low[0]) == pytest.approx(float(ratio.double().quantile(0.025)), abs=1e-5)
    assert float(high[0]) == pytest.approx(float(ratio.double().quantile(0.975)), abs=1e-5)
    one = recovery_interval(patched[:, :1], corrupted[:1], clean[:1])
    assert torch.isnan(one[0]).all()  # one row: no interval
