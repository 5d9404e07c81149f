"""The sentence builders of ``explain``: a finding only where the interval excludes zero and the corrected q
is at most 0.05; "not resolved", with the reason, otherwise. And the page builder escapes what it embeds."""

from __future__ import annotations

import pytest

from induction_nnsight.app.explain_text import (
    NOT_RESOLVED,
    edge_sentence,
    head_sentence,
    icl_sentence,
    resolved,
    sweep_sentence,
    top_vs_random_sentence,
)
from induction_nnsight.figures.explain_html import explain_html

HEADS = {"previous_token": [{"name": "L0H0", "score": 0.95, "ci": [0.9, 1.0], "clearly_above": True}]}


def edge(**changes) -> dict:
    base = dict(source="L0H0", target="L1H0", path="k", effect=-0.78, ci_low=-0.8, ci_high=-0.76, q=0.001)
    base |= dict(loss_effect=1.2, loss_ci_low=1.0, loss_ci_high=1.4, loss_q=0.002)
    return base | changes


@pytest.mark.parametrize(
    "low, high, q, found",
    [(0.1, 0.3, None, True), (-0.3, -0.1, 0.01, True), (-0.1, 0.3, None, False), (0.1, 0.3, 0.06, False)],
)
def test_resolved_needs_the_interval_off_zero_and_q_within_the_rate(low, high, q, found):
    assert resolved(low, high, q) is found
    assert resolved(None, None) is False and resolved(float("nan"), 1.0) is False


def test_an_edge_is_a_finding_only_when_resolved():
    found = edge_sentence(edge(), HEADS, {"score": 0.3, "baseline": 0.1})
    assert found.startswith("L1H0 reads its keys from L0H0, a previous-token head (previous-token score 0.950")
    assert "-0.780 [-0.800, -0.760] (q = 0.001)" in found and "K-composition score is 0.300" in found
    assert NOT_RESOLVED not in found
    spanning = edge_sentence(edge(ci_low=-0.9, ci_high=0.1), HEADS)
    assert spanning.startswith("No source of L1H0's keys is resolved") and "the interval includes zero" in spanning
    corrected = edge_sentence(edge(q=0.2), HEADS)
    assert f"{NOT_RESOLVED} (q = 0.200 > 0.05 after Benjamini-Hochberg correction)" in corrected
    value = edge_sentence(edge(path="v", effect=0.0, ci_low=0.0, ci_high=0.0), HEADS)  # v: judged by the loss
    assert value.startswith("L1H0 reads its values from L0H0") and "repeated-half loss by +1.200" in value


def test_a_head_not_clearly_above_is_not_resolved():
    head = {"name": "L2H1", "score": 0.45, "ci": [0.38, 0.52], "clearly_above": False}
    sentence = head_sentence(head, "induction", 0.4, 270, 8)
    assert sentence.startswith("L2H1 reaches the induction threshold 0.4") and NOT_RESOLVED in sentence
    assert "is an induction head" not in sentence


def test_sweep_rows_and_the_top_heads():
    row = dict(name="L1H1", delta=0.0, ci_low=0.0, ci_high=0.0, q=None, distinguishable_from_zero=False)
    assert sweep_sentence(row).endswith(f"{NOT_RESOLVED} (the interval includes zero).")
    row = dict(name="L1H0", delta=2.4, ci_low=2.1, ci_high=2.7, q=0.0001, distinguishable_from_zero=True)
    assert (
        sweep_sentence(row)
        == "Ablating L1H0 alone changes the repeated-half loss by +2.400 [+2.100, +2.700] nats (q < 0.001)."
    )
    vs = dict(k=1, baseline=0.8, top=3.3, top_ci=[3.0, 3.6], random_mean=0.9, random_mean_ci=[0.6, 1.1])
    assert "do not overlap" in top_vs_random_sentence(vs, ["L1H0"], "zero", 3)
    overlapping = top_vs_random_sentence(vs | {"random_mean_ci": [0.6, 3.1]}, ["L1H0"], "zero", 3)
    assert f"is {NOT_RESOLVED}: the intervals overlap" in overlapping


def test_icl_score_spanning_zero_is_not_resolved():
    icl = dict(score={"mean": -0.58, "ci_low": -2.5, "ci_high": 1.4}, n_windows=16, length=512, source="text")
    icl |= dict(loss_at_early=2.2, loss_at_late=1.6, early=50, late=500)
    assert icl_sentence(icl).endswith(f"{NOT_RESOLVED} (the interval includes zero).")
    icl["score"] = {"mean": -0.58, "ci_low": -0.7, "ci_high": -0.4}
    assert icl_sentence(icl).endswith("so the loss falls with context.")


def test_the_page_escapes_sentences_and_figure_data():
    figure = '{"data": [], "layout": {"title": {"text": "</script><b>x</b>"}}}'
    page = explain_html(
        "<T>", [{"heading": "H", "sentences": ["a < b, not resolved"], "figures": [("c", figure)]}], plotly_js=""
    )
    assert '<li class="claim unresolved">a &lt; b, not resolved</li>' in page
    assert "</script><b>" not in page and "\\u003c/script\\u003e" in page
    assert "<title>&lt;T&gt;</title>" in page
