"""Scores passed as objects, without the registry: the same numbers as by name, typed logit inputs,
and a failing reduction named in one error."""

import pytest
import torch

from induction_nnsight.errors import InductionError
from induction_nnsight.probes.tokens import repeated_probe
from induction_nnsight.scores.builtin import BUILTIN_SCORES
from induction_nnsight.scores.copying import copying_logit_boost
from induction_nnsight.scores.declaration import LOGIT_INPUTS, HeadScore, LogitInputs, ScoreError
from induction_nnsight.scores.detect import detect_heads
from induction_nnsight.scores.heads import head_scores
from induction_nnsight.scores.reductions import diagonal_partial, diagonal_score_per_row
from induction_nnsight.scores.registry import get_score, register_score, score_names, unregister_score
from tests.conftest import TINY_BOS

SEQ_LEN = 10


def probe(batch=3):
    return repeated_probe(batch, SEQ_LEN, seed=0, low=1, high=128, bos_token_id=TINY_BOS)


SELF_CHUNKED = HeadScore(
    "self", "attention to itself", "pattern", partial=lambda rows, view: diagonal_partial(rows, view.positions, 0)
)
SELF_WHOLE = HeadScore(
    "self", "attention to itself", "pattern", lambda pattern, view: diagonal_score_per_row(pattern, 0)
)


def test_a_score_object_needs_no_registration(tiny_model):
    before = score_names()
    model = tiny_model("llama", "eager")
    chunked = head_scores(model, probe(), kinds=[SELF_CHUNKED, "previous_token"], loss=False)
    whole = head_scores(model, probe(), kinds=[SELF_WHOLE], loss=False)
    assert chunked.kinds == ["self", "previous_token"]
    assert chunked.per_row["self"].shape == (3, 2, 4)
    assert torch.allclose(chunked.per_row["self"], whole.per_row["self"], atol=1e-6)
    assert chunked.score("self") is SELF_CHUNKED
    assert score_names() == before  # nothing registered, nothing left behind
    detection = detect_heads(model, SELF_CHUNKED, 0.0, probe=probe())
    assert detection.kind == "self" and len(detection.heads) == 8
    assert torch.allclose(detection.scores, chunked.mean("self"), atol=1e-6)
    assert detection.figure().data[0].zmax == 1.0  # the chart reads the object's range, not the registry


def test_a_builtin_declared_again_equals_the_builtin_by_name(tiny_model):
    model = tiny_model("gpt2", "eager")
    by_name = head_scores(model, probe(), kinds=("previous_token", "copying"), loss=False)
    again = [HeadScore(**{**vars(get_score(kind)), "name": f"my_{kind}"}) for kind in ("previous_token", "copying")]
    by_object = head_scores(model, probe(), kinds=again, loss=False)
    for kind in ("previous_token", "copying"):
        assert torch.allclose(by_name.per_row[kind], by_object.per_row[f"my_{kind}"], atol=1e-6), kind


def test_a_logit_score_reads_only_what_it_declares(tiny_model):
    seen = []

    def boost(inputs: LogitInputs) -> torch.Tensor:  # copying, from a typed input
        seen.append({name for name in LOGIT_INPUTS if getattr(inputs, name) is not None})
        return copying_logit_boost(
            inputs.pattern,
            inputs.head_input,
            inputs.w_out,
            inputs.unembed,
            inputs.unembed_mean,
            inputs.tokens,
            inputs.center,
            inputs.final_scale,
        )

    declared = ("pattern", "head_input", "w_out", "tokens", "center", "unembed", "final_scale", "unembed_mean")
    mine = HeadScore(
        "mine",
        "copying again",
        "logits",
        boost,
        (None, None),
        "logits",
        queries=lambda v: v.repeat_queries,
        inputs=declared,
    )
    model = tiny_model("llama", "eager")
    got = head_scores(model, probe(), kinds=[mine, "copying"], loss=False)
    assert seen and all(names == set(declared) for names in seen)  # positions: not declared, not given
    assert torch.allclose(got.per_row["mine"], got.per_row["copying"], atol=1e-6)

    after_bos = HeadScore(  # the tiny models' BOS embedding is zero: no final-norm scale to divide by there
        "ones",
        "attention mass per query",
        "logits",
        lambda x: x.pattern.sum(-1),
        (None, None),
        "",
        queries=lambda view: (view.positions >= 1).expand(view.tokens.shape),
        inputs=("pattern",),
    )
    ones = head_scores(model, probe(), kinds=[after_bos], loss=False).per_row["ones"]  # [batch, layer, head]
    assert ones.shape == (3, 2, 4) and torch.isfinite(ones).all()  # mean of 1 / (the final norm's scale)


def test_a_failing_reduction_is_named_with_its_layer_chunk_and_shapes(tiny_model):
    def broken(rows, view):
        return rows @ torch.ones(3)  # wrong inner size

    score = HeadScore("broken", "raises", "pattern", partial=broken)
    with pytest.raises(ScoreError) as caught:
        head_scores(tiny_model("llama", "eager"), probe(), kinds=[score], loss=False)
    message = str(caught.value)
    assert "'broken'" in message and "layer" in message and "queries 0:21" in message, message
    assert "rows [batch=3, head=" in message and "chunk=21, key=21]" in message, message
    assert isinstance(caught.value, InductionError) and isinstance(caught.value.__cause__, RuntimeError)


def test_bad_kinds_are_refused_in_one_line(tiny_model):
    with pytest.raises(InductionError, match="two scores named self"):
        head_scores(tiny_model("llama", "eager"), probe(), kinds=[SELF_CHUNKED, SELF_WHOLE])
    with pytest.raises(InductionError, match="a name or a HeadScore"):
        head_scores(tiny_model("llama", "eager"), probe(), kinds=[3])
    with pytest.raises(InductionError, match="inputs= lists LogitInputs fields"):
        HeadScore("x", "x", "logits", lambda x: x, inputs=("residual",))
    with pytest.raises(InductionError, match="inputs= lists LogitInputs fields"):
        HeadScore("x", "x", "pattern", lambda p, v: p, inputs=("pattern",))


def test_the_builtin_scores_are_what_the_registry_starts_with():
    assert score_names()[: len(BUILTIN_SCORES)] == tuple(score.name for score in BUILTIN_SCORES)
    assert all(get_score(score.name) is score for score in BUILTIN_SCORES)


def test_registering_gives_a_name_and_unregistering_takes_it_back():
    before = score_names()
    try:
        assert register_score(SELF_CHUNKED) is SELF_CHUNKED and get_score("self") is SELF_CHUNKED
        with pytest.raises(InductionError, match="registered already"):
            register_score(SELF_WHOLE)
        register_score(SELF_WHOLE, replace=True)
        assert get_score("self") is SELF_WHOLE and score_names()[-1] == "self"
    finally:
        unregister_score("self")
    assert score_names() == before
