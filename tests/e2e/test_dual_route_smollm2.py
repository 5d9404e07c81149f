"""The dual route and in-context learning on the real SmolLM2 (slow tier).

The top concept and token heads are reported with intervals that contain their means, and on the
default text (Python's own help topics) the loss falls with context: Olsson's score is negative
(one token index per window is noisy: over the default windows, sampled across the text, the
interval still includes zero, so only its mean and lower end are required below zero).
"""

from __future__ import annotations

from induction_nnsight import Execution
from induction_nnsight.app.icl_job import IclConfig, run_icl
from induction_nnsight.causal.dual_route import DualRouteProbe, dual_route, entity_names, tokenized_entities

QUIET = Execution(progress=False)


def test_top_concept_and_token_heads_with_intervals(smollm2):
    entities = tokenized_entities(smollm2.tokenizer, entity_names())
    assert len(entities) > 100  # real multi-token names under SmolLM2's tokenizer
    probe = DualRouteProbe(n_attention=16, n_copying=4, n_dissociation=4, max_k=3, n_reference=4, top=3)
    result = dual_route(smollm2, entities, probe=probe, execution=QUIET)
    for grid in ("token_attention", "concept_attention", "random_end_attention", "token_copying", "concept_copying"):
        assert len(result.top[grid]) == 3
        for layer, head in result.top[grid]:
            s = result.scores[grid]
            assert s["ci_low"][layer, head] <= s["mean"][layer, head] <= s["ci_high"][layer, head]
    best_token = result.mean("token_attention").max()
    assert best_token > 0.3  # SmolLM2 has strong token induction heads (L18H6 and friends)
    assert set(result.dissociation["difference"]) == {"concept", "token"}
    assert [p["k"] for p in result.dissociation["curve"]["concept"]["meaning"]] == [1, 2, 3]


def test_olsson_score_on_the_default_text_is_negative(smollm2):
    results, _ = run_icl(IclConfig(), smollm2, progress=False)
    score = results["olsson_icl_score"]
    assert "pydoc_data.topics" in results["source"]
    assert score["mean"] < 0 and score["ci_low"] < 0
    assert results["loss_at_late"] < results["loss_at_early"]
