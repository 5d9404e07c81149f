"""In-context learning on text, and the two new commands' CLI behaviour, on tiny models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import transformers as tf

from induction_nnsight import Execution
from induction_nnsight.app.cli import main
from induction_nnsight.app.outputs import parse_strict
from induction_nnsight.errors import InductionError
from induction_nnsight.scores.icl import default_text, icl_scores, loss_by_token, read_text, text_windows

QUIET = Execution(progress=False)


def test_loss_by_token_equals_plain_cross_entropy(tiny_model, tiny_dir):
    windows = torch.randint(1, 128, (5, 40), generator=torch.Generator().manual_seed(0))
    got = loss_by_token(tiny_model("llama"), windows, rows_per_trace=2, execution=QUIET)
    hf = tf.AutoModelForCausalLM.from_pretrained(tiny_dir("llama"))
    with torch.no_grad():
        logits = hf(windows).logits
    want = F.cross_entropy(logits[:, :-1].transpose(1, 2), windows[:, 1:], reduction="none")
    assert torch.allclose(got, want, atol=1e-5)


def test_icl_score_is_late_minus_early_with_an_interval():
    losses = torch.tensor([[5.0, 4.0, 3.0, 1.0], [6.0, 4.0, 2.0, 2.0], [4.0, 4.0, 4.0, 0.0]])
    score = icl_scores(losses, early=1, late=4)
    assert score["mean"] == pytest.approx(((1 - 5) + (2 - 6) + (0 - 4)) / 3)
    assert score["ci_low"] <= score["mean"] <= score["ci_high"]
    assert score["sd"] == 0 and score["windows_to_resolve"] == 2  # every window -4: no spread, 2 windows resolve it
    with pytest.raises(InductionError, match="--early"):
        icl_scores(losses, early=3, late=5)


def test_windows_and_text_sources(tmp_path):
    slots = [[0, *range(10 + 5 * i, 15 + 5 * i)] for i in range(4)]  # the 4 slots of 5 tokens after BOS
    rows = text_windows(list(range(10, 30)), 3, 6, bos=0)
    assert rows.shape == (3, 6) and all(r in slots for r in rows.tolist())  # whole slots, no overlap
    assert rows[:, 1].tolist() == sorted(set(rows[:, 1].tolist()))  # distinct, in text order
    assert text_windows(list(range(10, 30)), 3, 6, bos=0).equal(rows)  # seeded
    assert text_windows(list(range(10, 30)), 4, 6, bos=0).tolist() == slots  # every slot: the whole text
    # across the whole text: 16 windows of 1,000 slots land in every quarter of it
    starts = text_windows(list(range(10_000)), 16, 11, bos=0)[:, 1]
    assert {int(s) // 2500 for s in starts} == {0, 1, 2, 3}
    assert not text_windows(list(range(10_000)), 16, 11, bos=0, seed=1)[:, 1].equal(starts)
    with pytest.raises(InductionError, match="--windows 3 or less"):
        text_windows(list(range(20)), 9, 6, bos=None)
    text, source = default_text()
    assert len(text) > 100_000 and "pydoc_data.topics" in source
    (tmp_path / "a.txt").write_text("one two", encoding="utf-8")
    (tmp_path / "b.md").write_text("three", encoding="utf-8")
    assert read_text(tmp_path)[0] == "one two\n\nthree"
    with pytest.raises(InductionError, match="no such file"):
        read_text(tmp_path / "missing")


def test_icl_command_writes_strict_results(tiny_dir, tmp_path, capfd):
    text = tmp_path / "words.txt"
    text.write_text(" ".join(f"t{i % 100 + 1}" for i in range(2000)), encoding="utf-8")
    out = tmp_path / "out"
    args = ["icl", "--model", str(tiny_dir("gpt2")), "--text", str(text), "--windows", "3", "--length", "64"]
    assert main([*args, "--early", "5", "--late", "60", "--out", str(out)]) == 0
    results = parse_strict((out / "icl_results.json").read_text())
    assert results["positions"] == [5, 60] and len(results["loss_by_token_index"]) == 63
    assert set(results["olsson_icl_score"]) == {"mean", "ci_low", "ci_high", "sd", "windows_to_resolve"}
    assert str(text) in results["source"]
    assert (out / "icl_loss_by_token.json").exists()


@pytest.mark.parametrize(
    "args, fix",
    [
        (["icl", "--text", "/nonexistent/file.txt"], "--text"),
        (["icl", "--early", "600"], "--early"),
        (["dual-route", "--low", "20", "--high", "100000"], "--low/--high"),
    ],
)
def test_bad_input_one_line_exit_2_no_file(tiny_dir, tmp_path, capfd, args, fix):
    out = tmp_path / "out"
    assert main([*args, "--model", str(tiny_dir("gpt2")), "--out", str(out)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fix in err[0] and "Traceback" not in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_dual_route_command_writes_every_grid(tiny_dir, tmp_path):
    out = tmp_path / "out"
    args = ["dual-route", "--model", str(tiny_dir("gpt2")), "--low", "20", "--high", "120", "--prompts", "4"]
    small = ["--copying-prompts", "3", "--dissociation-prompts", "2", "--max-k", "2", "--top", "2"]
    assert main([*args, *small, "--out", str(out)]) == 0
    results = parse_strict((out / "dual_route_results.json").read_text())
    for grid in ("token_attention", "concept_attention", "random_end_attention", "token_copying", "concept_copying"):
        assert len(results["scores"][grid]["mean"]) == 2 and len(results["scores"][grid]["ci_low"][0]) == 4
        assert len(results["top_heads"][grid]) == 2
        # null where a grid is constant over heads; Spearman-Brown steps a negative half correlation below -1
        reliability = results["split_half_reliability"][grid]
        assert reliability is None or reliability <= 1.0
    assert results["entities"]["source"].startswith("pycountry")
    assert set(results["dissociation"]["drop"]) == {"concept", "token"}
    assert [p["k"] for p in results["dissociation"]["curve"]["token"]["verbatim"]] == [1, 2]
    assert results["scores"]["token_copying"]["measure"] == "probability"
    recipe = results["settings"]["recipe"]
    assert recipe["tokens_before_newline"] == 30 and recipe["random_tokens"].startswith("uniform")  # t-word ids
    assert (out / "dual_route_dissociation.json").exists() and (out / "dual_route_scatter.json").exists()
    assert not list(out.glob("*journal*"))  # the finished job's journal is gone
