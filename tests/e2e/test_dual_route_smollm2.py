"""The dual route on the real SmolLM2 (slow tier): the top concept and token heads are reported with
intervals that contain their means (in-context learning: test_icl_smollm2.py)."""

from __future__ import annotations

from induction_nnsight import Execution
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
