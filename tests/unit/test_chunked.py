"""Pattern scores by chunks of queries: the same numbers as the whole pattern, in bounded memory."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from induction_nnsight.models.attention import LayerAttention, can_stack, query_chunk, stack_layers
from induction_nnsight.probes.tokens import repeated_probe
from induction_nnsight.scores.chunked import DEFAULT_PATTERN_BUDGET, layer_pattern_scores
from induction_nnsight.scores.registry import HeadScore, ProbeView, get_score
from tests.reference import reference_kind_scores

KINDS = ("previous_token", "duplicate_token", "induction", "induction_exact", "prefix_matching", "bos")
BATCH, HEADS, KV_HEADS, SEQ_LEN, D_HEAD = 2, 4, 2, 12, 8  # 25 positions; tokens from 1..7: many repeats


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operation allocates (views of existing tensors left out)."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.is_view:
            return out
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


def layer(seed=0, softcap=None, sliding_window=None):
    generator = torch.Generator().manual_seed(seed)
    n = 1 + 2 * SEQ_LEN
    query = torch.randn(BATCH, HEADS, n, D_HEAD, generator=generator) * 2  # sharp patterns
    key = torch.randn(BATCH, KV_HEADS, n, D_HEAD, generator=generator)
    return LayerAttention(query=query, key=key, softcap=softcap, sliding_window=sliding_window)


def probe():
    return repeated_probe(BATCH, SEQ_LEN, seed=1, low=1, high=8, bos_token_id=0)


@pytest.mark.parametrize("chunk", [1, 5, 25])
@pytest.mark.parametrize("settings", [{}, {"softcap": 3.0, "sliding_window": 6}])
def test_chunks_equal_a_query_by_query_reference(chunk, settings):
    attention, batch = layer(**settings), probe()
    n = batch.tokens.shape[1]
    scores = [get_score(kind) for kind in KINDS]
    got = layer_pattern_scores(attention, ProbeView(batch), scores, budget=BATCH * HEADS * n * chunk)
    pattern = attention.pattern()
    expected = reference_kind_scores([pattern], batch.tokens, batch.period, batch.second_start)
    for kind in KINDS:
        assert got[kind].shape == (BATCH, HEADS)
        assert torch.allclose(got[kind].nanmean(0), expected[kind][0], atol=1e-5), kind


def test_eager_weights_are_sliced_to_the_same_scores():
    attention, batch = layer(), probe()
    eager = LayerAttention(probs=attention.pattern())
    scores = [get_score(kind) for kind in KINDS]
    n = batch.tokens.shape[1]
    chunked = layer_pattern_scores(eager, ProbeView(batch), scores, budget=BATCH * HEADS * n * 3)
    recomputed = layer_pattern_scores(attention, ProbeView(batch), scores, budget=BATCH * HEADS * n * 7)
    for kind in KINDS:
        assert torch.allclose(chunked[kind], recomputed[kind], atol=1e-5, equal_nan=True), kind


def test_a_whole_pattern_score_still_gets_the_whole_pattern():
    attention, batch = layer(), probe()
    seen = []
    score = HeadScore(
        "rows_seen", "test", "pattern", lambda pattern, view: seen.append(pattern.shape) or pattern[..., 0].mean(-1)
    )
    got = layer_pattern_scores(attention, ProbeView(batch), [score, get_score("bos")], budget=1)
    n = batch.tokens.shape[1]
    assert seen == [(BATCH, HEADS, n, n)]
    assert set(got) == {"rows_seen", "bos"}


def test_the_budget_bounds_the_largest_tensor():
    attention, batch = layer(), probe()
    n = batch.tokens.shape[1]
    scores = [get_score(kind) for kind in KINDS]
    chunk = 4
    budget = BATCH * HEADS * n * chunk
    assert query_chunk(BATCH, HEADS, n, budget) == chunk
    with LargestTensor() as chunked:
        layer_pattern_scores(attention, ProbeView(batch), scores, budget=budget)
    with LargestTensor() as whole:  # the meter sees a whole pattern when there is one
        layer_pattern_scores(attention, ProbeView(batch), scores, budget=BATCH * HEADS * n * n)
    assert chunked.numel <= BATCH * HEADS * chunk * n
    assert whole.numel == BATCH * HEADS * n * n


def test_query_chunk_from_the_budget():
    assert query_chunk(1, 9, 8192, 2**24) == 227
    # the benchmark's shapes (SmolLM2 and GPT-2 small, up to 20 rows of 101 tokens): one chunk, the whole pattern
    assert query_chunk(20, 12, 101, DEFAULT_PATTERN_BUDGET) > 101
    assert query_chunk(4, 4, 100, 1) == 1


def test_a_score_alone_is_walked_over_its_own_queries_only():
    attention, batch = layer(), probe()
    n = batch.tokens.shape[1]
    made = []
    rows = attention.rows
    attention.rows = lambda positions: made.append(positions) or rows(positions)
    alone = layer_pattern_scores(attention, ProbeView(batch), [get_score("induction")], budget=BATCH * HEADS * n * 5)
    assert torch.cat(made).tolist() == list(range(SEQ_LEN - 1, n))  # queries with a key on the stripe
    together = layer_pattern_scores(attention, ProbeView(batch), [get_score(k) for k in KINDS], budget=10**9)
    assert torch.allclose(alone["induction"], together["induction"], atol=1e-6)


def test_stacked_layers_give_each_layers_pattern():
    """Two grouped-query layers (4 query heads on 2 key heads) stacked: the stack's pattern is theirs side by
    side, each query head still reading its own layer's key head."""
    torch.manual_seed(0)
    layers = [LayerAttention(query=torch.randn(2, 4, 9, 8), key=torch.randn(2, 2, 9, 8), scaling=0.3) for _ in range(2)]
    assert can_stack(*layers)
    stacked = stack_layers(layers).pattern()  # [batch, 2 * 4, query, key]
    expected = torch.cat([a.pattern() for a in layers], dim=1)
    assert stacked.shape == (2, 8, 9, 9) and torch.allclose(stacked, expected, atol=1e-6)
    eager = [LayerAttention(probs=p) for p in expected.split(4, dim=1)]
    assert torch.equal(stack_layers(eager).pattern(), expected)


@pytest.mark.parametrize(
    "change",
    [
        {"sliding_window": 4},
        {"mask": torch.ones(9, 9, dtype=torch.bool)},
        {"scaling": 0.5},
        {"key": torch.randn(2, 2, 8, 8)},
    ],
)
def test_layers_that_differ_are_not_stacked(change):
    base = dict(query=torch.randn(2, 4, 9, 8), key=torch.randn(2, 2, 9, 8), scaling=0.3)
    assert not can_stack(LayerAttention(**base), LayerAttention(**{**base, **change}))
    assert not can_stack(LayerAttention(**base), LayerAttention(probs=torch.rand(2, 4, 9, 9)))
