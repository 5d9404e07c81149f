"""All head kinds in one pass on tiny models of every architecture: two routes to one answer."""

from dataclasses import replace

import nnsight
import pytest
import torch

from induction_nnsight.models.attention import attention_call_name, attention_modules, attention_pattern
from induction_nnsight.probes.tokens import repeated_probe
from induction_nnsight.scores.builtin import BUILTIN_SCORES
from induction_nnsight.scores.heads import head_scores
from induction_nnsight.scores.registry import get_score
from tests.conftest import ALL_ARCHS, SDPA_ARCHS, TINY_BOS
from tests.reference import plain_attentions, reference_kind_scores

HEAD_KINDS = tuple(score.name for score in BUILTIN_SCORES)  # the built-in scores' names
SEQ_LEN = 10
PATTERN_KINDS = tuple(kind for kind in HEAD_KINDS if get_score(kind).reads == "pattern")


def probe(batch=3, seed=0):
    return repeated_probe(batch, SEQ_LEN, seed=seed, low=1, high=128, bos_token_id=TINY_BOS)


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_pattern_kinds_equal_a_query_by_query_reference(tiny_dir, tiny_model, arch):
    batch = probe()
    got = head_scores(tiny_model(arch, "eager"), batch, kinds=PATTERN_KINDS)
    _, outputs = plain_attentions(tiny_dir(arch), batch.tokens)
    expected = reference_kind_scores(outputs.attentions, batch.tokens, batch.period, batch.second_start)
    for kind in PATTERN_KINDS:
        assert torch.allclose(got.mean(kind), expected[kind], atol=1e-5), kind


@pytest.mark.parametrize("arch", SDPA_ARCHS)
def test_sdpa_equals_eager_for_every_kind(tiny_model, arch):
    batch = probe()
    eager = head_scores(tiny_model(arch, "eager"), batch)
    sdpa = head_scores(tiny_model(arch, "sdpa"), batch)
    for kind in eager.kinds:
        assert torch.allclose(eager.mean(kind), sdpa.mean(kind), atol=1e-5), kind


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_recomputed_pattern_equals_returned_weights(tiny_model, arch):
    """Under eager both routes exist in one trace: softcap, sliding windows and GQA must agree."""
    model = tiny_model(arch, "eager")
    tokens = probe(batch=2).tokens
    attentions = attention_modules(model)
    calls = [attention_call_name(a) for a in attentions]
    with torch.no_grad(), model.trace(tokens):
        pairs = []
        for attention, call in zip(attentions, calls):
            recomputed = attention_pattern(attention, False, call)
            returned = attention_pattern(attention, True, call)
            pairs.append((recomputed, returned))
        pairs = nnsight.save(pairs)
    for recomputed, returned in pairs:
        assert recomputed.shape == returned.shape
        assert torch.allclose(recomputed, returned, atol=1e-6)


def test_one_pass_scores_every_kind_with_batch_rows(tiny_model):
    batch = probe(batch=4)
    scores = head_scores(tiny_model("llama", "sdpa"), batch)
    assert set(scores.kinds) == set(HEAD_KINDS)
    for kind in scores.per_row:
        assert scores.per_row[kind].shape == (4, 2, 4), kind
    assert scores.static["copying_ov"].shape == (2, 4)
    assert scores.loss_by_position.shape == (batch.tokens.shape[1] - 1,)
    # each row is that row's own pass: the batch does not mix rows
    for row in (0, 3):
        alone = head_scores(tiny_model("llama", "sdpa"), replace(batch, tokens=batch.tokens[row : row + 1]))
        for kind in scores.per_row:
            assert torch.allclose(scores.per_row[kind][row], alone.per_row[kind][0], atol=1e-5), (row, kind)
        assert torch.allclose(scores.static["copying_ov"], alone.static["copying_ov"], atol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_copying_equals_a_hook_based_direct_logit_attribution(tiny_dir, tiny_model, arch):
    """Independent route: plain transformers, forward hooks, explicit loops over heads."""
    batch = probe(batch=2)
    got = head_scores(tiny_model(arch, "eager"), batch, kinds=("copying",)).mean("copying")
    model, outputs = plain_attentions(tiny_dir(arch), batch.tokens)
    captured = {}
    blocks = model.transformer.h if arch == "gpt2" else model.model.layers
    final_norm = model.transformer.ln_f if arch == "gpt2" else model.model.norm
    hooks = []
    for i, block in enumerate(blocks):
        proj = block.attn.c_proj if arch == "gpt2" else block.self_attn.o_proj
        hooks.append(proj.register_forward_pre_hook(lambda m, a, i=i: captured.__setitem__(i, a[0])))
    hooks.append(final_norm.register_forward_pre_hook(lambda m, a: captured.__setitem__("final", a[0])))
    with torch.no_grad():
        model(batch.tokens)
    for hook in hooks:
        hook.remove()
    unembed = model.get_output_embeddings().weight * final_norm.weight
    residual = captured["final"]
    if arch == "gpt2":
        scale = residual.std(-1, unbiased=False)
    else:
        scale = residual.pow(2).mean(-1).sqrt()
    n_heads, d_head = 4, 8
    for layer, block in enumerate(blocks):
        proj = block.attn.c_proj if arch == "gpt2" else block.self_attn.o_proj
        w_out = proj.weight.T if arch == "gpt2" else proj.weight  # [d_model, heads * d_head]
        for head in range(n_heads):
            values = []
            for b in range(2):
                for q in range(batch.second_start, batch.tokens.shape[1]):
                    z = captured[layer][b, q, head * d_head : (head + 1) * d_head]
                    out = w_out[:, head * d_head : (head + 1) * d_head] @ z
                    if arch == "gpt2":
                        out = out - out.mean()
                    key = int(outputs.attentions[layer][b, head, q].argmax())
                    token = batch.tokens[b, key]
                    values.append(float(out @ (unembed[token] - unembed.mean(0)) / scale[b, q]))
            assert got[layer, head] == pytest.approx(sum(values) / len(values), abs=1e-4)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "neox"])
def test_ov_copying_equals_eigenvalues_of_the_full_vocab_circuit(tiny_dir, tiny_model, arch):
    got = head_scores(tiny_model(arch, "eager"), probe(batch=1), kinds=("copying_ov",)).mean("copying_ov")
    model, _ = plain_attentions(tiny_dir(arch), probe(batch=1).tokens)
    n_heads, d_head, d_model = 4, 8, 32
    embed = model.get_input_embeddings().weight.double()  # [vocab, d_model]
    if arch == "gpt2":
        blocks, final = model.transformer.h, model.transformer.ln_f
    elif arch == "neox":
        blocks, final = model.gpt_neox.layers, model.gpt_neox.final_layer_norm
    else:
        blocks, final = model.model.layers, model.model.norm
    unembed = model.get_output_embeddings().weight.double() * final.weight.double()
    for layer, block in enumerate(blocks):
        for head in range(n_heads):
            if arch == "gpt2":
                w_v = block.attn.c_attn.weight.T[2 * d_model :][head * d_head : (head + 1) * d_head]
                w_o = block.attn.c_proj.weight.T[:, head * d_head : (head + 1) * d_head]
                ln = block.ln_1.weight
            elif arch == "neox":
                w_v = block.attention.query_key_value.weight.view(n_heads, 3, d_head, d_model)[head, 2]
                w_o = block.attention.dense.weight[:, head * d_head : (head + 1) * d_head]
                ln = block.input_layernorm.weight
            else:
                kv = head // 2  # 4 query heads share 2 key/value heads
                w_v = block.self_attn.v_proj.weight[kv * d_head : (kv + 1) * d_head]
                w_o = block.self_attn.o_proj.weight[:, head * d_head : (head + 1) * d_head]
                ln = block.input_layernorm.weight
            circuit = unembed @ w_o.double() @ w_v.double() @ torch.diag(ln.double()) @ embed.T  # [vocab, vocab]
            eigenvalues = torch.linalg.eigvals(circuit)
            expected = eigenvalues.sum().real / eigenvalues.abs().sum()
            assert got[layer, head] == pytest.approx(float(expected), abs=1e-4)


def test_unknown_kind_is_refused(tiny_model):
    from induction_nnsight import InductionError

    with pytest.raises(InductionError, match="'nonsense': pass one of previous_token, .*copying_ov"):
        head_scores(tiny_model("llama"), probe(), kinds=("nonsense",))
