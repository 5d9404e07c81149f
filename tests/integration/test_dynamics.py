"""``dynamics`` on micro training runs: its numbers for a checkpoint equal the heads pass and the
scan on that checkpoint loaded directly; a checkpoint saved without a tokenizer works; checkpoints
already scored are read back from the journal, not scored again (a damaged entry is, and
``--no-resume`` scores all); bad input ends in one line and exit status 2."""

from __future__ import annotations

import json

import pytest
import torch

from induction_nnsight import load_model
from induction_nnsight.app.cli import main
from induction_nnsight.app.dynamics_job import DynamicsConfig, run_dynamics
from induction_nnsight.app.jobs import ScanConfig
from induction_nnsight.app.outputs import parse_strict
from induction_nnsight.app.scan_job import run_scan
from induction_nnsight.dynamics.checkpoints import find_checkpoints
from induction_nnsight.dynamics.scoring import DYNAMICS_KINDS
from induction_nnsight.probes.tokens import Probe, repeated_tokens
from induction_nnsight.scores.heads import head_scores
from induction_nnsight.training.config import TrainSettings
from induction_nnsight.training.loop import train

MICRO = dict(
    steps=12,
    batch=2,
    seq_len=24,
    vocab_size=32,
    d_model=16,
    n_heads=2,
    n_checkpoints=3,
    log_every=4,
    max_span=6,
    warmup=2,
)
PROBE = dict(batch=3, seq_len=8, seed=5)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two micro runs: GPT-2 shaped with the id tokenizer, Llama shaped without one."""
    root = tmp_path_factory.mktemp("runs")
    train(TrainSettings(**MICRO), root / "gpt2", progress=False)
    train(TrainSettings(**MICRO, arch="llama", tokenizer=False), root / "llama", progress=False)
    return root


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_scores_equal_the_heads_pass_and_the_scan_on_each_checkpoint(runs, arch, tmp_path):
    results, files = run_dynamics(
        DynamicsConfig(checkpoints=[str(runs / arch)], out=str(tmp_path), progress=False, **PROBE)
    )
    assert [c["step"] for c in results["checkpoints"]] == [0, 10, 12]  # checkpoint_steps(12, 3)
    for entry in results["checkpoints"]:
        model = load_model(entry["path"], progress=False)
        tokens = repeated_tokens(3, 8, seed=5, low=1, high=32, bos_token_id=0)
        direct = head_scores(model, Probe("repeated", tokens, 8, 1, 9), kinds=DYNAMICS_KINDS)
        for kind in DYNAMICS_KINDS:
            assert torch.allclose(torch.tensor(entry["scores"][kind]), direct.mean(kind), atol=1e-5), kind
        scan, _ = run_scan(ScanConfig(model=entry["path"], low=1, high=32, **PROBE), model)
        assert entry["loss_first_half"] == pytest.approx(scan["mean_loss_first_half"], abs=1e-5)
        assert entry["loss_repeated_half"] == pytest.approx(scan["mean_loss_repeated_half"], abs=1e-5)
        difference = entry["loss_repeated_half"] - entry["loss_first_half"]
        assert entry["repeated_minus_first_half"] == pytest.approx(difference, abs=2e-6)
        assert torch.allclose(
            torch.tensor(entry["scores"]["induction"]), torch.tensor(scan["induction_scores"]), atol=1e-5
        )
    saved = parse_strict(files["dynamics_results.json"])
    assert list(saved)[:5] == ["settings", "checkpoints", "phase_change", "phase_test", "fresh_loss_bump"]
    assert set(saved["checkpoints"][0]) >= {
        "step",
        "path",
        "loss_first_half",
        "loss_repeated_half",
        "repeated_minus_first_half",
        "scores",
    }
    assert saved["phase_change"] is None or saved["phase_change"]["before"] < saved["phase_change"]["step"]
    assert saved["phase_test"]["note"]
    for entry in saved["checkpoints"]:  # the interval holds the point
        best = entry["best_induction"]
        assert best["ci_low"] - 1e-6 <= best["score"] <= best["ci_high"] + 1e-6
    for name in ("dynamics_induction.json", "dynamics_loss.json", "dynamics_heatmap.json"):
        assert parse_strict(files[name])["data"]


def test_checkpoint_without_tokenizer_loads_with_bos_from_config(runs):
    path = runs / "llama" / "checkpoint-12"
    assert not (path / "tokenizer.json").exists()
    model = load_model(str(path), progress=False)
    assert model.tokenizer.bos_token_id == 0 and model.tokenizer.decode([5]) == "t5"


def test_checkpoints_already_scored_are_not_scored_again(runs, tmp_path):
    loads = []

    def counting(path, **kwargs):
        loads.append(path)
        return load_model(path, **kwargs)

    config = DynamicsConfig(
        checkpoints=[str(runs / "gpt2" / "checkpoint-0"), str(runs / "gpt2" / "checkpoint-10")],
        out=str(tmp_path),
        progress=False,
        **PROBE,
    )
    first, _ = run_dynamics(config, load=counting)
    assert len(loads) == 2
    config.checkpoints = [str(runs / "gpt2")]  # the whole run: only checkpoint-12 is new
    second, _ = run_dynamics(config, load=counting)
    assert len(loads) == 3 and loads[-1].endswith("checkpoint-12")
    assert second["checkpoints"][:2] == first["checkpoints"]

    def refuse(path, **kwargs):
        raise AssertionError(f"{path} was scored again")

    third, _ = run_dynamics(config, load=refuse)
    assert third == second
    config.seed = 6  # other settings: scored again
    with pytest.raises(AssertionError, match="scored again"):
        run_dynamics(config, load=refuse)


def test_the_journal_resumes_rescores_a_damaged_entry_and_no_resume_starts_afresh(runs, tmp_path, capsys):
    loads = []

    def counting(path, **kwargs):
        loads.append(path)
        return load_model(path, **kwargs)

    config = DynamicsConfig(checkpoints=[str(runs / "gpt2")], out=str(tmp_path), progress=False, circuit=False, **PROBE)
    first, _ = run_dynamics(config, load=counting)
    journal = tmp_path / "dynamics_journal"
    entries = sorted(journal.iterdir())
    assert len(loads) == 3 and len(entries) == 3 and [p.name for p in tmp_path.iterdir()] == [journal.name]
    assert all(json.loads(p.read_text(), parse_constant=pytest.fail) for p in entries)  # strict JSON
    capsys.readouterr()
    loads.clear()
    assert run_dynamics(config, load=counting)[0] == first and loads == []
    assert capsys.readouterr().err.strip().splitlines() == [
        f"induction-nnsight: dynamics: resumed 3 of 3 checkpoints from {journal}"
    ]
    damaged = entries[0].read_text()
    entries[0].write_text(damaged[: len(damaged) // 2])  # a torn entry (written by something else)
    entries[1].write_text(json.dumps({"seq_len": 8}))  # valid JSON, not an entry
    again, _ = run_dynamics(config, load=counting)
    assert len(loads) == 2 and "resumed 1 of 3 checkpoints" in capsys.readouterr().err
    assert again == first and json.loads(entries[0].read_text()) == json.loads(damaged)
    loads.clear()
    config.resume = False  # --no-resume: every checkpoint scored afresh
    assert run_dynamics(config, load=counting)[0] == first and len(loads) == 3
    assert "resumed" not in capsys.readouterr().err
    cli = ["dynamics", str(runs / "gpt2"), "--batch", "3", "--seq-len", "8", "--seed", "5", "--no-circuit"]
    assert main([*cli, "--out", str(tmp_path), "--no-resume"]) == 0 and "resumed" not in capsys.readouterr().err
    assert main([*cli, "--out", str(tmp_path)]) == 0 and "resumed 3 of 3" in capsys.readouterr().err


def test_checkpoints_sorted_by_step(runs):
    found = find_checkpoints([str(runs / "gpt2" / "checkpoint-12"), str(runs / "gpt2" / "checkpoint-0")])
    assert [c.step for c in found] == [0, 12]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dynamics", "no/such/dir"], "no directory at no/such/dir"),
        (["dynamics"], "no checkpoints given"),
        (["dynamics", "RUN", "--seq-len", "40"], "exceed"),
        (
            ["dynamics", "--model", "EleutherAI/pythia-70m", "--revisions", "step0,step1000"],
            "needs the Hugging Face Hub",
        ),
        (["dynamics", "--revisions", "step0"], "--revisions needs --model"),
        (["dynamics", "RUN", "--model", "EleutherAI/pythia-70m", "--revisions", "step0"], "not both"),
        (["train", "--out", "OUT", "--d-model", "30", "--n-heads", "4"], "not a multiple"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    argv = [str(runs / "gpt2") if a == "RUN" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main(argv + ["--out", str(tmp_path / "charts")] if argv[0] == "dynamics" else argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_cli_writes_the_results_files(runs, tmp_path, capsys):
    assert (
        main(["dynamics", str(runs / "gpt2"), "--batch", "3", "--seq-len", "8", "--out", str(tmp_path), "--quiet"]) == 0
    )
    results = json.loads((tmp_path / "dynamics_results.json").read_text())
    assert [c["step"] for c in results["checkpoints"]] == [0, 10, 12] and "run_id" in results
    assert "no phase-change test on 3 checkpoints" in capsys.readouterr().out  # the test needs 5


def test_plan_is_one_request_per_checkpoint_and_writes_only_the_plan(runs, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["dynamics", str(runs / "llama"), "--batch", "3", "--seq-len", "8", "--out", str(out), "--quiet"]
    assert main([*argv, "--plan"]) == 0
    assert "plan of dynamics" in capsys.readouterr().out
    assert [p.name for p in out.iterdir()] == ["plan.json"]  # no results, no journal
    plan = json.loads((out / "plan.json").read_text())
    n = len(find_checkpoints([runs / "llama"]))
    # one request per checkpoint (a session cannot span two models), 3 rows of BOS + 2 x 8 tokens each
    assert plan["requests"] == n and plan["forward_passes"] == 3 * n and plan["tokens"] == n * 3 * 17


def test_text_icl_per_checkpoint_equals_plain_transformers(runs, tmp_path):
    """``--text``: each checkpoint's loss at ``--early`` and ``--late`` on windows of the text (BOS first),
    and their difference, equal plain ``transformers`` with cross-entropy; the journal keeps them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from induction_nnsight.scores.icl import text_windows

    generator = torch.Generator().manual_seed(3)
    words = [f"t{int(i)}" for i in torch.randint(1, 32, (200,), generator=generator)]
    text = tmp_path / "text.txt"
    text.write_text(" ".join(words))
    config = DynamicsConfig(
        checkpoints=[str(runs / "gpt2")],
        out=str(tmp_path / "out"),
        progress=False,
        circuit=False,
        text=str(text),
        text_windows=4,
        early=2,
        late=9,
        **PROBE,
    )
    results, _ = run_dynamics(config)
    for entry in results["checkpoints"]:
        plain = AutoModelForCausalLM.from_pretrained(entry["path"]).eval()
        ids = AutoTokenizer.from_pretrained(entry["path"]).encode(text.read_text(), add_special_tokens=False)
        rows = text_windows(ids, 4, 10, bos=0)  # where the windows lie: tests/integration/test_icl.py
        assert rows.shape == (4, 10) and (rows[:, 0] == 0).all()  # BOS id 0, then 9 tokens
        with torch.no_grad():
            logits = plain(rows).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), rows[:, 1:], reduction="none")
        found = entry["text_icl"]
        assert abs(found["loss_at_early"] - float(loss[:, 1].mean())) < 1e-4
        assert abs(found["loss_at_late"] - float(loss[:, 8].mean())) < 1e-4
        score = found["olsson_icl_score"]
        assert abs(score["mean"] - float((loss[:, 8] - loss[:, 1]).mean())) < 1e-4
        assert score["ci_low"] <= score["mean"] <= score["ci_high"]
    assert "text.txt" in results["checkpoints"][0]["text_icl"]["source"]
    again, _ = run_dynamics(config)  # resumed from the journal, text scores included
    assert [e["text_icl"] for e in again["checkpoints"]] == [e["text_icl"] for e in results["checkpoints"]]


def test_text_longer_than_the_context_is_one_line(runs, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("t1 t2 " * 400)
    argv = ["dynamics", str(runs / "gpt2"), "--batch", "3", "--seq-len", "8", "--out", str(tmp_path / "o")]
    assert main([*argv, "--quiet", "--text", str(text)]) == 2  # --late 500 on a 24-token context
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "exceed the model's context of 24" in err, err


def test_several_seeds_print_no_none(runs, tmp_path, capsys):
    """A directory of seed-S/ runs: the seeds' summary records each seed's step, rise and last best score, and
    the printed lines say "none" where a seed has no phase change (here: too few checkpoints for the test)."""
    root = tmp_path / "seeds"
    root.mkdir()
    (root / "seed-0").symlink_to(runs / "gpt2", target_is_directory=True)
    (root / "seed-1").symlink_to(runs / "llama", target_is_directory=True)
    argv = ["dynamics", str(root), "--batch", "3", "--seq-len", "8", "--out", str(tmp_path / "out"), "--quiet"]
    assert main([*argv, "--no-circuit"]) == 0
    spread = json.loads((tmp_path / "out" / "dynamics_results.json").read_text())["seeds"]
    assert spread["seeds"] == [0, 1] and spread["found"] == 0 and spread["steps"] == [None, None]
    assert spread["median"] is None and len(spread["amplitudes"]) == len(spread["final_best"]) == 2
    out = capsys.readouterr().out
    assert "no phase change in any of 2 seeds (seed 0: none; seed 1: none)" in out and "None" not in out
