"""The heads pass by chunks of queries, and by groups of layers, equals the pass over each layer's whole
pattern, on tiny models."""

import pytest
import torch

from induction_nnsight.ndif.execution import Execution
from induction_nnsight.probes.tokens import repeated_probe
from induction_nnsight.scores.heads import head_scores
from tests.conftest import TINY_BOS

SEQ_LEN = 30  # 61 positions


@pytest.mark.parametrize("arch, attn", [("llama", "sdpa"), ("gpt2", "eager"), ("mistral", "sdpa")])
def test_small_chunks_give_the_whole_pattern_scores(tiny_model, arch, attn):
    model = tiny_model(arch, attn)
    probe = repeated_probe(2, SEQ_LEN, seed=3, low=1, high=40, bos_token_id=TINY_BOS)
    n = probe.tokens.shape[1]
    whole = head_scores(model, probe, execution=Execution(pattern_budget=2 * 4 * n * n))  # one chunk: the whole pattern
    chunked = head_scores(model, probe, execution=Execution(pattern_budget=2 * 4 * n * 7))  # chunks of 7 queries
    grouped = head_scores(model, probe)  # the default budget: both layers' heads stacked and reduced at once
    for other in (chunked, grouped):
        assert set(other.per_row) == set(whole.per_row)
        for kind in whole.per_row:
            assert torch.allclose(other.per_row[kind], whole.per_row[kind], atol=1e-5, equal_nan=True), kind
        assert torch.allclose(other.loss_by_position, whole.loss_by_position, atol=1e-6)
