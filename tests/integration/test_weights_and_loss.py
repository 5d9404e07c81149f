"""Weight-only scores cached against the weights' version; the chunked loss against cross_entropy."""

import nnsight
import pytest
import torch
import torch.nn.functional as F

from induction_nnsight import load_model
from induction_nnsight.ndif.execution import Execution
from induction_nnsight.probes.tokens import repeated_probe
from induction_nnsight.scores import weights as weight_module
from induction_nnsight.scores.heads import head_scores
from induction_nnsight.scores.losses import per_position_loss, token_losses
from induction_nnsight.scores.registry import get_score
from tests.conftest import TINY_BOS


def probe(batch=2):
    return repeated_probe(batch, 6, seed=0, low=1, high=128, bos_token_id=TINY_BOS)


@pytest.fixture
def own_model(tiny_dir):
    """A model of this test's own (its weights get edited), fresh each time."""
    return lambda arch: load_model(str(tiny_dir(arch)), attn_implementation="eager", progress=False)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_weight_scores_are_cached_and_recomputed_after_an_in_place_edit(own_model, monkeypatch, arch):
    model = own_model(arch)
    calls = []
    compute = weight_module.static_scores
    monkeypatch.setattr(weight_module, "static_scores", lambda *a, **k: calls.append(1) or compute(*a, **k))
    first = head_scores(model, probe(), kinds=("copying_ov",), loss=False).mean("copying_ov")
    again = head_scores(model, probe(), kinds=("copying_ov",), loss=False).mean("copying_ov")
    assert len(calls) == 1  # the second call read the cache
    assert torch.equal(first, again)
    plan = weight_module.weight_plan(model)
    o_proj = model.get(plan.layout.o_proj[0]).weight
    with torch.no_grad():
        o_proj.mul_(-1.0)  # layer 0's OV circuit negated: its copying scores change sign
    edited = head_scores(model, probe(), kinds=("copying_ov",), loss=False).mean("copying_ov")
    assert len(calls) == 2
    assert torch.allclose(edited[0], -first[0], atol=1e-5)
    assert torch.allclose(edited[1:], first[1:], atol=1e-6)
    # the independent route: the same scores computed inside a trace, as on NDIF
    with torch.no_grad(), model.trace(probe().tokens):
        in_trace = nnsight.save(weight_module.static_scores(model, plan, [get_score("copying_ov")]))
    assert torch.allclose(edited, in_trace["copying_ov"], atol=1e-6)


def test_a_reloaded_state_dict_is_a_new_version(own_model):
    model = own_model("llama")
    before = head_scores(model, probe(), kinds=("copying_ov",), loss=False).mean("copying_ov")
    state = {k: v.clone() for k, v in model._module.state_dict().items()}
    for name, value in state.items():
        if name.endswith("o_proj.weight"):
            value.mul_(-1.0)
    model._module.load_state_dict(state)
    after = head_scores(model, probe(), kinds=("copying_ov",), loss=False).mean("copying_ov")
    assert torch.allclose(after, -before, atol=1e-5)


def test_dry_run_computes_weight_scores_in_the_trace(tiny_model):
    model = tiny_model("gpt2", "eager")
    here = head_scores(model, probe(), kinds=("copying_ov",), loss=False).mean("copying_ov")
    remote_route = head_scores(
        model, probe(), kinds=("copying_ov",), loss=False, execution=Execution(remote="local")
    ).mean("copying_ov")
    assert torch.allclose(here, remote_route, atol=1e-6)


@pytest.mark.parametrize("chunk_elements", [1, 3 * 128, 2**21])  # one position per chunk, a ragged split, one chunk
def test_chunked_loss_equals_cross_entropy(tiny_model, chunk_elements):
    model = tiny_model("llama", "eager")
    tokens = probe(batch=3).tokens
    with torch.no_grad(), model.trace(tokens):
        logits = nnsight.save(model.output.logits)  # [batch, pos, vocab]
    expected = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).double(), tokens[:, 1:].reshape(-1), reduction="none"
    ).view(3, -1)
    got = token_losses(logits, tokens, chunk_elements=chunk_elements)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert torch.allclose(got.double(), expected, atol=1e-5)
    assert torch.allclose(
        token_losses(logits.bfloat16(), tokens, chunk_elements).double(),
        F.cross_entropy(
            logits[:, :-1].bfloat16().float().reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
        )
        .view(3, -1)
        .double(),
        atol=1e-5,
    )
    assert torch.allclose(per_position_loss(logits, tokens), expected.mean(0).float(), atol=1e-5)


def test_a_pass_without_the_loss_stops_before_the_unembedding(tiny_model):
    model = tiny_model("gpt2", "eager")
    calls = []
    hook = model._module.lm_head.register_forward_hook(lambda *args: calls.append(1))
    try:
        without = head_scores(model, probe(), loss=False)
        assert calls == []  # the trace stopped after its last read
        with_loss = head_scores(model, probe())
        assert calls == [1]
    finally:
        hook.remove()
    for kind in without.kinds:
        assert torch.allclose(without.mean(kind), with_loss.mean(kind), atol=1e-6, equal_nan=True), kind
