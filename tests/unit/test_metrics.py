"""Causal metrics and helpers on hand-built numbers."""

import math

import pytest
import torch
import torch.nn.functional as F

from induction_nnsight.causal.ablation.sweep import random_head_draws
from induction_nnsight.causal.head_outputs import head_mask
from induction_nnsight.causal.metrics import (
    RowMetric,
    correct_prob,
    default_icl_positions,
    icl_score,
    logit_diff,
    pearson,
    recovery,
    repeated_half_loss,
    token_losses,
)
from induction_nnsight.causal.pairs import repeated_pair
from induction_nnsight.errors import InductionError
from induction_nnsight.names import parse_heads
from induction_nnsight.scores.losses import half_losses


def test_recovery_formula():
    assert recovery(2.0, corrupted=1.0, clean=5.0) == 0.25
    assert recovery(5.0, 1.0, 5.0) == 1.0 and recovery(1.0, 1.0, 5.0) == 0.0
    assert recovery(-1.0, corrupted=3.0, clean=1.0) == 2.0  # a loss pushed below the clean loss
    grid = recovery(torch.tensor([[3.0, 2.0]]), torch.tensor(2.0), torch.tensor(4.0))
    assert grid.tolist() == [[0.5, 0.0]]


def test_icl_score_and_default_positions():
    loss = torch.tensor([[5.0, 4.0, 3.0, 1.0], [6.0, 4.0, 2.0, 2.0]])
    assert icl_score(loss, early=1, late=3).tolist() == [-3.0, -2.0]
    assert icl_score(loss, early=[0, 1], late=[2, 3]).tolist() == [-2.5, -3.0]
    with pytest.raises(InductionError):
        icl_score(loss, 0, 9)
    # Both default positions predict the same token of the block, once per copy.
    for bos in (True, False):
        seq_len = 10
        row = torch.arange(seq_len).repeat(2)
        row = torch.cat([torch.tensor([-1]), row]) if bos else row
        early, late = default_icl_positions(seq_len, bos)
        assert row[early + 1] == row[late + 1] and late - early == seq_len


def test_repeated_half_loss_matches_half_losses():
    loss = torch.rand(2 * 7)
    assert math.isclose(float(repeated_half_loss(loss, 7, True)), half_losses(loss, 7, True)[1], rel_tol=1e-6)
    assert math.isclose(
        float(repeated_half_loss(loss[:-1], 7, False)), half_losses(loss[:-1], 7, False)[1], rel_tol=1e-6
    )


def test_logit_diff_and_prob():
    logits = torch.tensor([[1.0, 3.0, 0.5], [0.0, 0.0, 2.0]])
    assert logit_diff(logits, torch.tensor([1, 2]), torch.tensor([2, 0])).tolist() == [2.5, 2.0]
    probs = correct_prob(logits, 1)
    assert torch.allclose(probs, torch.softmax(logits, -1)[:, 1])


def test_row_metric_kinds_against_cross_entropy():
    torch.manual_seed(0)
    logits, tokens = torch.randn(6, 9, 11), torch.randint(0, 11, (6, 9))
    by_hand = torch.stack(
        [torch.stack([F.cross_entropy(logits[b, i], tokens[b, i + 1]) for i in range(8)]) for b in range(6)]
    )
    assert torch.allclose(token_losses(logits, tokens), by_hand, atol=1e-6)
    assert torch.allclose(
        RowMetric("loss", loss_positions=slice(4, 7))(logits, tokens), by_hand[:, 4:7].mean(1), atol=1e-6
    )
    assert torch.allclose(RowMetric("loss")(logits, tokens), by_hand.mean(1), atol=1e-6)
    # Two ids repeat over six rows (three variants of a batch of two).
    metric = RowMetric("logit_diff", correct=torch.tensor([1, 2]), wrong=torch.tensor([3, 4]))
    ids = torch.tensor([1, 2] * 3), torch.tensor([3, 4] * 3)
    assert torch.allclose(
        metric(logits, tokens),
        logits[:, -1].gather(1, ids[0][:, None]).squeeze(1) - logits[:, -1].gather(1, ids[1][:, None]).squeeze(1),
    )
    with pytest.raises(InductionError, match="--wrong"):
        RowMetric("logit_diff", correct=torch.tensor([1]))


def test_pearson_ignores_nan():
    a = torch.tensor([1.0, 2.0, float("nan"), 4.0])
    assert math.isclose(pearson(a, 2 * a + 1), 1.0, rel_tol=1e-9)
    assert math.isclose(pearson(a, -a), -1.0, rel_tol=1e-9)


def test_parse_heads_and_mask():
    assert parse_heads("L18H6, l17h3 2.5") == [(18, 6), (17, 3), (2, 5)]
    with pytest.raises(InductionError, match="L18H6"):
        parse_heads("head6")
    mask = head_mask([(1, 2)], 3, 4)
    assert mask.sum() == 1 and mask[1, 2]
    with pytest.raises(InductionError, match="outside"):
        head_mask([(3, 0)], 3, 4)


def test_random_draws_avoid_top_heads_and_keep_layers():
    top = [(5, 1), (5, 2), (7, 0)]
    for draw in random_head_draws(top, 10, 4, 6, seed=1):
        assert len(set(draw)) == 3 and not set(draw) & set(top)
    for draw in random_head_draws(top, 10, 4, 6, same_layers=True, seed=1):
        assert [h[0] for h in draw] == [5, 5, 7] and not set(draw) & set(top) and len(set(draw)) == 3
    assert random_head_draws(top, 10, 4, 2, seed=3) == random_head_draws(top, 10, 4, 2, seed=3)
    with pytest.raises(InductionError, match="--same-layers"):
        random_head_draws([(0, 0), (0, 1)], 2, 2, 1, same_layers=True)


def test_repeated_pair_breaks_only_the_first_copy():
    pair = repeated_pair(3, 6, seed=2, low=10, high=20, bos_token_id=1)
    assert pair.clean.shape == pair.corrupted.shape == (3, 13)
    assert (pair.clean[:, 7:] == pair.corrupted[:, 7:]).all() and (pair.clean[:, 0] == pair.corrupted[:, 0]).all()
    assert (pair.clean[:, 1:7] != pair.corrupted[:, 1:7]).all()
    assert ((pair.corrupted >= 10) & (pair.corrupted < 20))[:, 1:].all()


class WordTokenizer:
    """Whitespace tokenizer: word ``w`` <-> id, a leading space kept as in BPE vocabularies."""

    def __init__(self):
        self.words = {}

    def encode(self, text, add_special_tokens=False):
        pieces = text.split(" ")
        pieces = [pieces[0]] + [" " + p for p in pieces[1:]]
        return [self.words.setdefault(p, len(self.words) + 10) for p in pieces if p.strip()]

    def decode(self, ids):
        inverse = {v: k for k, v in self.words.items()}
        return "".join(inverse.get(i, "<bos>") for i in ids)


def test_text_pair_guesses_correct_and_wrong_tokens():
    from induction_nnsight.causal.pairs import text_pair

    tokenizer = WordTokenizer()
    pair = text_pair(
        tokenizer, "Tom sat on the mat. Tom sat on the", "Tom sat on the rug. Tom sat on the", bos_token_id=1
    )
    assert pair.clean.shape == pair.corrupted.shape == (1, 10) and pair.clean[0, 0] == 1
    assert pair.metric.name == "logit_diff"
    assert tokenizer.decode(pair.metric.correct.tolist()) == " mat."
    assert tokenizer.decode(pair.metric.wrong.tolist()) == " rug."
    # "Tom" and " Tom" are other ids but the same word; no wrong guess in the corrupted text: probability.
    pair = text_pair(tokenizer, "Tom went to the store. Tom", "Tom went to the store. Sarah")
    assert tokenizer.decode(pair.metric.correct.tolist()) == " went" and pair.metric.name == "prob"
    with pytest.raises(InductionError, match="same token length"):
        text_pair(tokenizer, "a b c", "a b")
    with pytest.raises(InductionError, match="--correct"):
        text_pair(tokenizer, "a b c", "a b d")
