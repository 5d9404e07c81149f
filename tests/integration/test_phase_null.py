"""The phase-change detector's null: a run trained on a corpus with no repeated spans (no induction
head can pay) gets ``"phase_change": null`` and one line saying none was found; a run with repeats,
trained the same way, has copied tokens the control has not. Fast: a micro config, in seconds."""

from __future__ import annotations

import json

import pytest

from induction_nnsight.app.cli import main
from induction_nnsight.app.dynamics_job import DynamicsConfig, run_dynamics
from induction_nnsight.training.config import TrainSettings
from induction_nnsight.training.corpus import repeated_spans
from induction_nnsight.training.loop import LOSS_LOG, train

TINY = dict(
    steps=160,
    batch=8,
    seq_len=32,
    vocab_size=32,
    d_model=32,
    n_heads=2,
    n_checkpoints=6,
    dense="40:160:20",
    log_every=10,
    max_span=15,
    warmup=10,
)


def test_the_control_corpus_repeats_nothing_and_keeps_the_fresh_tokens():
    control = repeated_spans(4, 64, 32, seed=2, step=3, spans=None)
    assert (control.source == -1).all()
    with_repeats = repeated_spans(4, 64, 32, seed=2, step=3, spans=(4, 15))
    assert (with_repeats.source >= 0).any()


@pytest.fixture(scope="module")
def control_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("control") / "run"
    train(TrainSettings(**TINY, repeats=False), out, progress=False)
    return out


def test_no_repeats_no_phase_change(control_run, tmp_path):
    results, _ = run_dynamics(
        DynamicsConfig(checkpoints=[str(control_run)], out=str(tmp_path), progress=False, circuit=False)
    )
    assert len(results["checkpoints"]) >= 10
    assert results["phase_change"] is None
    assert results["phase_test"]["note"].startswith("no phase change found")
    assert results["fresh_loss_bump"] is None
    best = [c["best_induction"] for c in results["checkpoints"]]
    assert max(b["score"] for b in best) < 0.2  # no induction head formed: the null is the right answer
    assert all(b["ci_low"] <= b["score"] <= b["ci_high"] for b in best)
    assert results["checkpoints"][0]["olsson_icl_score"] is None  # rows of 31 tokens
    assert "needs 500" in results["settings"]["olsson_icl_score"]
    lines = [json.loads(line) for line in (control_run / LOSS_LOG).read_text().splitlines()]
    assert all(line["loss_copied"] is None for line in lines)  # no copied token to take a loss on


def test_cli_says_none_was_found(control_run, tmp_path, capsys):
    assert main(["dynamics", str(control_run), "--out", str(tmp_path), "--quiet", "--no-circuit"]) == 0
    printed = capsys.readouterr().out
    assert "no phase change found" in printed
    assert json.loads((tmp_path / "dynamics_results.json").read_text())["phase_change"] is None


def test_seeds_train_one_run_each_and_dynamics_reports_their_spread(tmp_path, capsys):
    micro = {**TINY, "steps": 30, "dense": "none", "n_checkpoints": 4}
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in micro.items() if k != "n_checkpoints"]
    out = tmp_path / "seeds"
    assert main(["train", *argv, "--checkpoints", "4", "--seeds", "2", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["seed-0", "seed-1"]
    assert main(["dynamics", str(out), "--out", str(tmp_path / "charts"), "--quiet", "--no-circuit"]) == 0
    results = json.loads((tmp_path / "charts" / "dynamics_results.json").read_text())
    assert results["seeds"]["seeds"] == [0, 1] and len(results["seeds"]["steps"]) == 2
    assert "phase change in" in capsys.readouterr().out
