"""Ablation, patching and attribution on tiny random models, checked against plain-transformers routes."""

import pytest
import torch

from induction_nnsight import Execution, loss_by_position, repeated_tokens
from induction_nnsight.causal.ablation.estimators import head_attribution
from induction_nnsight.causal.ablation.sweep import (
    RandomDraws,
    ablate_heads,
    ablation_curve,
    ablation_metrics,
    ablation_sweep,
)
from induction_nnsight.causal.metrics import RowMetric, repeated_half_loss
from induction_nnsight.causal.pairs import Pair, repeated_pair
from induction_nnsight.causal.patching.engine import patch_heads, patch_qkv, patch_residual
from induction_nnsight.models.layout import model_layout
from tests.conftest import TINY_ARCHS
from tests.reference import plain_edited_loss, plain_head_inputs, plain_model

QUIET = Execution(progress=False)

SEQ = 8
N_HEADS = 4


def rows(seed=0, batch=3):
    return repeated_tokens(batch, SEQ, seed=seed, low=1, high=128, bos_token_id=0)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_projection_paths(tiny_model, arch):
    paths = model_layout(tiny_model(arch)).o_proj
    assert paths[0] == {"gpt2": "transformer.h.0.attn.c_proj", "llama": "model.layers.0.self_attn.o_proj"}[arch]
    assert model_layout(tiny_model(arch)).blocks[1] == {"gpt2": "transformer.h.1", "llama": "model.layers.1"}[arch]


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_ablating_nothing_is_exactly_the_baseline(tiny_model, arch, attn):
    model, tokens = tiny_model(arch, attn), rows()
    assert torch.equal(ablate_heads(model, tokens, []), loss_by_position(model, tokens))


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_ablation_leaves_earlier_layers_unchanged(tiny_model, arch):
    model, tokens = tiny_model(arch), rows()
    layers = model._module.get_submodule(model_layout(model).layers)
    seen = []
    hooks = [
        layer.register_forward_hook(
            lambda _m, _i, out: seen.append((out[0] if isinstance(out, tuple) else out).detach().clone())
        )
        for layer in layers
    ]
    try:
        ablate_heads(model, tokens, [])
        ablate_heads(model, tokens, [(1, 2)])
    finally:
        for hook in hooks:
            hook.remove()
    plain, ablated = seen[:2], seen[2:]
    assert torch.equal(plain[0], ablated[0])  # layer 0 runs before the ablated head
    assert not torch.allclose(plain[1], ablated[1])


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_zero_and_mean_ablation_equal_plain_transformers_hooks(tiny_model, tiny_dir, arch):
    model, tokens, reference = tiny_model(arch), rows(), rows(seed=5, batch=4)
    heads = [(0, 1), (1, 3)]
    plain = plain_model(tiny_dir(arch))

    def zero(layer, x):
        for l, h in heads:
            if l == layer:
                x[:, :, h] = 0
        return x

    means = [x.reshape(*x.shape[:2], N_HEADS, -1).mean(dim=0) for x in plain_head_inputs(plain, reference)]

    def mean(layer, x):
        for l, h in heads:
            if l == layer:
                x[:, :, h] = means[layer][:, h]
        return x

    for method, replace in (("zero", zero), ("mean", mean)):
        ours = ablate_heads(model, tokens, heads, method=method, source=reference)
        theirs = plain_edited_loss(plain, tokens, N_HEADS, replace)
        assert torch.allclose(ours, theirs, atol=1e-5), method
        assert not torch.allclose(ours, loss_by_position(model, tokens), atol=1e-4)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_batched_sweep_equals_one_head_at_a_time(tiny_model, arch):
    model, tokens = tiny_model(arch), rows()
    metric = RowMetric("loss", loss_positions=slice(1 + SEQ, 2 * SEQ))
    sweep = ablation_sweep(
        model, tokens, metric, execution=Execution(max_tokens=3 * 17 * 3, progress=False)
    )  # 3 variants per trace
    assert sweep.values.shape == (2, N_HEADS)
    for layer, head in [(0, 0), (1, 3)]:
        alone = repeated_half_loss(ablate_heads(model, tokens, [(layer, head)]), SEQ, True)
        assert torch.isclose(sweep.values[layer, head], alone, atol=1e-5)
    assert torch.isclose(
        torch.tensor(sweep.baseline), repeated_half_loss(loss_by_position(model, tokens), SEQ, True), atol=1e-5
    )
    partial = ablation_sweep(model, tokens, metric, layers=[1], execution=QUIET)
    assert partial.values[0].isnan().all() and torch.allclose(partial.values[1], sweep.values[1], atol=1e-5)


def test_ablation_curve_sets(tiny_model):
    model, tokens = tiny_model("llama"), rows()
    metric = RowMetric("loss", loss_positions=slice(1 + SEQ, 2 * SEQ))
    curve = ablation_curve(model, tokens, metric, [(1, 0), (0, 2)], draws=RandomDraws(n_draws=3), execution=QUIET)
    assert curve.top.shape == (2,) and curve.random.shape == (3, 2)
    direct = ablation_metrics(model, tokens, [curve.random_heads[1][:2], [(1, 0)]], metric, execution=QUIET)
    assert torch.allclose(direct, torch.stack([curve.random[1, 1], curve.top[0]]), atol=1e-5)


def last_token_pair(arch):
    clean = rows(batch=2)
    corrupted = clean.clone()
    corrupted[:, -1] = (clean[:, -1] % 127) + 1  # only the last token differs
    return clean, corrupted


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_patching_everything_recovers_one_and_nothing_zero(tiny_model, arch):
    model = tiny_model(arch)
    clean, corrupted = last_token_pair(arch)
    metric = RowMetric("logit_diff", correct=torch.tensor([5, 6]), wrong=torch.tensor([7, 8]))
    residual = patch_residual(model, Pair(clean, corrupted, metric), execution=QUIET)
    assert residual.recovery.shape == (2, clean.shape[1])
    # The last position carries everything that differs: patching it restores the clean run.
    assert torch.allclose(residual.recovery[:, -1], torch.ones(2), atol=1e-4)
    # Earlier positions are the same in both runs: patching them patches nothing.
    assert residual.recovery[:, :-1].abs().max() < 1e-4
    qkv = patch_qkv(model, Pair(clean, corrupted, metric), 1, 2, execution=QUIET)
    assert qkv.recovery.shape == (3, clean.shape[1] + 1) and qkv.recovery[:, :-2].abs().max() < 1e-4


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_head_patching_equals_plain_transformers_hooks(tiny_model, tiny_dir, arch):
    model = tiny_model(arch)
    pair = repeated_pair(2, SEQ, low=1, high=128, bos_token_id=0)
    result = patch_heads(model, pair, execution=QUIET)
    plain = plain_model(tiny_dir(arch))
    clean_inputs = plain_head_inputs(plain, pair.clean)
    for layer, head in [(0, 3), (1, 1)]:

        def patch(l, x, layer=layer, head=head):
            if l == layer:
                x[:, :, head] = clean_inputs[l].reshape(*x.shape[:2], N_HEADS, -1)[:, :, head]
            return x

        loss = plain_edited_loss(plain, pair.corrupted, N_HEADS, patch)
        assert torch.isclose(result.values[layer, head], repeated_half_loss(loss, SEQ, True), atol=1e-5)
    assert torch.isclose(
        torch.tensor(result.corrupted),
        repeated_half_loss(loss_by_position(model, pair.corrupted), SEQ, True),
        atol=1e-5,
    )


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_attribution_equals_plain_autograd_and_tracks_exhaustive(tiny_model, tiny_dir, arch):
    model = tiny_model(arch)
    pair = repeated_pair(2, SEQ, low=1, high=128, bos_token_id=0)
    estimate = head_attribution(model, pair.corrupted, pair.metric, "source", source=pair.clean)
    # Independent route: plain autograd through hooks that keep the projection inputs.
    plain = plain_model(tiny_dir(arch))
    clean_inputs = plain_head_inputs(plain, pair.clean)
    kept = []
    from tests.reference import plain_projections

    def keep(_m, args):
        args[0].retain_grad()  # the input itself, so gradients flow on through earlier layers
        kept.append(args[0])

    hooks = [p.register_forward_pre_hook(keep) for p in plain_projections(plain)]
    try:
        logits = plain(pair.corrupted).logits
    finally:
        for hook in hooks:
            hook.remove()
    pair.metric(logits, pair.corrupted).mean().backward()
    by_hand = torch.stack(
        [
            (x.grad * (c - x.detach())).reshape(*x.shape[:2], N_HEADS, -1).sum(dim=(0, 1, 3))
            for x, c in zip(kept, clean_inputs)
        ]
    )
    assert torch.allclose(estimate, by_hand, atol=1e-5)
    exhaustive = patch_heads(model, pair, execution=QUIET)
    change = exhaustive.values - exhaustive.corrupted
    assert torch.corrcoef(torch.stack([estimate.flatten(), change.flatten()]))[0, 1] > 0.9
    zero = head_attribution(model, pair.clean, pair.metric, "zero")
    # the same autograd route on the clean rows, each head's input moved to zero: g . (0 - x)
    kept.clear()
    hooks = [p.register_forward_pre_hook(keep) for p in plain_projections(plain)]
    try:
        logits = plain(pair.clean).logits
    finally:
        for hook in hooks:
            hook.remove()
    pair.metric(logits, pair.clean).mean().backward()
    zero_by_hand = torch.stack(
        [(x.grad * -x.detach()).reshape(*x.shape[:2], N_HEADS, -1).sum(dim=(0, 1, 3)) for x in kept]
    )
    assert zero.shape == (2, N_HEADS) and torch.allclose(zero, zero_by_hand, atol=1e-5)
