"""The anti-induction score: induction attention times the suppression of the attended token.

On the tiny GPT-2, negating a last-layer head's output projection (which leaves every attention
pattern as it was) negates that head's score and leaves every other head's alone: the score is
linear in what the head writes, with the sign of suppression (to 2%: the score is divided by the
final norm's scale of the residual, which the negated head's own output shifts a little).
"""

from __future__ import annotations

import torch

from induction_nnsight import Execution, head_scores, load_model
from induction_nnsight.probes.tokens import repeated_probe
from induction_nnsight.scores.registry import get_score
from tests.conftest import TINY_BOS, save_tiny_model

QUIET = Execution(progress=False)
SEQ_LEN = 12


def probe():
    return repeated_probe(3, SEQ_LEN, seed=0, low=1, high=128, bos_token_id=TINY_BOS)


def _negate_head(model, layer: int, head: int) -> None:
    model.transformer.h[layer].attn.c_proj.weight[head * 8 : (head + 1) * 8] *= -1  # Conv1D: rows are inputs


def test_negating_a_last_layer_head_negates_its_score(tmp_path):
    plain = load_model(str(save_tiny_model("gpt2", tmp_path / "a")), attn_implementation="eager", progress=False)
    flipped_dir = save_tiny_model("gpt2", tmp_path / "b", edit=lambda m: _negate_head(m, 1, 2))
    flipped = load_model(str(flipped_dir), attn_implementation="eager", progress=False)
    before = head_scores(plain, probe(), kinds=("anti_induction",), loss=False, execution=QUIET).mean("anti_induction")
    after = head_scores(flipped, probe(), kinds=("anti_induction",), loss=False, execution=QUIET).mean("anti_induction")
    assert before[1, 2].abs() > 1e-6  # a nonzero score to flip: the test can fail
    assert torch.allclose(after[1, 2], -before[1, 2], rtol=2e-2, atol=1e-9)
    others = torch.ones_like(before, dtype=torch.bool)
    others[1, 2] = False
    assert torch.allclose(after[others], before[others], rtol=2e-2, atol=1e-7)


def test_declared_as_a_signed_logit_kind():
    score = get_score("anti_induction")
    assert score.reads == "logits" and score.signed and score.unit == "logits"
    score.check_threshold(score.threshold)
