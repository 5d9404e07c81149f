"""Head estimators, the QK fix and the head search on tiny random models, against plain autograd and
exact ablation (independent routes: transformers with PyTorch hooks, no nnsight)."""

import pytest
import torch

from induction_nnsight import Execution, repeated_tokens
from induction_nnsight.causal.ablation.estimators import Estimator, head_attribution, head_estimate
from induction_nnsight.causal.ablation.search import HeadSearch, compare, search_heads
from induction_nnsight.causal.ablation.sweep import ablation_sweep, repeated_half_metric
from induction_nnsight.causal.qk_fix import attention_pattern, linear_qk_effect, qk_fix_effect
from tests.conftest import TINY_ARCHS
from tests.reference import plain_model, plain_projections

QUIET = Execution(progress=False)
SEQ, N_HEADS = 8, 4


def rows(seed=0, batch=3):
    return repeated_tokens(batch, SEQ, seed=seed, low=1, high=128, bos_token_id=0)


def _blocks(plain):
    return plain.transformer.h if hasattr(plain, "transformer") else plain.model.layers


def by_autograd(plain, tokens, metric, alpha=0.0, drop=None):
    """``[n_layers, n_heads]`` ``g . (0 - x)`` per head, every head moved ``alpha`` of the way to zero and
    layer ``drop``'s residual contribution cut from the backward pass, through PyTorch hooks."""
    kept = []

    def pre(_m, args):
        x = args[0]
        x.retain_grad()
        kept.append(x)
        if alpha:
            return (x + alpha * (-x).detach(), *args[1:])
        return None

    def cut(_m, args, kwargs, out):
        hidden = args[0] if args else kwargs["hidden_states"]
        first = out[0] if isinstance(out, tuple) else out
        new = hidden + (first - hidden).detach()
        return (new, *out[1:]) if isinstance(out, tuple) else new

    hooks = [p.register_forward_pre_hook(pre) for p in plain_projections(plain)]
    if drop is not None:
        hooks.append(_blocks(plain)[drop].register_forward_hook(cut, with_kwargs=True))
    try:
        logits = plain(tokens).logits
    finally:
        for hook in hooks:
            hook.remove()
    metric(logits, tokens).mean().backward()
    # x is the pre-edit value: d(x + a * (-x).detach()) / dx is the identity, so x.grad is the moved point's
    grads = [torch.zeros_like(x) if x.grad is None else x.grad for x in kept]  # None: no path left to the metric
    return torch.stack(
        [(g * -x.detach()).reshape(*x.shape[:2], N_HEADS, -1).sum(dim=(0, 1, 3)) for g, x in zip(grads, kept)]
    )


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_each_estimator_equals_plain_autograd(tiny_model, tiny_dir, arch):
    model, tokens, metric = tiny_model(arch), rows(), repeated_half_metric(SEQ, True)
    plain = plain_model(tiny_dir(arch))
    found = head_estimate(model, tokens, metric, "zero", estimator="plain", execution=QUIET)
    assert torch.allclose(found.estimate, by_autograd(plain, tokens, metric), atol=1e-5)
    assert torch.allclose(found.estimate, head_attribution(model, tokens, metric, "zero"), atol=1e-6)
    steps = 3
    ig = head_estimate(model, tokens, metric, "zero", estimator=Estimator("ig", steps), execution=QUIET)
    ig_hand = torch.stack([by_autograd(plain, tokens, metric, alpha=(i + 0.5) / steps) for i in range(steps)])
    assert torch.allclose(ig.estimate, ig_hand.mean(dim=0), atol=1e-5)
    assert not torch.allclose(ig.estimate, found.estimate, atol=1e-5)  # the steps did move the point
    graddrop = head_estimate(model, tokens, metric, "zero", estimator="graddrop", execution=QUIET)
    dropped = torch.stack([by_autograd(plain, tokens, metric, drop=layer) for layer in range(2)])
    hand = dropped.abs().sum(dim=0) / 1 * torch.sign(dropped.sum(dim=0))
    assert torch.allclose(graddrop.estimate, hand, atol=1e-5)
    assert torch.all(dropped[1][1] == 0)  # a head's own layer dropped: its gradient is gone
    assert ig.cost.forward_passes == steps * tokens.shape[0] and graddrop.cost.backward_passes == 2 * tokens.shape[0]


def test_integrated_gradients_converge_to_one_heads_exact_ablation(tiny_model):
    """One head moved alone: the midpoint rule's average converges to the exact ablation effect (within
    2% with 32 steps here), while the one-point estimate (AtP) is further off."""
    model, tokens, metric = tiny_model("llama"), rows(), repeated_half_metric(SEQ, True)
    sweep = ablation_sweep(model, tokens, metric, execution=QUIET)
    head = max(((layer, h) for layer in range(2) for h in range(N_HEADS)), key=lambda x: abs(float(sweep.delta[x])))
    exact = float(sweep.delta[head])
    only = torch.zeros(2, N_HEADS, dtype=torch.bool)
    only[head] = True
    errors = {}
    for steps in (1, 4, 32):
        found = head_estimate(model, tokens, metric, estimator=Estimator("ig", steps, only), execution=QUIET)
        assert torch.count_nonzero(found.estimate) == 1  # the other heads were not moved
        errors[steps] = abs(float(found.estimate[head]) - exact)
    plain = abs(float(head_estimate(model, tokens, metric, estimator="plain", execution=QUIET).estimate[head]) - exact)
    assert errors[32] <= 0.02 * abs(exact)
    assert errors[32] <= errors[4] <= errors[1] and errors[32] < plain


def test_qk_fix_is_exact_for_a_change_of_one_heads_key(tiny_dir):
    """GPT-2, layer 1 head 2: its keys shifted by a large random vector through a hook on ``c_attn``;
    the pattern from ``output_attentions`` is the exact route. For the induction score (linear in the
    pattern) the QK fix equals the exact change; the linearised softmax does not."""
    plain = plain_model(tiny_dir("gpt2"))
    tokens, layer, head = rows(), 1, 2
    d_model = plain.config.n_embd
    d_head = d_model // N_HEADS
    shift = 3 * torch.randn(tokens.shape[1], d_head)  # per position: a shift shared by every key moves nothing
    key = slice(d_model + head * d_head, d_model + (head + 1) * d_head)
    states = {}

    def keep(_m, _args, out):
        states["qkv"] = out.detach().clone()

    def edit(_m, _args, out):
        out = out.clone()
        out[..., key] += shift
        return out

    attn = plain.transformer.h[layer].attn.c_attn
    with torch.no_grad():
        hook = attn.register_forward_hook(keep)
        clean = plain(tokens, output_attentions=True).attentions[layer][:, head]
        hook.remove()
        hook = attn.register_forward_hook(edit)
        edited = plain(tokens, output_attentions=True).attentions[layer][:, head]
        hook.remove()
    q = states["qkv"][..., head * d_head : (head + 1) * d_head]
    k = states["qkv"][..., key]
    assert torch.allclose(attention_pattern(q, k), clean, atol=1e-6)
    weight = torch.zeros_like(clean)  # the induction score: mean attention on the diagonal at offset 1 - SEQ
    n = tokens.shape[1]
    for i in range(SEQ, n):
        weight[:, i, i - SEQ + 1] = 1.0 / (n - SEQ)
    exact = ((edited - clean) * weight).sum(dim=(-1, -2))
    fixed = qk_fix_effect(q, k, weight, new_k=k + shift)
    linear = linear_qk_effect(q, k, weight, new_k=k + shift)
    assert torch.allclose(fixed, exact, atol=1e-5)
    assert (linear - exact).abs().max() > 10 * (fixed - exact).abs().max() + 1e-4


def test_search_verifies_the_strongest_and_equals_the_sweep_where_verified(tiny_model):
    model, tokens, metric = tiny_model("gpt2"), rows(), repeated_half_metric(SEQ, True)
    sweep = ablation_sweep(model, tokens, metric, execution=QUIET)
    found = search_heads(model, tokens, metric, search=HeadSearch(Estimator("plain"), verify=3), execution=QUIET)
    assert int(found.verified.sum()) == 3
    chosen = torch.argsort(found.estimate.estimate.abs().flatten(), descending=True)[:3]
    assert set(torch.nonzero(found.verified.flatten()).flatten().tolist()) == set(chosen.tolist())
    assert torch.allclose(found.delta[found.verified], sweep.delta[found.verified], atol=1e-5)
    assert torch.isnan(found.delta[~found.verified]).all()
    assert found.verify_cost.forward_passes == 4 * tokens.shape[0]  # the baseline and three heads
    v = found.verified  # the verified heads' intervals are the sweep's; q counts the unverified as p = 1
    assert torch.allclose(found.ci_low[v], sweep.ci_low[v], atol=1e-5)
    assert torch.allclose(found.ci_high[v], sweep.ci_high[v], atol=1e-5)
    assert torch.isnan(found.ci_low[~v]).all() and torch.isnan(found.q_values[~v]).all()
    assert bool((found.q_values[v] >= sweep.q_values[v] - 1e-6).all())  # never less strict than the sweep's
    everything = search_heads(model, tokens, metric, search=HeadSearch(verify=1, fraction=1e-9), execution=QUIET)
    assert bool(everything.verified.all())  # a tiny fraction: every head, one round at a time


def test_compare_against_numpy_and_by_hand():
    import numpy as np
    from scipy.stats import spearmanr

    g = torch.Generator().manual_seed(1)
    exact = torch.randn(4, 5, generator=g)
    estimate = exact + 0.5 * torch.randn(4, 5, generator=g)
    estimate[0, 0] = -estimate[0, 0] if torch.sign(estimate[0, 0]) == torch.sign(exact[0, 0]) else estimate[0, 0]
    found = compare(estimate, exact, 5)
    assert found["pearson"] == pytest.approx(np.corrcoef(estimate.flatten(), exact.flatten())[0, 1], abs=1e-9)
    assert found["spearman"] == pytest.approx(spearmanr(estimate.flatten(), exact.flatten())[0], abs=1e-9)
    top = set(torch.argsort(exact.abs().flatten(), descending=True)[:5].tolist())
    mine = set(torch.argsort(estimate.abs().flatten(), descending=True)[:5].tolist())
    assert found["recall_top"] == pytest.approx(len(top & mine) / 5)
    wrong = {f"L{i // 5}H{i % 5}" for i in top if torch.sign(estimate.flatten()[i]) != torch.sign(exact.flatten()[i])}
    assert set(found["wrong_sign"]) == wrong
