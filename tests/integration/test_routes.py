"""Every pair of routes to one number gives the same number (issue 12, point 7).

The package reaches several numbers by more than one road: the scan and the heads pass, the
one-purpose functions and the combined pass, one score alone and every score in one trace,
rows averaged inside the trace and outside it, ``detect_heads`` and the raw pass, the two CLI
jobs, and the two half-loss helpers. Each test below pins one pair together.

Tolerances: ``ATOL = 1e-5`` (float32 noise; the routes run the same forward pass, so the true
difference is zero). The two jobs' JSON tables are rounded to 6 decimals by each job; two
float32 values a few ulps apart can round to neighbouring 6-decimal numbers, so those agree to
``ROUNDED_ATOL`` (one unit in the sixth decimal).
"""

from __future__ import annotations

import math

import pytest
import torch

from induction_nnsight.app.heads_job import HeadsConfig, run_heads
from induction_nnsight.app.jobs import ScanConfig
from induction_nnsight.app.scan_job import run_scan
from induction_nnsight.causal.metrics import repeated_half_loss
from induction_nnsight.probes.tokens import repeated_probe
from induction_nnsight.scores.builtin import BUILTIN_SCORES
from induction_nnsight.scores.detect import detect_heads
from induction_nnsight.scores.heads import head_scores
from induction_nnsight.scores.losses import half_losses
from induction_nnsight.scores.registry import get_score
from induction_nnsight.scores.scan import induction_scores, loss_by_position, scan
from tests.conftest import TINY_BOS

HEAD_KINDS = tuple(score.name for score in BUILTIN_SCORES)  # the built-in scores' names
ATOL = 1e-5
ROUNDED_ATOL = 1e-6 + 1e-9
SEQ_LEN = 10
BATCH = 3
ROUTES = [("gpt2", "eager"), ("gpt2", "sdpa"), ("llama", "eager"), ("llama", "sdpa")]
RUN_KINDS = tuple(k for k in HEAD_KINDS if get_score(k).reads != "weights")


def probe():
    return repeated_probe(BATCH, SEQ_LEN, seed=0, low=1, high=128, bos_token_id=TINY_BOS)


def close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> bool:
    """Same shape and values within ``atol``, NaN where the other is NaN."""
    return a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=0, equal_nan=True)


@pytest.fixture(scope="module")
def all_scores(tiny_model):
    """``(arch, attn) -> HeadScores`` of every registered score on :func:`probe`, one pass each, cached."""
    made = {}

    def get(arch, attn):
        if (arch, attn) not in made:
            made[arch, attn] = head_scores(tiny_model(arch, attn), probe())
        return made[arch, attn]

    return get


def test_the_probe_exercises_every_score():
    """Guard: the routes below would compare nothing if the probe had no period or no repeats."""
    batch = probe()
    assert batch.period == SEQ_LEN
    assert int(batch.repeat_queries.sum()) == BATCH * SEQ_LEN  # the second copy of each row


@pytest.mark.parametrize(("arch", "attn"), ROUTES)
def test_scan_equals_the_heads_pass(tiny_model, all_scores, arch, attn):
    model, batch = tiny_model(arch, attn), probe()
    result = scan(model, batch.tokens, SEQ_LEN)
    heads = all_scores(arch, attn)
    assert close(result.induction_scores, heads.mean("induction"))
    assert close(result.loss_by_position, heads.loss_by_position)
    assert close(result.loss_by_position, loss_by_position(model, batch.tokens))
    assert close(induction_scores(model, batch.tokens, SEQ_LEN), result.induction_scores)
    # the routes are not trivially equal: the scores differ from head to head
    assert result.induction_scores.std() > 0


@pytest.mark.parametrize(("arch", "attn"), ROUTES)
def test_one_pass_equals_each_score_alone(tiny_model, all_scores, arch, attn):
    model, together = tiny_model(arch, attn), all_scores(arch, attn)
    assert set(together.kinds) == set(HEAD_KINDS)
    for kind in HEAD_KINDS:
        alone = head_scores(model, probe(), kinds=(kind,), loss=False)
        assert alone.kinds == [kind]
        assert alone.loss_by_position is None
        assert close(alone.mean(kind), together.mean(kind)), kind
        if kind in together.per_row:
            assert close(alone.per_row[kind], together.per_row[kind]), kind


@pytest.mark.parametrize(("arch", "attn"), ROUTES)
def test_rows_averaged_inside_the_trace_equal_the_row_mean(tiny_model, all_scores, arch, attn):
    rows = all_scores(arch, attn)
    averaged = head_scores(tiny_model(arch, attn), probe(), per_row=False)
    assert set(averaged.kinds) == set(rows.kinds)
    for kind in RUN_KINDS:
        assert rows.per_row[kind].shape == (BATCH, 2, 4), kind
        assert averaged.per_row[kind].shape == (1, 2, 4), kind
        assert close(averaged.per_row[kind][0], rows.per_row[kind].nanmean(0)), kind
        assert close(averaged.mean(kind), rows.mean(kind)), kind
    assert close(averaged.static["copying_ov"], rows.static["copying_ov"])
    assert close(averaged.loss_by_position, rows.loss_by_position)


@pytest.mark.parametrize(("arch", "attn"), [("gpt2", "eager"), ("llama", "sdpa")])
@pytest.mark.parametrize("kind", HEAD_KINDS)
def test_detect_heads_scores_equal_the_heads_pass(tiny_model, all_scores, arch, attn, kind):
    detection = detect_heads(tiny_model(arch, attn), kind, probe=probe())
    heads = all_scores(arch, attn)
    assert close(detection.scores, heads.mean(kind))
    expected_above = int((heads.mean(kind) >= detection.threshold).sum())
    assert len(detection.heads) == expected_above


@pytest.mark.parametrize(("arch", "attn"), [("gpt2", "eager"), ("llama", "sdpa")])
def test_scan_and_heads_jobs_write_the_same_induction_table(tiny_dir, tiny_model, all_scores, arch, attn):
    common = dict(
        model=str(tiny_dir(arch)), batch=BATCH, seq_len=SEQ_LEN, low=1, high=128, top=3, attn_implementation=attn
    )
    model = tiny_model(arch, attn)
    scanned, _ = run_scan(ScanConfig(**common), model=model)
    heads, _, _ = run_heads(HeadsConfig(**common, kinds=("induction",)), model=model)
    scan_table = torch.tensor(scanned["induction_scores"], dtype=torch.float64)
    heads_table = torch.tensor(heads["kinds"]["induction"]["scores"], dtype=torch.float64)
    assert scan_table.shape == heads_table.shape == (2, 4)
    assert close(scan_table, heads_table, ROUNDED_ATOL)
    # and both are the rounded heads pass on the same tokens
    assert close(scan_table, all_scores(arch, attn).mean("induction").double(), ROUNDED_ATOL / 2 + 1e-7)
    for half in ("mean_loss_first_half", "mean_loss_repeated_half"):
        assert math.isclose(scanned[half], heads[half], abs_tol=ROUNDED_ATOL), half


@pytest.mark.parametrize(("arch", "attn"), [("gpt2", "eager"), ("llama", "sdpa")])
def test_half_losses_equal_the_causal_repeated_half_loss(all_scores, arch, attn):
    loss = all_scores(arch, attn).loss_by_position
    first, repeated = half_losses(loss, SEQ_LEN, True)
    assert math.isclose(repeated, float(repeated_half_loss(loss, SEQ_LEN, True)), abs_tol=ATOL)
    # the two halves cover the same tokens once unseen and once seen: the helper picks different entries
    start = 1
    assert math.isclose(first, float(loss[start : start + SEQ_LEN - 1].mean()), abs_tol=ATOL)
    assert math.isclose(repeated, float(loss[start + SEQ_LEN : start + 2 * SEQ_LEN - 1].mean()), abs_tol=ATOL)
    # without BOS every index moves one to the left
    no_bos = loss[1:]
    assert math.isclose(
        half_losses(no_bos, SEQ_LEN, False)[1], float(repeated_half_loss(no_bos, SEQ_LEN, False)), abs_tol=ATOL
    )
