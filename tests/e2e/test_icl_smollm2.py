"""In-context learning on the real SmolLM2 (slow tier): on the default text (Python's own help topics)
the loss falls with context, and Olsson's score is negative (one token index per window is noisy: over
the default windows, sampled across the text, the interval still includes zero, so only its mean and
lower end are required below zero).

The run is the session's ``default_icl`` (tests/conftest.py), which the icl chart check reads too:
both are in the ``default_icl`` xdist group, so one process makes it once.
"""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("default_icl")
def test_olsson_score_on_the_default_text_is_negative(default_icl):
    results, _ = default_icl
    score = results["olsson_icl_score"]
    assert "pydoc_data.topics" in results["source"]
    assert score["mean"] < 0 and score["ci_low"] < 0
    assert results["loss_at_late"] < results["loss_at_early"]
