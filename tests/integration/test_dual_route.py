"""The dual route (token and concept induction heads) on tiny models, checked against plain routes.

- the value-weighted attention scores equal a plain-transformers computation (``output_attentions``
  under eager, value vectors from a hook on the value projection) to 1e-5;
- the per-head copying scores (prefix-cached, batched) equal a plain-PyTorch forward-pre-hook patch of
  one head's slice at the second-to-last position, run on whole rows, to 1e-6;
- on a hand-built GPT-2 whose head 0 attends to the first token of a two-token span and head 1 to its
  last token, head 0 is a token head (token score near 1, concept near 0) and head 1 a concept head.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import transformers as tf

from induction_nnsight import Execution, load_model
from induction_nnsight.causal.dual_route import DualRouteProbe, Entity, dual_route, pick_entities
from induction_nnsight.causal.dual_route.attention import value_weighted_attention
from induction_nnsight.causal.dual_route.copying import COPYING_TARGETS, copying_sweep
from induction_nnsight.causal.dual_route.prompts import RandomTokens, attention_prompts, copying_prompts
from tests.conftest import TINY_ARCHS, save_tiny_model
from tests.forward_passes import forward_passes

QUIET = Execution(progress=False, max_rows=8)  # several traces per sweep: the batching is exercised
ENTITIES = [(5, 6), (7, 8, 9), (11, 12, 13, 14), (15, 16, 17, 18, 19)]
SAME_LENGTH = [(5, 6), (7, 8), (11, 12), (15, 16)]  # copying rows of one length: one batch
UNIFORM = RandomTokens.uniform(20, 120)
COMMON = dict(seed=0, separator=3, bos=0)
SMALL = DualRouteProbe(n_attention=4, n_copying=4, n_dissociation=4, max_k=2, n_reference=2, low=20, high=120, top=2)


def _blocks(hf, arch):
    if arch == "gpt2":
        return [(b.attn.c_attn, b.attn.c_proj) for b in hf.transformer.h]
    return [(layer.self_attn.v_proj, layer.self_attn.o_proj) for layer in hf.model.layers]


def _plain_value_weighted(hf, arch, tokens, keys, n_heads=4, d_head=8):
    values = {}
    hooks = [
        proj.register_forward_hook(lambda m, i, o, at=at: values.__setitem__(at, o))
        for at, (proj, _) in enumerate(_blocks(hf, arch))
    ]
    with torch.no_grad():
        out = hf(tokens, output_attentions=True)
    for hook in hooks:
        hook.remove()
    batch, n_pos = tokens.shape
    rows = []
    for at, attention in enumerate(out.attentions):  # [batch, head, query, key]
        v = values[at][..., 2 * n_heads * d_head :] if arch == "gpt2" else values[at]
        norms = v.reshape(batch, n_pos, -1, d_head).norm(dim=-1)  # [batch, key, kv_head]
        norms = norms.repeat_interleave(n_heads // norms.shape[-1], dim=-1).transpose(1, 2)
        weighted = attention[:, :, -1] * norms
        weighted = weighted / weighted.sum(-1, keepdim=True)
        rows.append(weighted[torch.arange(batch)[:, None], :, keys])  # [batch, n_keys, head]
    return torch.stack(rows, 2)


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_attention_scores_equal_output_attentions(tiny_dir, arch, attn):
    model = load_model(str(tiny_dir(arch)), attn_implementation=attn, progress=False)
    hf = tf.AutoModelForCausalLM.from_pretrained(tiny_dir(arch), attn_implementation="eager")
    groups = attention_prompts(ENTITIES * 3, UNIFORM, **COMMON)
    assert sum(len(g.index) for g in groups) == 12 and len(groups) > 1  # rows of several lengths
    for g in groups:
        keys = torch.stack([g.first, g.last], 1)
        got = value_weighted_attention(model, g.tokens, keys)
        want = _plain_value_weighted(hf, arch, g.tokens, keys)
        assert got.shape == (len(g.index), 2, 2, 4)
        assert torch.allclose(got, want, atol=1e-5)
        rows = torch.arange(len(g.index))
        assert g.tokens[rows, g.first].tolist() == [(ENTITIES * 3)[i][0] for i in g.index]
        assert g.tokens[rows, g.last].tolist() == [(ENTITIES * 3)[i][-1] for i in g.index]
        assert (g.tokens[:, : g.first.min()] != 3).all() and (g.tokens[:, g.last.max() + 1 :] == 3).sum() == len(rows)


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize("target", list(COPYING_TARGETS))
def test_copying_scores_equal_a_plain_hook_patch(tiny_model, tiny_dir, arch, target):
    (prompts,) = copying_prompts(SAME_LENGTH, UNIFORM, **COMMON)
    got = copying_sweep(tiny_model(arch), prompts, target, execution=QUIET)  # [1 + 8, batch]
    hf = tf.AutoModelForCausalLM.from_pretrained(tiny_dir(arch))
    projections = [out for _, out in _blocks(hf, arch)]
    clean = {}
    hooks = [
        p.register_forward_pre_hook(lambda m, a, at=at: clean.__setitem__(at, a[0][:, -2].clone()))
        for at, p in enumerate(projections)
    ]
    with torch.no_grad():
        hf(prompts.clean)
    for hook in hooks:
        hook.remove()
    position, index = COPYING_TARGETS[target]
    wanted = prompts.entities[:, index]

    def probability(layer=None, head=None):
        hooks = []
        if layer is not None:
            cut = slice(head * 8, (head + 1) * 8)

            def patch(module, args):
                x = args[0].clone()
                x[:, -2, cut] = clean[layer][:, cut]
                return (x,)

            hooks.append(projections[layer].register_forward_pre_hook(patch))
        with torch.no_grad():
            logits = hf(prompts.corrupt).logits
        for hook in hooks:
            hook.remove()
        return logits[:, position].log_softmax(-1)[torch.arange(len(ENTITIES)), wanted]

    want = torch.stack([probability()] + [probability(layer, head) for layer in range(2) for head in range(4)])
    assert torch.allclose(got, want, atol=1e-6)
    assert (want[1:] - want[0]).abs().max() > 1e-7  # some patch changes something: the comparison can fail


def _offset_heads(model, offsets: tuple[int, int]) -> None:
    """Layer 0: head ``h`` attends from each query ``i`` to the key ``i - offsets[h]``, whatever the tokens.

    The positions carry ``A (cos wi, sin wi, -cos wi, -sin wi)`` in four residual dimensions (summing to
    zero, so the layer norm keeps them); head ``h``'s query is that angle turned back by ``offsets[h] w``,
    its key the angle itself, so their product ``cos(w (i - j - offset))`` peaks at ``j = i - offset``.
    """
    import math

    block, omega, scale = model.transformer.h[0], 2 * math.pi / 128, 60.0
    model.transformer.wte.weight[:, 28:] = 0
    model.transformer.wpe.weight[:, 28:] = 0
    angles = omega * torch.arange(model.transformer.wpe.weight.shape[0], dtype=torch.float32)
    features = torch.stack([angles.cos(), angles.sin(), -angles.cos(), -angles.sin()], 1)
    model.transformer.wpe.weight[:, 28:32] = 30.0 * features
    weight, bias = block.attn.c_attn.weight, block.attn.c_attn.bias  # Conv1D: x @ weight + bias, q | k | v
    for head, offset in enumerate(offsets):
        q, k = slice(head * 8, head * 8 + 8), slice(32 + head * 8, 32 + head * 8 + 8)
        weight[:, q], bias[q], weight[:, k], bias[k] = 0, 0, 0, 0
        phi = omega * offset
        weight[28, head * 8], weight[29, head * 8] = scale * math.cos(phi), scale * math.sin(phi)
        weight[28, head * 8 + 1], weight[29, head * 8 + 1] = -scale * math.sin(phi), scale * math.cos(phi)
        weight[28, 32 + head * 8], weight[29, 32 + head * 8 + 1] = scale, scale


def test_hand_built_token_and_concept_heads(tmp_path):
    """The query (the end of the repeated ``r1``) sits 30 positions after ``c[0]`` in every attention row
    (``|r1|`` tokens, the span, ``r2`` and the newline fill 30 + 1 - 1 positions between), so a head looking
    30 back is a token head and one looking 29 back a concept head for two-token spans."""
    probe = DualRouteProbe(n_attention=8, n_copying=2, n_dissociation=2, max_k=2, n_reference=2, low=20, high=120)
    path = save_tiny_model("gpt2", tmp_path / "handbuilt", edit=lambda m: _offset_heads(m, (30, 29)))
    model = load_model(str(path), attn_implementation="eager", progress=False)
    entities = [Entity(f"e{i}", (5 + i, 40 + i)) for i in range(4)]
    result = dual_route(model, entities, probe=replace(probe, top=2), execution=QUIET)
    token, concept = result.mean("token_attention")[0], result.mean("concept_attention")[0]
    control = result.mean("random_end_attention")[0]
    assert token[0] > 0.9 and concept[0] < 0.1  # head 0: the token after the earlier copy
    assert concept[1] > 0.9 and token[1] < 0.1  # head 1: the end of the earlier span
    assert control[1] > 0.9  # the control: head 1 reads any span's end, entity or not
    assert result.top["token_attention"][0] == (0, 0) and result.top["concept_attention"][0] == (0, 1)
    for grid in result.scores.values():
        assert (grid["ci_low"] <= grid["mean"] + 1e-6).all() and (grid["mean"] <= grid["ci_high"] + 1e-6).all()
    # hand-built heads: two heads of opposite attention on every prompt, a ranking that repeats exactly
    assert result.reliability["token_attention"] > 0.99 and result.reliability["concept_attention"] > 0.99


def test_pick_entities_balances_lengths():
    entities = [Entity(str(i), tuple(range(n))) for i, n in enumerate([2] * 10 + [3] * 10 + [4] * 2 + [5] * 10)]
    picked = pick_entities(entities, 8, seed=0)
    assert sorted(len(e.ids) for e in picked) == [2, 2, 3, 3, 4, 4, 5, 5]
    assert picked == pick_entities(entities, 8, seed=0)


def test_copying_sweep_in_sessions_equals_one_trace_per_request_and_resumes(tiny_model, tmp_path, monkeypatch):
    from induction_nnsight.ndif.journal import Journal
    from tests.sent_requests import count_requests

    model, (prompts,) = tiny_model("llama"), copying_prompts(SAME_LENGTH, UNIFORM, **COMMON)
    one = copying_sweep(model, prompts, "concept", execution=QUIET.replace(traces_per_request=1))
    sent = count_requests(monkeypatch)  # the chunk groups of each request
    journal = Journal.open(tmp_path / "dual-route_journal.json", {"s": 1})
    bundled = copying_sweep(model, prompts, "concept", execution=QUIET.replace(traces_per_request=4, journal=journal))
    torch.testing.assert_close(bundled, one, rtol=0, atol=1e-6)
    sizes = [len(group) for group in sent]
    assert len(sizes) < sum(sizes) and max(sizes) > 1  # several traces per request
    sent.clear()
    resumed = Journal.open(tmp_path / "dual-route_journal.json", {"s": 1})
    again = copying_sweep(model, prompts, "concept", execution=QUIET.replace(journal=resumed))
    assert sent == [] and resumed.resumed == len(resumed.records)  # every chunk read back, none traced
    torch.testing.assert_close(again, one, rtol=0, atol=1e-6)


def test_copying_sweep_as_a_remote_request_equals_the_local_one(tiny_model):
    """The dry run of NDIF's round trip (whole rows, no prefix cache: it does not travel) equals the local
    prefix-cached sweep."""
    model, (prompts,) = tiny_model("gpt2"), copying_prompts(SAME_LENGTH, UNIFORM, **COMMON)
    local = copying_sweep(model, prompts, "token", execution=QUIET)
    remote = copying_sweep(model, prompts, "token", execution=QUIET.replace(remote="local"))
    torch.testing.assert_close(remote, local, rtol=0, atol=1e-5)


def test_the_whole_dual_route_survives_the_remote_round_trip(tiny_model):
    """Every trace of the dual route (attention scores, copying sweeps, the dissociation's ablations)
    through the dry run of NDIF's round trip gives the local numbers."""
    model = tiny_model("llama")
    probe = SMALL
    entities = [Entity(f"e{i}", (5 + i, 40 + i)) for i in range(4)]
    local = dual_route(model, entities, probe=probe, execution=QUIET)
    remote = dual_route(model, entities, probe=probe, execution=QUIET.replace(remote="local"))
    for name, grid in local.scores.items():
        torch.testing.assert_close(remote.scores[name]["mean"], grid["mean"], rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("remote", [False, "local"])
def test_the_recorded_cost_is_the_rows_and_tokens_the_model_ran(tiny_model, remote):
    """``DualRouteResult.cost`` equals the rows and tokens a forward pre-hook on the torch model counts over a
    whole dual route: the attention prompts, each copying sweep (prefix cached here; whole rows when sent as
    requests) and the dissociation's ablations."""
    model = tiny_model("llama")
    probe = SMALL
    entities = [Entity(f"e{i}", (5 + i, 40 + i)) for i in range(4)]
    with forward_passes(model) as (rows, tokens):
        found = dual_route(model, entities, probe=probe, execution=QUIET.replace(remote=remote))
    assert found.cost.forward_passes == sum(rows) and found.cost.backward_passes == 0
    assert found.cost.tokens == sum(tokens)
    assert len(rows) > 6  # several traces: the comparison can fail
