"""The CLI on a tiny model: files written, bad input refused in one line with exit 2."""

import json

import pytest

from induction_nnsight.app.cli import main
from tests.cli_args import tiny_cli

OUTPUTS = {"loss_by_position.json", "induction_scores.json", "scan_results.json"}


def tiny_args(tiny_dir, out, *extra):
    return tiny_cli("scan", tiny_dir("gpt2"), out, *extra, seq_len=8)


def test_scan_writes_three_files(tiny_dir, tmp_path, capsys):
    assert main(tiny_args(tiny_dir, tmp_path, "--top", "3")) == 0
    assert {p.name for p in tmp_path.iterdir()} == OUTPUTS
    results = json.loads((tmp_path / "scan_results.json").read_text())
    assert results["settings"]["batch"] == 2 and results["settings"]["seq_len"] == 8
    assert len(results["loss_by_position"]) == 1 + 2 * 8 - 1
    assert len(results["induction_scores"]) == 2 and len(results["induction_scores"][0]) == 4
    assert len(results["top_heads"]) == 3
    heat = json.loads((tmp_path / "induction_scores.json").read_text())
    assert heat["data"][0]["type"] == "heatmap"
    assert heat["data"][0]["text"][1][2].startswith("L1H2: ")
    line = json.loads((tmp_path / "loss_by_position.json").read_text())
    assert line["layout"]["xaxis"]["title"]["text"] == "Token position predicted"
    assert line["layout"]["yaxis"]["title"]["text"] == "Mean cross-entropy loss (nats)"
    assert heat["data"][0]["z"] == results["induction_scores"]
    assert line["data"][0]["y"] == results["loss_by_position"]
    assert "rank" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, fix",
    [
        (["--high", "500"], "--high 128"),
        (["--seq-len", "100"], "--seq-len 63"),
        (["--low", "50", "--high", "50"], "--low"),
        (["--model", "/nonexistent/dir/model.gguf"], ".gguf"),
    ],
)
def test_bad_input_one_line_exit_2_no_files(tiny_dir, tmp_path, capsys, extra, fix):
    out = tmp_path / "out"
    assert main(tiny_args(tiny_dir, out, *extra)) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and fix in errors[0] and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_out_dir(tiny_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(tiny_args(tiny_dir, blocker / "sub")) == 2
    assert "--out" in capsys.readouterr().err


def test_batch_below_one_is_a_usage_error(tiny_dir, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args(tiny_dir, tmp_path, "--batch", "0"))
    assert exit_.value.code == 2


def test_offline_hub_id_names_the_offline_model(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert main(["scan", "--model", "openai-community/gpt2", "--out", str(tmp_path)]) == 2
    assert "--model smollm2-135m" in capsys.readouterr().err


def test_heads_writes_results_and_a_chart_per_kind(tiny_dir, tmp_path, capsys):
    args = tiny_cli("heads", tiny_dir("llama"), tmp_path, "--top", "2")
    assert main(args) == 0
    results = json.loads((tmp_path / "heads_results.json").read_text())
    from induction_nnsight.scores.builtin import BUILTIN_SCORES

    HEAD_KINDS = [score.name for score in BUILTIN_SCORES]

    assert set(results["kinds"]) == set(HEAD_KINDS)
    for kind in HEAD_KINDS:
        chart = json.loads((tmp_path / f"heads_{kind}.json").read_text())
        assert chart["data"][0]["z"] == results["kinds"][kind]["scores"], kind
        assert len(results["kinds"][kind]["top"]) == 2
    assert len(json.loads((tmp_path / "heads_top.json").read_text())["data"]) == len(HEAD_KINDS)
    assert "previous token" in capsys.readouterr().out


def test_report_and_attention_commands(tiny_dir, tmp_path, capsys):
    model = str(tiny_dir("gpt2"))
    assert main(tiny_cli("report", model, tmp_path, "--kinds", "induction", "bos")) == 0
    report = (tmp_path / "report.txt").read_text()
    assert "GPT2LMHeadModel" in report and "induction" in report and "mean loss" in report
    assert (
        main(
            [
                "attention",
                "--model",
                model,
                "--layer",
                "1",
                "--head",
                "3",
                "--prompt",
                "t5 t6 t7",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    view = json.loads((tmp_path / "attention_L1H3_results.json").read_text())
    assert view["tokens"] == ["<bos>", "t5", "t6", "t7", "t5", "t6", "t7"]
    assert len(view["pattern"]) == 7 and abs(sum(view["pattern"][6]) - 1) < 1e-4


@pytest.mark.parametrize(
    "args, fix",
    [
        (["heads", "--threshold", "1.5"], "--threshold"),
        (["heads", "--kinds", "bogus"], "--kinds"),
        (["attention", "--layer", "7", "--head", "0", "--prompt", "t5"], "--layer 7"),
        (["attention", "--layer", "0", "--head", "9", "--prompt", "t5"], "--head 9"),
        (["attention", "--layer", "0", "--head", "0", "--prompt", "  "], "--prompt"),
    ],
)
def test_heads_and_attention_bad_input(tiny_dir, tmp_path, capsys, args, fix):
    out = tmp_path / "out"
    extra = ["--low", "1", "--high", "128"] if args[0] == "heads" else []
    assert main([*args, "--model", str(tiny_dir("gpt2")), "--out", str(out), *extra]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and fix in errors[0]
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("arch", ["bloom", "gemma2", "llama-nested"])
def test_a_family_the_preflight_cannot_read_still_runs(tiny_dir, tmp_path, arch):
    """The check before the weights load builds the weightless model under sdpa and detects its layout on
    meta weights: BLOOM and Gemma 2 have no sdpa kernel, a nested layout is found only by what its modules
    compute. The preflight then steps aside and the load checks the model (it used to be a traceback or a
    refusal of a model that works)."""
    assert main(tiny_cli("ablate", tiny_dir(arch), tmp_path, "--layers", "0", "--top-k", "1", "--draws", "1")) == 0
    assert (tmp_path / "ablation_results.json").exists()
