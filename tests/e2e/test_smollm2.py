"""End to end on the real SmolLM2-135M-Instruct (fetched from PyPI once, cached)."""

import json

import pytest
import torch

from induction_nnsight import half_losses, model_facts, repeated_tokens, scan
from induction_nnsight.app.cli import main
from induction_nnsight.models.loading import smollm2_dir
from tests.reference import plain_transformers_scan

BATCH, SEQ_LEN = 10, 50


@pytest.fixture(scope="module")
def tokens():
    return repeated_tokens(BATCH, SEQ_LEN, seed=0, bos_token_id=1, vocab_size=49152)


def test_facts(smollm2):
    facts = model_facts(smollm2)
    assert (facts.n_layers, facts.n_heads, facts.n_kv_heads, facts.bos_token_id, facts.n_ctx) == (30, 9, 3, 1, 8192)


def test_trace_equals_plain_transformers_under_sdpa_and_eager(smollm2, smollm2_eager, tokens):
    loss, scores = plain_transformers_scan(smollm2_dir(), tokens, SEQ_LEN)
    for model in (smollm2_eager, smollm2):
        result = scan(model, tokens, SEQ_LEN)
        assert torch.allclose(result.induction_scores, scores, atol=1e-5)
        # Same logits; a float32 log-softmax over 49152 logits, summed in another
        # order, differs by up to ~2e-4 nats on losses of ~15.
        assert torch.allclose(result.loss_by_position, loss, rtol=1e-5, atol=5e-4)


def test_main_command_writes_files_and_finds_the_induction_heads(tmp_path, capsys):
    assert main(["scan", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "scan_results.json").read_text())
    for name in ("loss_by_position.json", "induction_scores.json"):
        figure = json.loads((tmp_path / name).read_text())
        assert figure["data"] and figure["layout"]["title"]["text"]
    assert results["mean_loss_first_half"] - results["mean_loss_repeated_half"] > 8
    top5 = {(h["layer"], h["head"]) for h in results["top_heads"][:5]}
    assert {(18, 6), (17, 3)} <= top5
    assert results["top_heads"][0]["score"] > 0.85
    assert len(results["induction_scores"]) == 30 and len(results["induction_scores"][0]) == 9
    assert "L18H6" in capsys.readouterr().out


def test_without_bos_induction_still_shows(smollm2):
    result = scan(smollm2, repeated_tokens(4, 30), 30)
    first, repeated = half_losses(result.loss_by_position, 30, bos=False)
    assert result.loss_by_position.shape == (59,)
    assert first - repeated > 5
    assert result.induction_scores[18, 6] > 0.5
