"""The phase-change test and its parts, on series whose answer is known: a jump is found where it is,
a smooth ramp in step (linear, square-root, logarithmic; on the default run's uneven checkpoint steps,
with and without noise), a drift or a flat noisy series is not, and the simulated false-positive rate
holds on fresh draws; the committed results are what the test says of their scores; the bootstrap
agrees with scipy's; the fresh-token bump and the seeds' spread read what they should."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from induction_nnsight.app.report import seeds_line
from induction_nnsight.dynamics.phase import (
    ALPHA,
    MIN_AMPLITUDE,
    NULL_SHAPES,
    bic_difference,
    bootstrap_best,
    interval_sd,
    null_series,
    phase_change,
    phase_test,
)
from induction_nnsight.dynamics.series import fresh_loss_bump, phase_spread
from induction_nnsight.errors import InductionError
from induction_nnsight.training.config import checkpoint_steps, dense_steps
from tests.docs.helpers import ROOT

STEPS = [0, 10, 20, 40, 80, 160, 320, 400, 450, 500, 550, 600, 700, 1000, 2000]
# the committed default run's 41 steps (log-spaced, and dense through its rise)
DEFAULT_STEPS = [
    c["step"] for c in json.loads((ROOT / "charts" / "dynamics_train_results.json").read_text())["checkpoints"]
]


def noisy(values, scale=0.003, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [v + scale * float(torch.randn(1, generator=generator)) for v in values]


def test_a_jump_is_found_and_resolved_over_the_dense_checkpoints():
    clean = [0.02] * 7 + [0.05, 0.2, 0.4, 0.55, 0.6, 0.6, 0.61, 0.61]  # the rise from step 400 to 600
    test = phase_test(STEPS, noisy(clean))
    change = test["change"]
    assert change is not None and change["before"] == 450 and change["step"] == 500
    assert change["rise"] > 5 * test["noise"] and test["bic_difference"] > test["threshold"]
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
    series = [0.02] * 7 + [0.15] * 8  # one jump of 0.13, nothing else moves
    assert phase_test(STEPS, series)["change"] is not None
    score_sd = [0.2] * len(STEPS)  # rows so noisy that 0.13 is under one standard deviation of each score
    test = phase_test(STEPS, series, score_sd)
    assert test["change"] is None and test["row_noise"] == 0.2


def sigmoid(steps, rise, centre=500, width=150, base=0.02):
    t = torch.tensor(steps, dtype=torch.float64)
    return (base + rise * torch.sigmoid((t - centre) * 2 * math.log(9) / width)).tolist()


@pytest.mark.parametrize("steps", [DEFAULT_STEPS, STEPS], ids=["default-steps", "short"])
def test_a_tiny_clean_rise_is_no_phase_change(steps):
    """A clean sigmoid rise of 0.03 beats every smooth curve in BIC, but no head formed: the amplitude rule
    says no, and the note says why."""
    test = phase_test(steps, sigmoid(steps, 0.03))
    assert test["bic_difference"] > test["threshold"]  # the BIC alone would call it a change
    assert test["change"] is None and phase_change(steps, sigmoid(steps, 0.03)) is None
    assert test["amplitude"] == pytest.approx(0.03, abs=0.002) and test["min_amplitude"] == MIN_AMPLITUDE == 0.1
    assert test["note"].startswith("no phase change found")
    assert f"a rise of {test['amplitude']:.3f} is under the 0.1 a formed head needs" in test["note"]


@pytest.mark.parametrize("steps", [DEFAULT_STEPS, STEPS], ids=["default-steps", "short"])
def test_a_clean_rise_of_half_is_a_phase_change(steps):
    test = phase_test(steps, sigmoid(steps, 0.5))
    change = test["change"]
    assert change is not None and change["amplitude"] == pytest.approx(0.5, abs=0.02)
    assert change["before"] < change["centre"] <= change["step"] and abs(change["centre"] - 500) < 60
    assert test["note"].startswith("phase change between steps")
    assert "at least 0.1" in test["note"]


def test_too_few_checkpoints():
    assert phase_test([0, 10], [0.0, 0.9])["change"] is None
    assert phase_test([0, 10, 20, 30], [0.0, 0.0, 0.9, 0.9])["note"].startswith("no phase-change test on 4 checkpoints")


def ramp(steps, shape, noise=0.0, seed=0):
    return null_series(steps, shape, noise, 1, torch.Generator().manual_seed(seed))[0].tolist()


@pytest.mark.parametrize("steps", [DEFAULT_STEPS, STEPS], ids=["default-steps", "short"])
@pytest.mark.parametrize("noise", [0.0, 0.003, 0.01])
@pytest.mark.parametrize("shape", ["linear", "sqrt", "log"])
def test_a_smooth_ramp_in_step_is_no_phase_change(shape, noise, steps):
    """The old test, on the default steps, called these 9 (linear), 6 (sqrt) and 25 (log) x the noise."""
    test = phase_test(steps, ramp(steps, shape, noise, seed=7))
    assert test["change"] is None, test["note"]
    assert test["note"].startswith("no phase change found") and test["bic_difference"] < test["threshold"]


def test_the_threshold_states_its_false_positive_rate():
    test = phase_test(DEFAULT_STEPS, ramp(DEFAULT_STEPS, "flat", 0.01))
    assert test["threshold"] == 0.0 and 0 < test["false_positive_rate"] <= ALPHA
    assert test["null"]["shapes"] == list(NULL_SHAPES) and test["null"]["draws"] >= 1000
    few = checkpoint_steps(160, 6, "40:160:20")  # 10 checkpoints: the 0 threshold would pass 6%
    short = phase_test(few, ramp(few, "flat", 0.01))
    assert short["threshold"] > 0 and short["false_positive_rate"] <= ALPHA


def test_the_false_positive_rate_holds_on_fresh_draws():
    """A few hundred new smooth noisy series (another seed) at the default steps: found changes stay
    within the stated rate plus a binomial margin (one-sided, 0.1%)."""
    stated = phase_test(DEFAULT_STEPS, ramp(DEFAULT_STEPS, "flat"))["false_positive_rate"]
    generator = torch.Generator().manual_seed(12345)
    draws = {
        (shape, noise): null_series(DEFAULT_STEPS, shape, noise, 100 if shape != "flat" else 300, generator)
        for shape in NULL_SHAPES
        for noise in (0.003, 0.03)
    }
    found = {key: int((bic_difference(DEFAULT_STEPS, series)["delta"] > 0).sum()) for key, series in draws.items()}
    total = sum(len(series) for series in draws.values())
    assert sum(found.values()) <= stats.binom.ppf(0.999, total, stated), found
    for noise in (0.003, 0.03):
        assert found["flat", noise] <= stats.binom.ppf(0.999, 300, stated), found
    assert all(found[shape, noise] == 0 for shape in ("linear", "sqrt", "log") for noise in (0.003, 0.03)), found


@pytest.mark.parametrize("width", [150, 300, 500])
@pytest.mark.parametrize("centre", [320, 620, 900, 1210, 1700])
def test_a_sigmoid_jump_is_found_within_one_checkpoint_interval(centre, width):
    t = torch.tensor(DEFAULT_STEPS, dtype=torch.float64)
    clean = 0.02 + 0.6 * torch.sigmoid((t - centre) * 2 * math.log(9) / width)
    series = clean + 0.01 * torch.randn(len(t), generator=torch.Generator().manual_seed(centre), dtype=torch.float64)
    change = phase_change(DEFAULT_STEPS, series.tolist())
    assert change is not None
    truth = next(k for k, s in enumerate(DEFAULT_STEPS) if s >= centre)  # the checkpoint after the true centre
    assert abs(DEFAULT_STEPS.index(change["step"]) - truth) <= 1
    assert change["before"] < change["centre"] <= change["step"]
    assert change["width"] <= 2 * width + 100


def test_the_committed_results_are_what_the_test_says_of_their_scores():
    """Each committed run's phase test, recomputed from its scores (the default run's steps are its training's;
    the control's dense checkpoints sit where its own coarse pass placed them)."""
    names = ("dynamics_results.json", "dynamics_control_results.json")
    seeds = ("dynamics_seeds_results.json", "dynamics_control_seeds_results.json")  # their first seed's test
    for name in names + seeds:
        results = json.loads((ROOT / "charts" / name).read_text())
        steps = [c["step"] for c in results["checkpoints"]]
        if name in ("dynamics_results.json", "dynamics_seeds_results.json"):
            assert steps == DEFAULT_STEPS  # seed 0 of the seeds' run is the default run
        best = [c["best_induction"] for c in results["checkpoints"]]
        score_sd = interval_sd([b["ci_low"] for b in best], [b["ci_high"] for b in best])
        test = phase_test(steps, [b["score"] for b in best], score_sd)
        change = test.pop("change")
        committed = results["phase_test"]
        assert test.keys() == committed.keys()
        for key, value in test.items():  # the scores are rounded in the file: the statistic moves in its 4th digit
            assert value == (pytest.approx(committed[key], rel=1e-4) if isinstance(value, float) else committed[key])
        assert (change is None) == (results["phase_change"] is None)
        if change is not None:
            assert {k: change[k] for k in ("step", "before", "start", "end")} == {
                k: results["phase_change"][k] for k in ("step", "before", "start", "end")
            }
        if name in seeds:
            spread = results["seeds"]
            assert spread["seeds"] == [0, 1, 2] and spread["notes"][0] == committed["note"]
            assert spread["amplitudes"][0] == committed["amplitude"]
            assert [a >= MIN_AMPLITUDE for a in spread["amplitudes"]] == [s is not None for s in spread["steps"]]


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
    tests = [
        (0, {"change": {"step": 900}, "amplitude": 0.6}),
        (1, {"change": {"step": 700}, "amplitude": 0.65}),
        (2, {"change": None, "amplitude": 0.031}),
    ]
    spread = phase_spread(tests)
    assert spread["found"] == 2 and spread["steps"] == [900, 700, None] and spread["amplitudes"] == [0.6, 0.65, 0.031]
    assert (spread["min"], spread["max"], spread["median"]) == (700, 900, 800.0)
    line = seeds_line(spread)
    assert line.startswith("phase change in 2 of 3 seeds, steps 700 to 900 (median 800)")
    assert "seed 2: none, rise 0.031" in line and "None" not in line


@pytest.mark.parametrize("found", [0, 1])
def test_the_seeds_line_never_prints_none(found):
    tests = [(0, {"change": {"step": 800} if found else None, "amplitude": 0.64}), (1, {"change": None})]
    spread = phase_spread(tests)
    line = seeds_line(spread)
    assert "None" not in line and "seed 1: none" in line
    assert line.startswith("phase change in 1 of 2 seeds, at step 800" if found else "no phase change in any of 2")


def test_dense_checkpoints_join_the_log_spaced_ones():
    assert dense_steps("none") == [] and dense_steps("10:30:10") == [10, 20, 30]
    steps = checkpoint_steps(2500, 20, "500:1500:50")
    assert all(s in steps for s in range(500, 1501, 50)) and steps[0] == 0 and steps[-1] == 2500
    for bad in ("500:1500", "a:b:c", "900:500:10", "5:10:0"):
        with pytest.raises(InductionError, match="--dense"):
            dense_steps(bad)
