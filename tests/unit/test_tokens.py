import pytest
import torch

from induction_nnsight import InductionError, repeated_tokens


def test_shape_repeat_and_bos():
    tokens = repeated_tokens(3, 7, seed=1, bos_token_id=5)
    assert tokens.shape == (3, 1 + 14)
    assert tokens.dtype == torch.long
    assert (tokens[:, 0] == 5).all()
    assert torch.equal(tokens[:, 1:8], tokens[:, 8:])


def test_no_bos_and_more_repeats():
    tokens = repeated_tokens(2, 4, n_repeats=3)
    assert tokens.shape == (2, 12)
    assert torch.equal(tokens[:, :4], tokens[:, 8:])


def test_same_seed_same_tokens_other_seed_other_tokens():
    assert torch.equal(repeated_tokens(4, 20, seed=3), repeated_tokens(4, 20, seed=3))
    assert not torch.equal(repeated_tokens(4, 20, seed=3), repeated_tokens(4, 20, seed=4))


def test_range_respected():
    tokens = repeated_tokens(8, 100, low=10, high=13)
    assert tokens.min() >= 10 and tokens.max() < 13


@pytest.mark.parametrize(
    "kwargs, fix",
    [
        (dict(batch=0, seq_len=5), "--batch"),
        (dict(batch=1, seq_len=0), "--seq-len"),
        (dict(batch=1, seq_len=5, low=10, high=10), "--low"),
        (dict(batch=1, seq_len=5, low=-1, high=10), "--low"),
        (dict(batch=1, seq_len=5, high=60000, vocab_size=50000), "--high 50000"),
    ],
)
def test_bad_input_names_the_fix(kwargs, fix):
    with pytest.raises(InductionError, match=fix):
        repeated_tokens(**kwargs)
