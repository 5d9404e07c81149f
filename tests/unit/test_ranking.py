"""Rankings are the same on every machine: near-ties (float noise) are broken by (layer, head)."""

import torch

from induction_nnsight.app.report import top_heads
from induction_nnsight.scores.ranking import RANK_DECIMALS, rank_heads


def test_float_noise_does_not_reorder_heads():
    scores = torch.tensor([[0.024253, 0.5], [0.1, 0.024255]])  # L0H0 and L1H1 differ by 2e-6
    noisy = scores + torch.tensor([[3e-6, 0.0], [0.0, -3e-6]])  # another machine's sums flip them
    assert rank_heads(scores) == rank_heads(noisy) == [(0, 1), (1, 0), (0, 0), (1, 1)]


def test_real_differences_still_rank_and_nan_is_left_out():
    step = 10.0 ** -(RANK_DECIMALS - 1)
    scores = torch.tensor([[0.3, 0.3 + step], [float("nan"), -1.0]])
    assert rank_heads(scores) == [(0, 1), (0, 0), (1, 1)]
    assert rank_heads(scores, 2, descending=False) == [(1, 1), (0, 0)]
    assert [(h["layer"], h["head"]) for h in top_heads(scores, 5)] == [(0, 1), (0, 0), (1, 1)]
