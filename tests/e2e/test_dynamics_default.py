"""The default training run shows the phase change (slow tier: minutes on 2 CPU cores).

``induction-nnsight train`` with its defaults, then ``dynamics`` with its defaults on the run:
the best induction score is below 0.1 at the first checkpoint and above 0.5 at the last, the
repeated-half loss falls by at least half, and the detected phase change lies strictly between
the first and the last checkpoint, is larger than 5 x the noise and is resolved over at least
4 checkpoints; the same settings without repeated spans show no phase change.
"""

from __future__ import annotations

import time

from induction_nnsight.app.dynamics_job import DynamicsConfig, run_dynamics
from induction_nnsight.app.train_job import TrainConfig, run_train


def test_default_run_shows_the_phase_change(tmp_path):
    began = time.perf_counter()
    trained, _ = run_train(TrainConfig(out=str(tmp_path / "tiny"), progress=False))
    seconds = time.perf_counter() - began
    results, _ = run_dynamics(
        DynamicsConfig(checkpoints=[str(tmp_path / "tiny")], out=str(tmp_path / "charts"), progress=False)
    )
    checkpoints = results["checkpoints"]
    first, last = checkpoints[0], checkpoints[-1]
    assert [c["step"] for c in checkpoints] == [c["step"] for c in trained["checkpoints"]]
    assert first["best_induction"]["score"] < 0.1
    assert last["best_induction"]["score"] > 0.5
    assert last["loss_repeated_half"] <= 0.5 * first["loss_repeated_half"]
    assert last["repeated_minus_first_half"] < -1.0  # the context helps by more than a nat
    phase = results["phase_change"]
    assert phase is not None, results["phase_test"]["note"]
    assert first["step"] < phase["step"] < last["step"]
    assert phase["rise"] > 5 * results["phase_test"]["noise"]
    assert phase["checkpoints"] >= 4  # the dense checkpoints resolve the rise
    at = next(c for c in checkpoints if c["step"] == phase["step"])
    assert (
        at["best_induction"]["ci_low"]
        > next(c for c in checkpoints if c["step"] == phase["before"])["best_induction"]["ci_high"]
    )
    print(
        f"default run: {seconds:.0f} s of training; best induction {first['best_induction']['score']:.3f} -> "
        f"{last['best_induction']['score']:.3f}; repeated-half loss {first['loss_repeated_half']:.3f} -> "
        f"{last['loss_repeated_half']:.3f}; phase change between steps {phase['before']} and {phase['step']}"
    )


def test_default_run_without_repeats_has_no_phase_change(tmp_path):
    """The null at full size: the default settings with --no-repeats form no induction head."""
    run_train(TrainConfig(out=str(tmp_path / "control"), repeats=False, progress=False))
    results, _ = run_dynamics(
        DynamicsConfig(
            checkpoints=[str(tmp_path / "control")], out=str(tmp_path / "charts"), progress=False, circuit=False
        )
    )
    assert results["phase_change"] is None, results["phase_test"]["note"]
    assert max(c["best_induction"]["score"] for c in results["checkpoints"]) < 0.2
