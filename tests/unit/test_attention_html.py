"""The attention view's HTML builder: the weights it embeds are the ones given, bad data is refused,
the page is self-contained and deterministic, and the targets it outlines are the probe's."""

import json
import random
import re

import pytest
import torch

from induction_nnsight.figures.attention_html import attention_data, attention_fragment, attention_html
from induction_nnsight.scores.attention_view import view_targets
from induction_nnsight.scores.reductions import induction_token_mask


def embedded(page: str) -> dict:
    """The data block of a page (exactly one)."""
    blocks = re.findall(r'<script type="application/json" class="inv-attn-data">(.*?)</script>', page, re.S)
    assert len(blocks) == 1
    return json.loads(blocks[0])


def random_weights(n_heads: int, n: int, seed: int = 0) -> list:
    """``[head][query][key]`` causal rows that sum to 1, with many digits."""
    rng = random.Random(seed)
    grids = []
    for _ in range(n_heads):
        rows = []
        for q in range(n):
            raw = [rng.random() if k <= q else 0.0 for k in range(n)]
            rows.append([v / sum(raw) for v in raw])
        grids.append(rows)
    return grids


def test_the_embedded_weights_are_the_given_ones():
    tokens = ["<bos>", " The", " cat", "\n", " The", " cat"]
    weights = random_weights(3, len(tokens))
    data = embedded(attention_html(tokens, weights, ["L1H0", "L2H3", "L0H1"], title="t"))
    assert data["tokens"] == tokens and data["heads"] == ["L1H0", "L2H3", "L0H1"]
    got = torch.tensor(data["weights"])
    assert got.shape == (3, 6, 6)
    assert torch.allclose(got, torch.tensor(weights), atol=1e-4, rtol=0)
    assert data["shown"] == [0, 1, 2]


def test_tensors_are_taken_as_they_are():
    weights = torch.softmax(torch.randn(2, 4, 4), -1)
    data = embedded(attention_html(list("abcd"), weights, ["a", "b"]))
    assert torch.allclose(torch.tensor(data["weights"]), weights, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("weights", "labels", "message"),
    [
        ([[[1.0, 0.0], [0.5, 0.5]]], ["L0H0", "L0H1"], r"2 head\(s\)"),  # one grid, two labels
        ([[[1.0, 0.0]]], ["L0H0"], "2 query rows"),  # a query row missing
        ([[[1.0], [0.5, 0.5]]], ["L0H0"], "2 key weights"),  # a ragged row
        ([[[1.0, 0.0], [0.5, 0.5, 0.0]]], ["L0H0"], "2 key weights"),  # a row too long
        ([[[1.0, 0.0], [float("nan"), 0.5]]], ["L0H0"], "NaN"),
        ([[[1.0, 0.0], ["x", 0.5]]], ["L0H0"], "non-number"),
        ([[1.0, 0.0], [0.5, 0.5]], ["L0H0"], r"1 head\(s\)"),  # [query][key] without the head axis
        ([], [], "no head labels"),
    ],
    ids=["heads-vs-labels", "missing-row", "ragged", "long-row", "nan", "string", "no-head-axis", "no-heads"],
)
def test_bad_shapes_are_refused(weights, labels, message):
    with pytest.raises(ValueError, match=message):
        attention_html(["a", "b"], weights, labels)


@pytest.mark.parametrize(
    ("targets", "shown", "message"),
    [
        ({"induction": [[0], [2]]}, None, "not a position"),
        ({"induction": [[0]]}, None, "2 entries"),
        ({f"t{i}": [[], []] for i in range(4)}, None, "at most 3"),
        (None, [2], "shown heads"),
    ],
)
def test_bad_targets_and_shown_heads_are_refused(targets, shown, message):
    with pytest.raises(ValueError, match=message):
        attention_data(["a", "b"], [[[1.0, 0.0], [0.5, 0.5]]], ["L0H0"], targets=targets, shown=shown)
    with pytest.raises(ValueError, match="no tokens"):
        attention_data([], [[]], ["L0H0"])


def test_targets_accept_a_position_a_list_or_none():
    data = attention_data(
        ["a", "b", "c"], [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]], ["h"], targets={"prev": [None, 0, [1, 1]]}
    )
    assert data["targets"] == [{"name": "prev", "keys": [[], [0], [1]]}]


def test_the_page_is_self_contained_safe_and_deterministic():
    tokens = ["</script><script>alert(1)</script>", "&amp;", "<b>"]
    weights = random_weights(2, 3, seed=1)
    page = attention_html(tokens, weights, ["L0H0", "L0H1"], title="<i>x</i>")
    assert embedded(page)["tokens"] == tokens  # round-trips ...
    assert "alert(1)</script>" not in page and "<b>" not in page and "<i>x</i>" not in page  # ... escaped
    assert not re.search(r"(?:src|href)\s*=|https?://|\bimport\(", page)  # nothing loaded from anywhere
    assert page == attention_html(tokens, weights, ["L0H0", "L0H1"], title="<i>x</i>")
    assert " id=" not in page  # no ids: fragments can share a page, and the bytes do not vary


def test_the_fragment_is_the_page_body():
    args = (["a", "b"], [[[1.0, 0.0], [0.5, 0.5]]], ["L0H0"])
    fragment = attention_fragment(*args)
    assert fragment.startswith('<div class="inv-attn"') and fragment in attention_html(*args)
    assert "<!DOCTYPE" not in fragment


def test_view_targets_are_the_induction_mask_and_the_previous_token():
    tokens = torch.tensor([[0, 5, 6, 7, 5, 6, 7]])
    targets = view_targets(tokens)
    assert targets["previous token"] == [[], [0], [1], [2], [3], [4], [5]]
    assert targets["induction target"] == [[], [], [], [], [2], [3], [4]]
    mask = induction_token_mask(tokens)[0]
    for q, keys in enumerate(targets["induction target"]):
        assert keys == torch.nonzero(mask[q]).flatten().tolist()


def test_the_charts_check_compares_a_view_by_its_data(tmp_path):
    """scripts/export_charts.py --check: float noise in a view's weights passes, drift is named, and
    a change to the page around the data (script, style) is a difference."""
    from tests.docs.helpers import load_export_charts

    check = load_export_charts().check
    weights = random_weights(2, 4, seed=2)
    committed, fresh = tmp_path / "committed", tmp_path / "fresh"
    committed.mkdir(), fresh.mkdir()
    (committed / "view.html").write_text(attention_html(list("abcd"), weights, ["L0H0", "L0H1"]))
    noisy = [[[w + 2e-5 for w in row] for row in grid] for grid in weights]
    (fresh / "view.html").write_text(attention_html(list("abcd"), noisy, ["L0H0", "L0H1"]))
    assert check(committed, fresh) == []
    drifted = [[[w + 0.1 for w in row] for row in grid] for grid in weights]
    (fresh / "view.html").write_text(attention_html(list("abcd"), drifted, ["L0H0", "L0H1"]))
    assert "view.html drifted" in "\n".join(check(committed, fresh))
    (fresh / "view.html").write_text(attention_html(list("abcd"), weights, ["L0H0", "L0H1"]).replace("inv-top", "x"))
    assert "the page around its data differs" in "\n".join(check(committed, fresh))
