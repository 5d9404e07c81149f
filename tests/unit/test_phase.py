"""The phase-change test and its parts, on series whose answer is known: a jump is found, a smooth
drift or a flat noisy series is not; the bootstrap agrees with scipy's; the fresh-token bump and the
seeds' spread read what they should."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from induction_nnsight.dynamics.phase import NOISE_MULTIPLE, bootstrap_best, phase_change, phase_test
from induction_nnsight.dynamics.series import fresh_loss_bump, phase_spread
from induction_nnsight.errors import InductionError
from induction_nnsight.training.config import checkpoint_steps, dense_steps

STEPS = [0, 10, 20, 40, 80, 160, 320, 400, 450, 500, 550, 600, 700, 1000, 2000]


def noisy(values, scale=0.003, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [v + scale * float(torch.randn(1, generator=generator)) for v in values]


def test_a_jump_is_found_and_resolved_over_the_dense_checkpoints():
    clean = [0.02] * 7 + [0.05, 0.2, 0.4, 0.55, 0.6, 0.6, 0.61, 0.61]  # the rise from step 400 to 600
    test = phase_test(STEPS, noisy(clean))
    change = test["change"]
    assert change is not None and change["before"] == 450 and change["step"] == 500
    assert change["rise"] > NOISE_MULTIPLE * test["noise"]
    assert change["start"] <= 450 and change["end"] >= 550 and change["checkpoints"] >= 4
    assert "phase change between steps 450 and 500" in test["note"]


@pytest.mark.parametrize(
    "series",
    [
        [0.02 + 0.002 * k for k in range(len(STEPS))],  # a smooth drift: every rise alike
        noisy([0.02] * len(STEPS), scale=0.005, seed=1),  # noise only
        [0.6 - 0.03 * k for k in range(len(STEPS))],  # a fall
    ],
    ids=["drift", "noise", "fall"],
)
def test_no_jump_no_phase_change(series):
    test = phase_test(STEPS, series)
    assert test["change"] is None and phase_change(STEPS, series) is None
    assert test["note"].startswith("no phase change found")


def test_row_noise_can_veto_a_rise():
    series = [0.02] * 7 + [0.1] * 8  # one jump of 0.08, nothing else moves
    assert phase_test(STEPS, series)["change"] is not None
    rise_sd = [0.05] * (len(STEPS) - 1)  # rows so noisy that 0.08 is under 5 x 0.05
    assert phase_test(STEPS, series, rise_sd)["change"] is None


def test_too_few_checkpoints():
    assert phase_test([0, 10], [0.0, 0.9])["change"] is None


def test_bootstrap_interval_agrees_with_scipy():
    generator = torch.Generator().manual_seed(3)
    rows = torch.zeros(2, 40, 1, 1)  # one head: the best is that head
    rows[0, :, 0, 0] = 0.02 + 0.01 * torch.rand(40, generator=generator)
    rows[1, :, 0, 0] = 0.5 + 0.3 * torch.rand(40, generator=generator)
    low, high, sd = bootstrap_best(rows, n_bootstrap=4000, seed=1)
    reference = stats.bootstrap(
        (rows[1, :, 0, 0].double().numpy(),), np.mean, n_resamples=4000, method="percentile", random_state=1
    ).confidence_interval
    assert float(low[1]) == pytest.approx(reference.low, abs=0.01)
    assert float(high[1]) == pytest.approx(reference.high, abs=0.01)
    sem = float(rows[1, :, 0, 0].std() / 40**0.5)  # the rise's sd: both means' standard errors
    assert float(sd[0]) == pytest.approx((sem**2 + float(rows[0, :, 0, 0].std() / 40**0.5) ** 2) ** 0.5, rel=0.1)


def test_bootstrap_chooses_the_best_head_in_each_replicate():
    rows = torch.zeros(1, 6, 1, 2)
    rows[0, :, 0, 0] = torch.tensor([1.0, 0, 0, 0, 0, 0])  # mean 1/6, but some replicates give it 0
    rows[0, :, 0, 1] = 0.1
    low, high, _ = bootstrap_best(rows, 500)
    assert float(low[0]) == pytest.approx(0.1) and float(high[0]) > 0.3


def test_fresh_loss_bump_is_measured_and_absent_when_flat():
    steps = range(0, 1200, 10)
    wobble = [0.02 * ((s // 10) % 3) for s in steps]
    bumped = [{"step": s, "loss_fresh": 2.8 + (0.09 if s >= 800 else 0.0) + w} for s, w in zip(steps, wobble)]
    change = {"before": 750, "step": 800, "start": 700, "end": 950}
    bump = fresh_loss_bump(bumped, change)
    assert bump["present"] and bump["rise"] == pytest.approx(0.09, abs=0.01)
    assert bump["before"]["steps"] == [500, 750] and bump["after"]["steps"] == [800, 1050] and bump["ci_low"] > 0
    flat = [{"step": s, "loss_fresh": 2.8 + w} for s, w in zip(steps, wobble)]
    assert not fresh_loss_bump(flat, change)["present"]
    assert fresh_loss_bump(flat, None) is None


def test_phase_spread_over_seeds():
    spread = phase_spread([(0, {"step": 900}), (1, {"step": 700}), (2, None)])
    assert spread["found"] == 2 and spread["steps"] == [900, 700, None]
    assert (spread["min"], spread["max"], spread["median"]) == (700, 900, 800.0)


def test_dense_checkpoints_join_the_log_spaced_ones():
    assert dense_steps("none") == [] and dense_steps("10:30:10") == [10, 20, 30]
    steps = checkpoint_steps(2500, 20, "500:1500:50")
    assert all(s in steps for s in range(500, 1501, 50)) and steps[0] == 0 and steps[-1] == 2500
    for bad in ("500:1500", "a:b:c", "900:500:10", "5:10:0"):
        with pytest.raises(InductionError, match="--dense"):
            dense_steps(bad)
