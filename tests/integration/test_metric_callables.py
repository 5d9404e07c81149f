"""A plain callable as the metric of ablation and patching sweeps on a tiny random model: a lambda that
reproduces a built-in metric gives the built-in's numbers."""

import torch

from induction_nnsight import Execution, repeated_tokens
from induction_nnsight.causal.ablation.sweep import ablation_curve, ablation_sweep
from induction_nnsight.causal.metrics import LogitDiff, RowMetric, as_metric, logit_diff
from induction_nnsight.causal.pairs import Pair
from induction_nnsight.causal.patching.engine import patch_heads
from induction_nnsight.scores.losses import token_losses

QUIET = Execution(progress=False)
SEQ = 8


def rows(seed=0, batch=3):
    return repeated_tokens(batch, SEQ, seed=seed, low=1, high=128, bos_token_id=0)


def test_a_lambda_loss_gives_the_built_in_sweep(tiny_model):
    model, tokens = tiny_model("llama"), rows()
    built_in = ablation_sweep(model, tokens, RowMetric("loss", loss_positions=slice(1 + SEQ, 2 * SEQ)), execution=QUIET)
    mine = ablation_sweep(
        model,
        tokens,
        lambda logits, tokens: token_losses(logits, tokens)[:, 1 + SEQ : 2 * SEQ].mean(-1),
        execution=QUIET,
    )
    assert abs(mine.baseline - built_in.baseline) < 1e-6
    for name in ("values", "delta"):
        assert torch.allclose(getattr(mine, name), getattr(built_in, name), atol=1e-6, equal_nan=True), name
    for name in ("ci_low", "ci_high"):  # the t interval scales the rows' float noise by t(0.975, 2 df) = 4.3
        assert torch.allclose(getattr(mine, name), getattr(built_in, name), atol=1e-5, equal_nan=True), name
    assert built_in.metric == "loss (nats)" and mine.metric == "metric"  # a bare lambda is labelled by its name
    labelled = as_metric(lambda logits, tokens: token_losses(logits, tokens).mean(-1), label="loss, every token (nats)")
    curve = ablation_curve(model, tokens, labelled, [(1, 0)], execution=QUIET)
    assert curve.metric == "loss, every token (nats)"
    assert torch.allclose(curve.top, ablation_curve(model, tokens, RowMetric("loss"), [(1, 0)], execution=QUIET).top)


def test_a_lambda_logit_diff_gives_the_built_in_patching(tiny_model):
    model, clean = tiny_model("gpt2"), rows(batch=2)
    corrupted = clean.clone()
    corrupted[:, 1 : 1 + SEQ] = (clean[:, 1 : 1 + SEQ] % 127) + 1  # the first copy corrupted
    correct, wrong = torch.tensor([5, 6]), torch.tensor([7, 8])
    built_in = patch_heads(model, Pair(clean, corrupted, LogitDiff(correct=correct, wrong=wrong)), execution=QUIET)

    def diff(logits, tokens):  # the ids repeat over the variants' groups of rows, as the built-in does
        groups = logits.shape[0] // 2
        return logit_diff(logits[:, -1], correct.repeat(groups), wrong.repeat(groups))

    mine = patch_heads(model, Pair(clean, corrupted, as_metric(diff, label="logit difference")), execution=QUIET)
    assert abs(mine.clean - built_in.clean) < 1e-6 and abs(mine.corrupted - built_in.corrupted) < 1e-6
    assert torch.allclose(mine.values, built_in.values, atol=1e-6) and mine.metric == built_in.metric
