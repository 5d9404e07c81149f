"""Every head kind on the real SmolLM2, in one pass, under sdpa and eager."""

import json

import pytest
import torch

from induction_nnsight.app.cli import main
from induction_nnsight.models.loading import smollm2_dir
from induction_nnsight.scores.detect import default_probe, detect_heads
from induction_nnsight.scores.heads import head_scores
from tests.reference import plain_attentions, reference_kind_scores


@pytest.fixture(scope="module")
def probe(smollm2):
    return default_probe(smollm2, batch=4, seq_len=30)


def test_sdpa_and_eager_agree_and_match_plain_transformers(smollm2, smollm2_eager, probe):
    sdpa = head_scores(smollm2, probe, kinds=("previous_token", "induction", "bos"))
    eager = head_scores(smollm2_eager, probe, kinds=("previous_token", "induction", "bos"))
    _, outputs = plain_attentions(smollm2_dir(), probe.tokens)
    expected = reference_kind_scores(outputs.attentions, probe.tokens, probe.period, probe.second_start)
    for kind in ("previous_token", "induction", "bos"):
        assert torch.allclose(sdpa.mean(kind), eager.mean(kind), atol=1e-5)
        assert torch.allclose(sdpa.mean(kind), expected[kind], atol=1e-5)


def test_detector_finds_the_reference_previous_token_heads(smollm2):
    detection = detect_heads(smollm2, "previous_token", threshold=0.7)
    found = {(h["layer"], h["head"]): h for h in detection.heads}
    assert {(16, 0), (11, 1), (2, 1)} <= set(found)
    assert found[(16, 0)]["score"] == pytest.approx(0.90, abs=0.01)
    assert found[(16, 0)]["clearly_above"]


def test_heads_command_on_smollm2(tmp_path):
    assert main(["heads", "--out", str(tmp_path), "--batch", "4", "--seq-len", "30"]) == 0
    results = json.loads((tmp_path / "heads_results.json").read_text())
    induction_top = {(h["layer"], h["head"]) for h in results["kinds"]["induction"]["top"]}
    exact_top = {(h["layer"], h["head"]) for h in results["kinds"]["induction_exact"]["top"]}
    assert (18, 6) in induction_top and (18, 6) in exact_top
    assert results["kinds"]["copying_ov"]["top"][0]["score"] > 0.9


def test_the_anti_induction_detector_says_none_on_smollm2(smollm2, probe):
    """A detector that can say "none": SmolLM2 has no head over the anti-induction threshold (its strongest,
    L24H4, suppresses by a fraction of a logit), so none is detected, while the induction detector, on
    the same probe, finds L18H6."""
    anti = detect_heads(smollm2, "anti_induction", probe=probe)
    assert anti.threshold == 0.5 and anti.heads == []
    scores = torch.as_tensor(anti.scores)
    assert 0.05 < float(scores.max()) < 0.5  # a real score, just not one over the threshold
    induction = detect_heads(smollm2, "induction", probe=probe)
    assert (18, 6) in {(h["layer"], h["head"]) for h in induction.heads}
