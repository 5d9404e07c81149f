"""``train --dense auto`` on a micro run: the dense checkpoints lie inside the rise that the coarse pass's
best induction score shows (checked against the window's definition on scores a separate ``dynamics``
pass measures, not against the placing code), they are all the checkpoints the coarse schedule lacks,
and ``train_results.json`` and ``OUT/dense_window.json`` record the window. The checks are one
function, shown to fail on a misplaced window. (A micro run's rise is small, a few thousandths: the rule
places the checkpoints the same way whatever its size; ``tests/e2e`` trains the default run.)"""

from __future__ import annotations

import json

import pytest

from induction_nnsight.app.cli import main
from induction_nnsight.app.dynamics_job import DynamicsConfig, run_dynamics
from induction_nnsight.training.config import checkpoint_steps

STEPS, COARSE, DENSE = 200, 8, 6
MICRO = [
    *("--steps", str(STEPS), "--batch", "4", "--seq-len", "24", "--vocab-size", "16", "--d-model", "16"),
    *("--n-heads", "2", "--checkpoints", str(COARSE), "--log-every", "20", "--max-span", "8", "--warmup", "5"),
    *("--dense", f"auto:{DENSE}", "--quiet"),
]


def window_problems(window: dict, scores: dict[int, float], saved: list[int]) -> list[str]:
    """What is wrong with a recorded dense window, given the best induction score at each coarse step
    (``scores``) and the steps of every checkpoint saved (``saved``); empty when nothing is.

    The window's definition: ``end`` is the first coarse checkpoint at or above 90% of the net rise (first
    checkpoint to the highest), ``start`` the last one before it at or below 10%; the dense steps are
    spaced evenly strictly inside it, and they are exactly the saved checkpoints the coarse schedule lacks.
    """
    problems = []
    coarse = sorted(scores)
    base, top = scores[coarse[0]], max(scores.values())
    low, high = base + 0.1 * (top - base), base + 0.9 * (top - base)
    start, end, dense = window["start"], window["end"], window["steps"]
    if not (start in scores and end in scores and start < end):
        return [f"window {start}..{end} is not two coarse checkpoints in order"]
    if scores[end] < high or any(scores[s] >= high for s in coarse if s < end):
        problems.append(f"end {end} is not the first coarse checkpoint at or above {high:.4f}")
    if scores[start] > low or any(scores[s] <= low for s in coarse if start < s < end):
        problems.append(f"start {start} is not the last coarse checkpoint at or below {low:.4f} before the end")
    if not dense or any(not start < s < end for s in dense):
        problems.append(f"dense steps {dense} do not lie strictly inside {start}..{end}")
    gaps = [b - a for a, b in zip([start, *dense], [*dense, end])]
    if dense and max(gaps) - min(gaps) > 1:
        problems.append(f"dense steps {dense} are not evenly spaced in {start}..{end} (gaps {gaps})")
    if sorted(set(saved) - set(coarse)) != sorted(dense):
        problems.append(f"the saved checkpoints beyond the coarse ones are {sorted(set(saved) - set(coarse))}")
    return problems


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory):
    """The micro run trained by the CLI, and a ``dynamics`` pass on all its checkpoints (no circuit)."""
    root = tmp_path_factory.mktemp("dense")
    assert main(["train", "--out", str(root / "run"), *MICRO]) == 0
    scored, _ = run_dynamics(
        DynamicsConfig(checkpoints=[str(root / "run")], out=str(root / "scored"), circuit=False, progress=False)
    )
    return root / "run", scored


def test_dense_checkpoints_lie_inside_the_coarse_rise(dense_run):
    out, scored = dense_run
    results = json.loads((out / "train_results.json").read_text())
    window = results["dense_window"]
    assert window == json.loads((out / "dense_window.json").read_text())  # the record in the run directory too
    coarse = checkpoint_steps(STEPS, COARSE)
    assert [step for step, _ in window["coarse"]] == coarse and window["rule"]
    measured = {c["step"]: c["best_induction"]["score"] for c in scored["checkpoints"]}
    saved = [c["step"] for c in results["checkpoints"]]
    assert saved == sorted(measured)  # every saved checkpoint, dense ones included, is one dynamics scores
    assert [score for _, score in window["coarse"]] == pytest.approx([measured[s] for s in coarse], abs=1e-4)
    scores = {step: measured[step] for step in coarse}
    assert window_problems(window, scores, saved) == []
    assert len(window["steps"]) == min(DENSE, window["end"] - window["start"] - 1)


def test_the_check_fails_on_a_misplaced_window(dense_run):
    """The same checks reject the window moved off the rise, dense steps outside it, and a missing checkpoint."""
    out, _ = dense_run
    window = json.loads((out / "dense_window.json").read_text())
    scores = dict(window["coarse"])
    saved = [c["step"] for c in json.loads((out / "train_results.json").read_text())["checkpoints"]]
    coarse = sorted(scores)
    later = coarse[coarse.index(window["end"]) :]  # the coarse checkpoints from the end of the rise on
    moved = {**window, "start": window["end"], "end": later[1]} if len(later) > 1 else None
    outside = {**window, "steps": [*window["steps"][:-1], window["end"] + 1]}
    for bad in filter(None, (moved, outside)):
        assert window_problems(bad, scores, saved), bad
    assert window_problems(window, scores, [s for s in saved if s != window["steps"][0]])  # a dense one lost
