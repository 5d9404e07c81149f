"""The scan on tiny random models: two routes to one answer, every attention implementation."""

import pytest
import torch

from induction_nnsight import induction_scores, loss_by_position, model_facts, repeated_tokens, scan
from induction_nnsight.models.layout import model_layout
from tests.conftest import TINY_ARCHS, TINY_BOS
from tests.reference import plain_transformers_scan

SEQ_LEN = 12


def tokens_for(batch=3, seq_len=SEQ_LEN, seed=0):
    return repeated_tokens(batch, seq_len, seed=seed, low=1, high=128, bos_token_id=TINY_BOS)


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_scan_equals_plain_transformers(tiny_dir, tiny_model, arch, attn):
    tokens = tokens_for()
    result = scan(tiny_model(arch, attn), tokens, SEQ_LEN)
    loss, scores = plain_transformers_scan(tiny_dir(arch), tokens, SEQ_LEN)
    assert result.induction_scores.shape == scores.shape
    assert torch.allclose(result.induction_scores, scores, atol=1e-5)
    assert torch.allclose(result.loss_by_position, loss, atol=1e-5)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_single_purpose_functions_match_the_combined_scan(tiny_model, arch):
    model, tokens = tiny_model(arch), tokens_for()
    both = scan(model, tokens, SEQ_LEN)
    assert torch.equal(loss_by_position(model, tokens), both.loss_by_position)
    assert torch.equal(induction_scores(model, tokens, SEQ_LEN), both.induction_scores)
    assert loss_by_position(model, tokens).shape == (tokens.shape[1] - 1,)


def test_same_seed_same_numbers(tiny_model):
    model = tiny_model("llama", "sdpa")
    first = scan(model, tokens_for(seed=5), SEQ_LEN)
    again = scan(model, tokens_for(seed=5), SEQ_LEN)
    other = scan(model, tokens_for(seed=6), SEQ_LEN)
    assert torch.equal(first.induction_scores, again.induction_scores)
    assert not torch.equal(first.induction_scores, other.induction_scores)


def test_layers_found_from_the_model(tiny_model):
    assert model_layout(tiny_model("gpt2")).attention == ("transformer.h.0.attn", "transformer.h.1.attn")
    assert model_layout(tiny_model("llama")).attention == ("model.layers.0.self_attn", "model.layers.1.self_attn")
    facts = model_facts(tiny_model("llama"))
    assert (facts.n_layers, facts.n_heads, facts.n_kv_heads, facts.bos_token_id) == (2, 4, 2, TINY_BOS)
