"""Composition scores against a hand computation with full ``d_model x d_model`` matrices."""

import pytest
import torch

from induction_nnsight.causal.composition import composition_score, composition_scores, random_baseline
from induction_nnsight.models.layout import NormSpec, apply_norm


def _by_hand(source, target, path):
    ov_s = source["o"] @ source["v"]  # [d_model, d_model]
    qk_t = target["q"].T @ target["k"]
    ov_t = target["o"] @ target["v"]
    if path == "k":
        num, reader = qk_t @ ov_s, qk_t
    elif path == "q":
        num, reader = ov_s.T @ qk_t, qk_t
    else:
        num, reader = ov_t @ ov_s, ov_t
    return float(num.norm() / (reader.norm() * ov_s.norm()))


def _arena_row_vectors(source, target, path):
    """ARENA's get_comp_score in TransformerLens' row-vector convention (W_OV = W_V W_O, W_QK = W_Q W_K^T)."""
    w_ov_s = source["v"].T @ source["o"].T
    w_qk_t = target["q"].T @ target["k"]
    w_ov_t = target["v"].T @ target["o"].T
    b = {"q": w_qk_t, "k": w_qk_t.T, "v": w_ov_t}[path]
    return float((w_ov_s @ b).norm() / (w_ov_s.norm() * b.norm()))


@pytest.mark.parametrize("path", ["q", "k", "v"])
def test_composition_score_equals_hand_computation(path):
    g = torch.Generator().manual_seed(1)
    d_model, d_head = 24, 6
    source = {
        "v": torch.randn(d_head, d_model, generator=g, dtype=torch.float64),
        "o": torch.randn(d_model, d_head, generator=g, dtype=torch.float64),
    }
    target = {k: torch.randn(d_head, d_model, generator=g, dtype=torch.float64) for k in "qkv"} | {
        "o": torch.randn(d_model, d_head, generator=g, dtype=torch.float64)
    }
    ours = composition_score(source, target, path)
    assert ours == pytest.approx(_by_hand(source, target, path), rel=1e-9)
    assert ours == pytest.approx(_arena_row_vectors(source, target, path), rel=1e-9)


def test_aligned_heads_compose_fully_and_orthogonal_ones_not_at_all():
    d_model, _d_head = 8, 2
    e = torch.eye(d_model)
    # the source reads dims 0-1 and writes dims 2-3; the target's keys read dims 2-3: K-composition 1
    source = {"v": e[0:2], "o": e[:, 2:4]}
    target = {"q": e[4:6], "k": e[2:4], "v": e[6:8], "o": e[:, 6:8]}
    assert composition_score(source, target, "k") == pytest.approx(2**-0.5)  # the most a rank-2 pair can reach
    assert composition_score(source, target, "q") == pytest.approx(0.0, abs=1e-12)
    assert composition_score(source, target, "v") == pytest.approx(0.0, abs=1e-12)


def test_random_baseline_is_seeded_and_near_its_known_size():
    a, b = random_baseline(64, 8, "k", draws=3, seed=0), random_baseline(64, 8, "k", draws=3, seed=0)
    assert a == b
    assert 0.02 < a < 0.3  # rank-8 products in 64 dimensions: about sqrt(8) / 64 ... 1 / sqrt(8)


def test_model_scores_fold_the_norm_and_repeat_kv_heads(tiny_model):
    model = tiny_model("llama")  # 4 query heads, 2 key/value heads, RMSNorm
    rows = composition_scores(model, [((0, 1), (1, 2)), ((0, 1), (1, 3))], ("k", "v"), draws=2)
    assert [r.path for r in rows] == ["k", "v", "k", "v"]
    # heads 2 and 3 share key/value head 1: same K-score only if their queries agree, same V-score always
    layers = model._module.model.layers
    o0 = layers[0].self_attn.o_proj.weight[:, 8:16]
    v0 = layers[0].self_attn.v_proj.weight[0:8] * layers[0].input_layernorm.weight
    v1 = layers[1].self_attn.v_proj.weight[8:16] * layers[1].input_layernorm.weight
    k1 = layers[1].self_attn.k_proj.weight[8:16] * layers[1].input_layernorm.weight
    for target_head, row_k, row_v in ((2, rows[0], rows[1]), (3, rows[2], rows[3])):
        q1 = layers[1].self_attn.q_proj.weight[8 * target_head : 8 * target_head + 8] * layers[1].input_layernorm.weight
        o1 = layers[1].self_attn.o_proj.weight[:, 8 * target_head : 8 * target_head + 8]
        s = {"v": v0.detach(), "o": o0.detach()}
        t = {"q": q1.detach(), "k": k1.detach(), "v": v1.detach(), "o": o1.detach()}
        assert row_k.score == pytest.approx(_by_hand(s, t, "k"), rel=1e-5)
        assert row_v.score == pytest.approx(_by_hand(s, t, "v"), rel=1e-5)
        assert row_k.baseline == pytest.approx(random_baseline(32, 8, "k", draws=2))


def test_norm_by_hand_equals_torch_modules():
    x = torch.randn(2, 3, 16)
    ln = torch.nn.LayerNorm(16, eps=1e-5)
    torch.nn.init.normal_(ln.weight)
    torch.nn.init.normal_(ln.bias)
    ours = apply_norm(x, NormSpec("ln", centered=True, eps=1e-5), ln.weight, ln.bias)
    assert torch.allclose(ours, ln(x), atol=1e-5)
    rms = torch.nn.RMSNorm(16, eps=1e-6)
    torch.nn.init.normal_(rms.weight)
    assert torch.allclose(apply_norm(x, NormSpec("rms", eps=1e-6), rms.weight, None), rms(x), atol=1e-5)
