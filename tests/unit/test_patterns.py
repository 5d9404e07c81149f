import pytest
import torch

from induction_nnsight import InductionError
from induction_nnsight.probes.tokens import (
    abab_probe,
    repeated_probe,
    separator_probe,
    small_vocab_probe,
    text_probe,
)


def assert_second_copy_predicted(batch, length):
    """In a clean repeat, induction predicts each token of the second copy from the first."""
    s = batch.second_start
    expected = batch.expected_next[:, s : s + length - 1]
    actual = batch.tokens[:, s + 1 : s + length]
    assert torch.equal(expected, actual)


def test_repeated_ground_truth():
    batch = repeated_probe(3, 6, n_repeats=3, bos_token_id=1)  # [1000, 10000): no accidental repeats
    assert batch.tokens.shape == (3, 1 + 18)
    assert (batch.first_start, batch.second_start, batch.period) == (1, 7, 6)
    assert_second_copy_predicted(batch, 6)
    assert (batch.earlier_copy[:, 7:13] == torch.arange(1, 7)).all()
    assert batch.repeat_queries[:, :7].sum() == 0 and batch.repeat_queries[:, 7:].all()


def test_abab():
    batch = abab_probe(4, 3, bos_token_id=0, low=5, high=7)
    a, b = batch.tokens[:, 1], batch.tokens[:, 2]
    assert (a != b).all()
    assert torch.equal(batch.tokens[:, 1:], torch.stack([a, b] * 3, 1))
    assert torch.equal(batch.expected_next[:, 3], b)


def test_separator():
    batch = separator_probe(2, 4, separator_id=99, bos_token_id=0)
    assert (batch.tokens[:, 5] == 99).all()
    assert torch.equal(batch.tokens[:, 1:5], batch.tokens[:, 6:10])
    assert_second_copy_predicted(batch, 4)


def test_small_vocab_has_accidental_repeats():
    batch = small_vocab_probe(2, 30, [11, 12, 13], bos_token_id=0)
    assert set(batch.tokens[:, 1:].unique().tolist()) <= {11, 12, 13}
    # repeats inside the first copy: each position's latest earlier copy, found by a plain loop
    for row, tokens in zip(batch.earlier_copy.tolist(), batch.tokens.tolist()):
        expected = [max((j for j in range(i) if tokens[j] == tokens[i]), default=-1) for i in range(len(tokens))]
        assert row == expected
    # 30 draws from 3 tokens: all but the first occurrence of each token in the first copy have a copy
    first_copy = batch.tokens[:, 1:31]
    n_distinct = sum(len(set(r)) for r in first_copy.tolist())
    assert int((batch.earlier_copy[:, 1:31] >= 0).sum()) == first_copy.numel() - n_distinct


def test_text():
    batch = text_probe([7, 8, 9], n_repeats=3, bos_token_id=0)
    assert batch.tokens.tolist() == [[0, 7, 8, 9, 7, 8, 9, 7, 8, 9]]
    assert batch.expected_next[0, 7].item() == 8


@pytest.mark.parametrize(
    "make", [lambda: abab_probe(1, 1), lambda: small_vocab_probe(1, 3, [1]), lambda: text_probe([])]
)
def test_bad_generator_input(make):
    with pytest.raises(InductionError):
        make()
