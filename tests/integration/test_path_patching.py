"""Path patching checked against an independent route: plain transformers with torch hooks.

The route: capture the clean run's head outputs and block inputs; remove the source's direct
contribution from the residual; recompute the target's slice of the q/k/v projection with the
model's *own* norm module and projection; restore the other heads of a grouped-query group; read
the target's pattern from ``output_attentions=True``. Loss and score must agree to 1e-5.
"""

import pytest
import torch
import torch.nn.functional as F

from induction_nnsight import Execution, repeated_tokens
from induction_nnsight.causal.paths.patching import Ablation, PathVariant, path_patching
from tests.reference import plain_model, plain_projections

SEQ = 8
N_HEADS = 4


def rows(seed=0, batch=3):
    return repeated_tokens(batch, SEQ, seed=seed, low=1, high=128, bos_token_id=0)


def _parts(plain, arch, layer):
    if arch == "gpt2":
        block = plain.transformer.h[layer]
        return block, block.ln_1, block.attn.c_attn, block.attn.c_proj
    block = plain.model.layers[layer]
    return block, block.input_layernorm, None, block.self_attn.o_proj


def _capture(plain, tokens):
    """Clean head outputs (o_proj inputs) and block inputs, per layer."""
    z, resid = [], []
    hooks = [
        p.register_forward_pre_hook(lambda _m, a: z.append(a[0].detach().clone())) for p in plain_projections(plain)
    ]
    layers = plain.transformer.h if hasattr(plain, "transformer") else plain.model.layers
    hooks += [
        l.register_forward_pre_hook(
            lambda _m, a, k=None: resid.append((a[0] if a else k["hidden_states"]).detach().clone()), with_kwargs=False
        )
        for l in layers
    ]
    try:
        with torch.no_grad():
            plain(tokens)
    finally:
        for h in hooks:
            h.remove()
    return z, resid


def plain_path(plain, arch, tokens, seq_len, source, target, path, replacement, capture=None):
    """``(target's induction score, repeated-half loss)`` with the path patched, by plain hooks
    (``capture``, a list, receives the target layer's head outputs)."""
    cfg = plain.config
    d_head = cfg.hidden_size // cfg.num_attention_heads if arch != "gpt2" else cfg.n_embd // cfg.n_head
    n_kv = getattr(cfg, "num_key_value_heads", None) or N_HEADS
    group = N_HEADS // n_kv
    z, resid = _capture(plain, tokens)
    (ls, hs), (lt, ht) = source, target
    hooks = []
    _, _, _, o_s = _parts(plain, arch, ls)
    w_o = (o_s.weight.T if arch == "gpt2" else o_s.weight)[:, hs * d_head : (hs + 1) * d_head]
    z_s = z[ls].reshape(*z[ls].shape[:2], N_HEADS, d_head)[:, :, hs]
    if path == "total":

        def ablate(_m, args):
            x = args[0].reshape(*args[0].shape[:2], N_HEADS, d_head).clone()
            x[:, :, hs] = replacement(ls)[..., hs, :]
            return (x.reshape(args[0].shape),)

        hooks.append(o_s.register_forward_pre_hook(ablate))
    else:
        delta = (z_s - replacement(ls)[..., hs, :]) @ w_o.T
        block, norm, fused, o_t = _parts(plain, arch, lt)
        x_new = norm(resid[lt] - delta)  # the model's own norm module
        if arch == "gpt2":
            c = "qkv".index(path)
            start = c * cfg.n_embd + ht * d_head
            module = fused
        else:
            index = ht if path == "q" else ht // group
            start = index * d_head
            module = getattr(block.self_attn, f"{path}_proj")
        new_slice = module(x_new)[..., start : start + d_head]

        def overwrite(_m, _args, out):
            out = out.clone()
            out[..., start : start + d_head] = new_slice
            return out

        hooks.append(module.register_forward_hook(overwrite))
        if group > 1 and path in "kv":
            kv = ht // group
            others = [h for h in range(kv * group, (kv + 1) * group) if h != ht]
            clean = z[lt].reshape(*z[lt].shape[:2], N_HEADS, d_head)

            def restore(_m, args):
                x = args[0].reshape(*args[0].shape[:2], N_HEADS, d_head).clone()
                x[:, :, others] = clean[:, :, others]
                return (x.reshape(args[0].shape),)

            hooks.append(o_t.register_forward_pre_hook(restore))
        if capture is not None:
            hooks.append(o_t.register_forward_pre_hook(lambda _m, a: capture.append(a[0].detach().clone())))
    try:
        with torch.no_grad():
            out = plain(tokens, output_attentions=True)
    finally:
        for h in hooks:
            h.remove()
    pattern = out.attentions[lt][:, ht]  # [batch, q, k]
    n = tokens.shape[1]
    score = torch.stack([pattern[:, q, q - seq_len + 1] for q in range(seq_len - 1, n)], -1).mean()
    return score, plain_loss(out.logits, tokens, seq_len)


def plain_loss(logits, tokens, seq_len):
    """Mean repeated-half loss, with ``F.cross_entropy``."""
    return torch.stack(
        [F.cross_entropy(logits[:, i], tokens[:, i + 1], reduction="none") for i in range(1 + seq_len, 2 * seq_len)], -1
    ).mean()


@pytest.fixture(scope="module")
def sharp_dir(tmp_path_factory):
    """``sharp_dir(arch)``: the tiny random model with its attention weights scaled up 10x, so that
    one head's path moves the target's pattern by far more than the 1e-5 tolerance."""
    from tests.conftest import save_tiny_model

    def sharpen(model):
        for name, param in model.named_parameters():
            if (
                any(k in name for k in ("c_attn", "c_proj.weight", "q_proj", "k_proj", "v_proj", "o_proj"))
                and ".mlp." not in name
            ):
                param.mul_(10.0)

    made = {}

    def make(arch):
        if arch not in made:
            made[arch] = save_tiny_model(arch, tmp_path_factory.mktemp(f"sharp-{arch}"), sharpen)
        return made[arch]

    return make


CASES = [((0, 1), (1, 2), "k"), ((0, 3), (1, 0), "q"), ((0, 0), (1, 3), "v"), ((0, 2), (1, 1), "total")]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("method", ["zero", "mean"])
def test_path_patching_equals_plain_hooks(sharp_dir, arch, method):
    from induction_nnsight import load_model

    model = load_model(str(sharp_dir(arch)), attn_implementation="eager", progress=False)
    tokens, reference = rows(), rows(seed=5, batch=4)
    variants = [PathVariant(None, None, None)] + [PathVariant(s, t, p) for s, t, p in CASES]
    result = path_patching(
        model,
        tokens,
        SEQ,
        variants,
        ablation=Ablation(method, reference),
        execution=Execution(max_tokens=3 * 17 * 4, progress=False),
    )  # several traces
    plain = plain_model(sharp_dir(arch))
    z_ref, _ = _capture(plain, reference)

    def replacement(layer):
        split = z_ref[layer].reshape(*z_ref[layer].shape[:2], N_HEADS, -1)
        return split.mean(0) if method == "mean" else torch.zeros_like(split[0])

    for i, (s, t, p) in enumerate(CASES, start=1):
        score, loss = plain_path(plain, arch, tokens, SEQ, s, t, p, replacement)
        assert torch.isclose(result.scores[i], score, atol=1e-5), (p, result.scores[i], score)
        assert torch.isclose(result.losses[i], loss, atol=1e-5), (p, result.losses[i], loss)
    # the clean variant is the clean run; a v path cannot move the pattern
    with torch.no_grad():
        out = plain(tokens, output_attentions=True)
    pattern = out.attentions[1]
    n = tokens.shape[1]
    clean = torch.stack([pattern[:, :, q, q - SEQ + 1] for q in range(SEQ - 1, n)], -1).mean(dim=(0, 2))
    loss = torch.stack([F.cross_entropy(out.logits[:, i], tokens[:, i + 1]) for i in range(1 + SEQ, 2 * SEQ)]).mean()
    assert torch.isclose(result.losses[0], loss, atol=1e-5)
    for t, value in result.clean_scores.items():
        assert abs(value - float(clean[t[1]])) < 1e-5
    assert abs(float(result.scores[3]) - result.clean_scores[(1, 3)]) < 1e-5
    assert all(
        abs(float(result.scores[i]) - result.clean_scores[t]) > 1e-3 for i, (s, t, p) in enumerate(CASES, 1) if p != "v"
    )


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_estimated_losses_are_the_plain_first_order_term(sharp_dir, arch):
    """``exact_losses=0``: an edge's loss is the clean loss plus a first-order term from plain autograd:
    ``g_t . (z_t' - z_t)`` for k/q/v (the target's patched output ``z_t'`` from the plain route), and
    ``g_s . (0 - z_s)`` for total (the source removed); every score stays exact."""
    from induction_nnsight import load_model

    model = load_model(str(sharp_dir(arch)), attn_implementation="eager", progress=False)
    tokens = rows()
    variants = [PathVariant(None, None, None)] + [PathVariant(s, t, p) for s, t, p in CASES]
    result = path_patching(model, tokens, SEQ, variants, exact_losses=0, execution=Execution(progress=False))
    plain = plain_model(sharp_dir(arch))
    zero = lambda layer: torch.zeros(tokens.shape[1], N_HEADS, plain.config.hidden_size // N_HEADS)
    captured = {}
    hooks = [
        projection.register_forward_pre_hook(
            lambda _m, a, layer=layer: (a[0].retain_grad(), captured.__setitem__(layer, a[0]), None)[-1]
        )
        for layer, projection in enumerate(plain_projections(plain))
    ]
    try:
        plain_loss(plain(tokens).logits, tokens, SEQ).backward()
    finally:
        for hook in hooks:
            hook.remove()
    split = lambda x: x.reshape(*x.shape[:2], N_HEADS, -1)
    for i, (s, t, p) in enumerate(CASES, start=1):
        patched = []
        score, loss = plain_path(plain, arch, tokens, SEQ, s, t, p, zero, capture=patched)
        assert torch.isclose(result.scores[i], score, atol=1e-5), (p, result.scores[i], score)
        assert not bool(result.exact[i])
        if p == "total":
            grad, z = split(captured[s[0]].grad)[:, :, s[1]], split(captured[s[0]].detach())[:, :, s[1]]
            first_order = (grad * (0 - z)).sum()
        else:
            grad, clean_z = split(captured[t[0]].grad)[:, :, t[1]], split(captured[t[0]].detach())[:, :, t[1]]
            first_order = (grad * (split(patched[0])[:, :, t[1]] - clean_z)).sum()
        assert abs(float(result.losses[i] - result.losses[0]) - float(first_order)) < 1e-5, (p, first_order)
        assert abs(float(first_order)) > 1e-4  # the edge moves the loss, so the check can fail


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_total_score_estimates_are_the_qk_fixed_direct_path_plus_the_rest_linear(sharp_dir, arch):
    """``--search estimate`` with nothing verified: a total edge's score is the clean score, plus the exact
    drops of its ``k`` and ``q`` paths (plain hooks), plus ``G . (0 - z_s)`` minus its direct part
    ``g_t . (0 - z_s W_O)``: ``G`` the gradient of the target's clean score (read from plain
    ``output_attentions``) at the source's output, ``g_t`` at the target's layer input, by plain autograd."""
    from induction_nnsight import load_model
    from induction_nnsight.causal.paths.search import Verification, path_search

    model = load_model(str(sharp_dir(arch)), attn_implementation="eager", progress=False)
    tokens = rows()
    target = (1, 1)
    variants = [PathVariant(None, None, None)] + [PathVariant((0, h), target, "total") for h in range(N_HEADS)]
    result, verified, _ = path_search(model, tokens, SEQ, variants, verify=0, execution=Execution(progress=False))
    assert not verified[1:].any()
    plain = plain_model(sharp_dir(arch))
    block, _, _, o_proj = _parts(plain, arch, 1)
    captured = {}
    hooks = [
        plain_projections(plain)[0].register_forward_pre_hook(
            lambda _m, a: (a[0].retain_grad(), captured.__setitem__("z", a[0]), None)[-1]
        ),
        block.register_forward_pre_hook(lambda _m, a: (a[0].retain_grad(), captured.__setitem__("x", a[0]), None)[-1]),
        _parts(plain, arch, 0)[0].register_forward_pre_hook(lambda _m, a: captured.__setitem__("x0", a[0].detach())),
    ]
    try:
        pattern = plain(tokens, output_attentions=True).attentions[1][:, 1]  # [batch, query, key]
    finally:
        for hook in hooks:
            hook.remove()
    n = tokens.shape[1]
    clean = torch.stack([pattern[:, q, q - SEQ + 1] for q in range(SEQ - 1, n)], -1).mean()  # the whole diagonal
    clean.backward()
    grad = captured["z"].grad.reshape(*tokens.shape, N_HEADS, -1)
    z = captured["z"].detach().reshape(grad.shape)
    d = z.shape[-1]
    w_o = _parts(plain, arch, 0)[3].weight.detach()
    zero = lambda layer: torch.zeros(tokens.shape[1], N_HEADS, d)
    expected = []
    for h in range(N_HEADS):
        columns = w_o[h * d : (h + 1) * d] if arch == "gpt2" else w_o[:, h * d : (h + 1) * d].T  # [d, d_model]
        direct = (captured["x"].grad * (-z[:, :, h] @ columns)).sum()
        rest = (grad[:, :, h] * -z[:, :, h]).sum() - direct
        drops = [plain_path(plain, arch, tokens, SEQ, (0, h), target, p, zero)[0] - clean for p in "kq"]
        expected.append(clean + sum(drops) + rest)
    expected = torch.stack(expected).detach()
    assert torch.allclose(result.scores[1:], expected, atol=1e-5), (result.scores[1:], expected)
    assert (expected - float(clean)).abs().max() > 1e-3  # the estimates move: the check can fail
    # --verify-largest 2 with nothing else: the total runs of the two sources whose removal |z_s W_O,s| is the
    # largest share of the residual stream entering layer 0 (every position but the first), from plain hooks
    sizes = []
    for h in range(N_HEADS):
        columns = w_o[h * d : (h + 1) * d] if arch == "gpt2" else w_o[:, h * d : (h + 1) * d].T
        written = (z[:, :, h] @ columns).norm(dim=-1)  # [batch, pos]
        sizes.append(float((written / captured["x0"].norm(dim=-1))[:, 1:].mean()))
    order = sorted(range(N_HEADS), key=lambda h: -sizes[h])
    assert sizes[order[1]] - sizes[order[2]] > 1e-3, sizes  # no near-tie at the cut: the check is well posed
    rule = Verification(0, None, 2)
    _, verified, _ = path_search(model, tokens, SEQ, variants, verify=rule, execution=Execution(progress=False))
    assert {variants[i].source[1] for i in range(1, len(variants)) if verified[i]} == set(order[:2]), sizes


def test_total_estimates_of_targets_in_several_layers_are_each_targets_own(tmp_path):
    """One copy of the rows per target: with targets in two layers (a 3-layer Llama), each target's total
    estimates equal those of a run with that target alone (its copy's gradients are its own)."""
    import transformers as tf

    from induction_nnsight import load_model
    from induction_nnsight.causal.paths.search import path_search
    from tests.conftest import TINY_BOS, TINY_VOCAB, _tiny_tokenizer

    torch.manual_seed(0)
    config = tf.LlamaConfig(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=TINY_VOCAB,
        bos_token_id=TINY_BOS,
        eos_token_id=TINY_BOS,
    )
    plain = tf.LlamaForCausalLM(config)
    with torch.no_grad():
        for name, param in plain.named_parameters():
            if "self_attn" in name:
                param.mul_(10.0)
    plain.save_pretrained(tmp_path)
    _tiny_tokenizer().save_pretrained(tmp_path)
    model = load_model(str(tmp_path), progress=False)
    tokens, quiet = rows(), Execution(progress=False)

    def totals(targets):
        variants = [PathVariant(None, None, None)] + [
            PathVariant((layer, h), t, "total") for t in targets for layer in range(t[0]) for h in range(N_HEADS)
        ]
        result, _, _ = path_search(model, tokens, SEQ, variants, verify=0, execution=quiet)
        return {(v.source, v.target): float(result.scores[i]) for i, v in enumerate(variants) if i}

    both = totals([(1, 2), (2, 1)])
    alone = {**totals([(1, 2)]), **totals([(2, 1)])}
    assert both.keys() == alone.keys() and len(both) == 4 + 8
    assert all(abs(both[k] - alone[k]) < 1e-5 for k in both), (both, alone)
    assert len({round(v, 4) for v in both.values()}) > 4  # the estimates differ: the check can fail
