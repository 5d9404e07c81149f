import pytest
import torch
import torch.nn.functional as F

from induction_nnsight.models.attention import LayerAttention
from induction_nnsight.scores.losses import half_losses, per_position_loss
from induction_nnsight.scores.reductions import diagonal_score_per_row


def induction_stripe(pattern: torch.Tensor, seq_len: int) -> torch.Tensor:
    """``[head]`` the built-in induction score's diagonal (offset ``1 - seq_len``), averaged over rows."""
    return diagonal_score_per_row(pattern, 1 - seq_len).mean(0)


def perfect_induction_pattern(batch: int, heads: int, seq_len: int, bos: bool = True) -> torch.Tensor:
    """Every query that has a key seq_len - 1 back attends only to it; the rest attend to themselves."""
    n = int(bos) + 2 * seq_len
    pattern = torch.zeros(batch, heads, n, n)
    for q in range(n):
        k = q - seq_len + 1 if q >= seq_len - 1 else q
        pattern[:, :, q, k] = 1.0
    return pattern


@pytest.mark.parametrize("bos", [True, False])
def test_perfect_induction_pattern_scores_one(bos):
    scores = induction_stripe(perfect_induction_pattern(2, 3, 6, bos), seq_len=6)
    assert torch.allclose(scores, torch.ones(3))


def test_pattern_that_never_looks_back_scores_zero():
    pattern = torch.eye(13).expand(2, 3, 13, 13)
    assert torch.equal(induction_stripe(pattern, seq_len=6), torch.zeros(3))


def test_heads_scored_separately_and_mixed_pattern_scores_its_share():
    seq_len, n = 4, 9
    pattern = torch.eye(n).repeat(1, 2, 1, 1)  # [1, 2, n, n]
    pattern[0, 1] = perfect_induction_pattern(1, 1, seq_len)[0, 0] * 0.25 + torch.eye(n) * 0.75
    assert torch.allclose(induction_stripe(pattern, seq_len), torch.tensor([0.0, 0.25]))


def test_previous_token_diagonal():
    n = 6
    pattern = torch.zeros(1, 1, n, n)
    pattern[0, 0, 0, 0] = 1
    pattern[0, 0, torch.arange(1, n), torch.arange(0, n - 1)] = 1
    assert diagonal_score_per_row(pattern, -1).item() == pytest.approx(1.0)


def test_per_position_loss_equals_cross_entropy():
    logits = torch.randn(3, 9, 17)
    tokens = torch.randint(0, 17, (3, 9))
    expected = torch.stack([F.cross_entropy(logits[:, i], tokens[:, i + 1]) for i in range(8)])
    assert torch.allclose(per_position_loss(logits, tokens), expected, atol=1e-6)


def test_half_losses_pick_the_same_tokens_in_each_copy():
    seq_len = 4
    loss = torch.arange(2 * seq_len, dtype=torch.float)  # bos: index i predicts token i + 1
    first, repeated = half_losses(loss, seq_len, bos=True)
    assert first == pytest.approx((1 + 2 + 3) / 3)
    assert repeated == pytest.approx((5 + 6 + 7) / 3)


def test_recomputed_pattern_matches_a_hand_computation_with_gqa():
    q = torch.randn(2, 4, 5, 8)
    k = torch.randn(2, 2, 5, 8)
    probs = LayerAttention(query=q, key=k).pattern()
    k_rep = k[:, [0, 0, 1, 1]]
    scores = q @ k_rep.transpose(-1, -2) / 8**0.5
    scores = scores.masked_fill(torch.ones(5, 5).triu(1).bool(), float("-inf"))
    assert torch.allclose(probs, scores.softmax(-1), atol=1e-6)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 4, 5))


def test_recomputed_pattern_sliding_window_and_softcap():
    q, k = torch.randn(1, 1, 6, 4), torch.randn(1, 1, 6, 4)
    probs = LayerAttention(query=q, key=k, sliding_window=2, softcap=5.0).pattern()
    assert probs[0, 0, 5, :4].sum() == 0  # only keys 4 and 5 are inside the window
    raw = (q @ k.transpose(-1, -2) / 2)[0, 0, 5, 4:]
    capped = torch.tanh(raw / 5.0) * 5.0
    assert torch.allclose(probs[0, 0, 5, 4:], capped.softmax(-1), atol=1e-6)
