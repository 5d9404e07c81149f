"""``explain`` on the real SmolLM2 with small settings (slow tier): every stage runs, the dual route
included (30 layers, a real tokenizer), the report finds resolved induction heads, and every number its
sentences state is in ``explain_results.json``."""

from __future__ import annotations

import pytest

from induction_nnsight.app.explain_job import ExplainConfig, run_explain
from induction_nnsight.strict_json import parse_strict
from tests.integration.test_explain import claims, unmatched

pytestmark = pytest.mark.slow

SMALL = ExplainConfig(
    batch=8,
    seq_len=16,
    top_k=2,
    draws=2,
    verify=4,
    targets=1,
    icl_windows=4,
    icl_length=128,
    icl_early=10,
    icl_late=100,
    prompts=8,
    copying_prompts=2,
)


def test_explain_smollm2_small(smollm2):
    explanation, files = run_explain(SMALL, smollm2)
    results = parse_strict(files["explain_results.json"])
    assert explanation.dual_route["ran"], explanation.dual_route
    assert set(results["cost"]["stages"]) == {"heads", "ablate", "circuit", "attention", "icl", "dual-route"}
    assert results["heads"]["best_induction"]["name"] == "L18H6"
    assert any(h["clearly_above"] for h in results["heads"]["induction"])  # L18H6 and friends
    sentences = claims(files["explain.html"])
    assert len(sentences) > 10 and not unmatched(sentences, results)
    for row in results["ablation"]["sweep"]:  # a head not distinguishable from 0 is never stated as a finding
        [sentence] = [s for s in sentences if s.startswith(f"Ablating {row['name']} alone")]
        assert ("not resolved" in sentence) == (not row["distinguishable_from_zero"]), sentence
