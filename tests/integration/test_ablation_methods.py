"""``mean``, ``resample``, ``--keep-bos`` and ``--freeze-norm`` against plain PyTorch hooks (issue 22).

Head ablation: the loss by position with heads replaced, from :func:`ablate_heads`, equals a plain
transformers run whose output-projection pre-hooks do the replacement by hand (means captured
from the reference rows, resample rows captured row by row and the losses averaged over draws).
Path patching: ``resample`` and ``freeze_norm`` equal :func:`plain_path` with the replacement
(and the norm) computed by hand. Tolerance 1e-5.
"""

import pytest
import torch

from induction_nnsight import Execution, repeated_tokens
from induction_nnsight.causal.ablation.method import Ablation
from induction_nnsight.causal.ablation.sweep import ablate_heads
from induction_nnsight.causal.paths.patching import PathVariant, path_patching
from tests.integration.test_path_patching import N_HEADS, SEQ, _capture, plain_path, rows
from tests.integration.test_path_patching import sharp_dir as sharp_dir
from tests.reference import plain_edited_loss, plain_head_inputs, plain_model

HEADS = [(0, 1), (1, 2)]
RUN = Execution(max_tokens=3 * 17 * 4, max_rows=8, progress=False)  # several traces


def _split(x):
    return x.reshape(*x.shape[:2], N_HEADS, -1)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("keep_bos", [False, True])
def test_mean_and_resample_ablation_equal_plain_hooks(tiny_dir, tiny_model, arch, keep_bos):
    model = tiny_model(arch)
    plain = plain_model(tiny_dir(arch))
    tokens = rows(batch=3)
    start = 1 if keep_bos else 0  # position 0 untouched with keep_bos

    def replaced(new):  # new(layer) -> [batch or 1, pos, head, d_head]
        def replace(layer, x):
            for l_, h in HEADS:
                if l_ == layer:
                    x[:, start:, h] = new(layer).expand_as(x)[:, start:, h]
            return x

        return plain_edited_loss(plain, tokens, N_HEADS, replace)

    reference = repeated_tokens(10, SEQ, seed=7, low=1, high=128, bos_token_id=0)
    got = ablate_heads(model, tokens, HEADS, method=Ablation("mean", reference, keep_bos=keep_bos), execution=RUN)
    means = [_split(z).mean(dim=0, keepdim=True) for z in plain_head_inputs(plain, reference)]
    assert torch.allclose(got, replaced(lambda layer: means[layer]), atol=1e-5)

    draws = repeated_tokens(2 * 3, SEQ, seed=9, low=1, high=128, bos_token_id=0)
    got = ablate_heads(model, tokens, HEADS, method=Ablation("resample", draws, keep_bos=keep_bos), execution=RUN)
    expected = []
    for d in range(2):
        captured = [_split(z) for z in plain_head_inputs(plain, draws[3 * d : 3 * d + 3])]
        expected.append(replaced(lambda layer, c=captured: c[layer]))
    assert torch.allclose(got, torch.stack(expected).mean(dim=0), atol=1e-5)
    # and the methods differ from each other and from zero ablation: the test can fail
    zero = ablate_heads(model, tokens, HEADS, method=Ablation("zero", keep_bos=keep_bos), execution=RUN)
    assert (zero - got).abs().max() > 1e-3


CASES = [((0, 1), (1, 2), "k"), ((0, 3), (1, 0), "q"), ((0, 2), (1, 1), "total")]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_resample_path_patching_equals_plain_hooks(sharp_dir, arch):
    from induction_nnsight import load_model

    model = load_model(str(sharp_dir(arch)), attn_implementation="eager", progress=False)
    tokens, draws = rows(), rows(seed=11, batch=6)
    variants = [PathVariant(None, None, None)] + [PathVariant(s, t, p) for s, t, p in CASES]
    result = path_patching(model, tokens, SEQ, variants, ablation=Ablation("resample", draws), execution=RUN)
    plain = plain_model(sharp_dir(arch))
    for i, (s, t, p) in enumerate(CASES, start=1):
        per_draw = []
        for d in range(2):
            z_draw, _ = _capture(plain, draws[3 * d : 3 * d + 3])
            per_draw.append(plain_path(plain, arch, tokens, SEQ, s, t, p, lambda layer, z=z_draw: _split(z[layer])))
        score = torch.stack([x[0] for x in per_draw]).mean()
        loss = torch.stack([x[1] for x in per_draw]).mean()
        assert torch.isclose(result.scores[i], score, atol=1e-5), (p, result.scores[i], score)
        assert torch.isclose(result.losses[i], loss, atol=1e-5), (p, result.losses[i], loss)
        assert torch.isclose(result.score_rows[i].mean(), result.scores[i], atol=1e-5)


def _frozen(norm, clean_resid, arch):
    """A forward for ``norm``'s second call (the first is :func:`plain_path`'s clean capture): the patched
    residual divided by the clean residual's scale, by hand; the hooked run after it uses the model's own norm."""
    original, calls = norm.forward, []

    def forward(h):
        calls.append(1)
        if len(calls) == 1:
            return original(h)
        norm.forward = original
        c = clean_resid
        if arch == "gpt2":
            h, c = h - h.mean(-1, keepdim=True), c - c.mean(-1, keepdim=True)
            return norm.weight * h / torch.sqrt(c.pow(2).mean(-1, keepdim=True) + norm.eps) + norm.bias
        return norm.weight * h / torch.sqrt(c.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)

    norm.forward = forward


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_freeze_norm_equals_plain_hooks_with_the_clean_scale(sharp_dir, arch):
    from induction_nnsight import load_model

    model = load_model(str(sharp_dir(arch)), attn_implementation="eager", progress=False)
    tokens = rows()
    cases = [c for c in CASES if c[2] != "total"]
    variants = [PathVariant(None, None, None)] + [PathVariant(s, t, p) for s, t, p in cases]
    frozen = path_patching(model, tokens, SEQ, variants, ablation=Ablation(freeze_norm=True), execution=RUN)
    moving = path_patching(model, tokens, SEQ, variants, ablation=Ablation(), execution=RUN)
    plain = plain_model(sharp_dir(arch))
    _, resid = _capture(plain, tokens)

    def zero(layer):
        return torch.zeros(1, N_HEADS, 1)

    for i, (s, t, p) in enumerate(cases, start=1):
        block = plain.transformer.h[t[0]] if arch == "gpt2" else plain.model.layers[t[0]]
        _frozen(block.ln_1 if arch == "gpt2" else block.input_layernorm, resid[t[0]], arch)
        score, loss = plain_path(plain, arch, tokens, SEQ, s, t, p, zero)
        assert torch.isclose(frozen.scores[i], score, atol=1e-5), (p, frozen.scores[i], score)
        assert torch.isclose(frozen.losses[i], loss, atol=1e-5), (p, frozen.losses[i], loss)
        assert abs(float(frozen.scores[i] - moving.scores[i])) > 1e-6  # the scale does matter here
