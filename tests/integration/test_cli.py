"""The CLI on a tiny model: files written, bad input refused in one line with exit 2."""

import json

import pytest

from induction_nnsight.cli import main

OUTPUTS = {"loss_by_position.json", "induction_scores.json", "scan_results.json"}


def tiny_args(tiny_dir, out, *extra):
    return ["scan", "--model", str(tiny_dir("gpt2")), "--low", "1", "--high", "128",
            "--batch", "2", "--seq-len", "8", "--out", str(out), *extra]


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
    assert line["layout"]["xaxis"]["title"]["text"] and line["layout"]["yaxis"]["title"]["text"]
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
