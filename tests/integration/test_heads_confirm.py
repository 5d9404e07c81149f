"""``heads --confirm``: the top heads scored again on fresh rows, equal to a heads pass run on those rows
directly, with intervals and "clearly above" corrected over the confirmed heads only."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from induction_nnsight.app.heads_job import CONFIRM_SEED, HeadsConfig, run_heads
from induction_nnsight.app.jobs import scan_tokens
from induction_nnsight.probes.tokens import repeated_tokens_probe
from induction_nnsight.scores.heads import head_scores


def test_confirmed_heads_are_the_top_heads_on_fresh_rows(tiny_dir, tiny_model):
    stats = pytest.importorskip("scipy.stats")
    config = HeadsConfig(model=str(tiny_dir("llama")), batch=6, seq_len=8, low=1, high=128, top=3, kinds=("induction",))
    model = tiny_model("llama")
    plain, _, _ = run_heads(config, model=model)
    results, _, report = run_heads(replace(config, confirm=True), model=model)
    kind = results["kinds"]["induction"]
    assert kind["top"] == plain["kinds"]["induction"]["top"]  # the ranking rows are unchanged
    assert "confirmed" not in plain["kinds"]["induction"] and "conditional" in plain["settings"]["top_intervals"]
    assert "fresh rows" in results["settings"]["top_intervals"]
    assert results["settings"]["correction"].startswith("clearly above: Benjamini-Hochberg")
    # the independent route: the fresh rows' heads pass, run here
    fresh = scan_tokens(model, replace(config, seed=config.seed + CONFIRM_SEED))
    rows = head_scores(model, repeated_tokens_probe(fresh, config.seq_len, bos=True), kinds=("induction",))
    per_row = rows.per_row["induction"].double()  # [batch, layers, heads]
    chosen = [(h["layer"], h["head"]) for h in kind["top"]]
    assert [(h["layer"], h["head"]) for h in kind["confirmed"]] == chosen
    p = []
    for h in kind["confirmed"]:
        column = per_row[:, h["layer"], h["head"]].numpy()
        assert h["score"] == pytest.approx(float(column.mean()), abs=1e-6)
        ci = stats.ttest_1samp(column, 0.0).confidence_interval(0.95)
        assert h["ci"][0] == pytest.approx(ci.low, abs=1e-5) and h["ci"][1] == pytest.approx(ci.high, abs=1e-5)
        p.append(stats.ttest_1samp(column, kind["threshold"], alternative="greater").pvalue)
    q = stats.false_discovery_control(p)  # over the 3 confirmed heads only
    assert [h["clearly_above"] for h in kind["confirmed"]] == [bool(v <= 0.05) for v in q]
    assert "fresh rows" in report and not torch.equal(fresh, scan_tokens(model, config))
