"""The causal-metric protocol: built-in metrics, their registry, and plain callables as metrics."""

import pytest
import torch

from induction_nnsight.app import patch_job
from induction_nnsight.app.options import option_of
from induction_nnsight.causal.metrics import (
    METRICS,
    CausalMetric,
    FunctionMetric,
    LogitDiff,
    Loss,
    LossByPosition,
    Prob,
    RowMetric,
    as_metric,
    make_metric,
    metric_names,
    register_metric,
)
from induction_nnsight.errors import InductionError


def test_builtins_are_registered_and_implement_the_protocol():
    assert {"loss", "loss_by_position", "logit_diff", "prob"} <= set(METRICS)
    made = [Loss(), LossByPosition(), LogitDiff(correct=1, wrong=2), Prob(correct=1)]
    for metric in made:
        assert isinstance(metric, CausalMetric) and METRICS[metric.name] is type(metric)
        assert metric.label and isinstance(metric.higher_is_better, bool)
    assert [m.higher_is_better for m in made] == [False, False, True, True]


def test_cli_choices_come_from_the_registry():
    assert set(patch_job.METRICS) == {"loss", "logit_diff", "prob"}  # one value per row
    assert metric_names() == patch_job.METRICS and "loss_by_position" in metric_names(per_row=False)
    assert tuple(option_of(patch_job.PatchConfig, "metric").choices) == patch_job.METRICS


def test_row_metric_keeps_its_construction():
    metric = RowMetric("loss", loss_positions=slice(2, 5))
    assert isinstance(metric, Loss) and metric.loss_positions == slice(2, 5) and metric.label == "loss (nats)"
    assert RowMetric().name == "loss" and tuple(METRICS) == RowMetric.NAMES
    # A text pair offers its tokens to every metric; the loss ignores them.
    assert isinstance(make_metric("loss", correct=torch.tensor([3]), wrong=None), Loss)
    assert make_metric("prob", correct=torch.tensor([3]), wrong=torch.tensor([4])).correct.tolist() == [3]
    with pytest.raises(InductionError, match="unknown metric 'nope'"):
        RowMetric("nope")
    with pytest.raises(InductionError, match="correct token"):
        RowMetric("prob")


def test_a_plain_callable_becomes_a_metric():
    def top_logit(logits, tokens):
        return logits[:, -1].max(dim=-1).values

    metric = as_metric(top_logit, label="top logit (logits)", higher_is_better=True)
    assert (metric.name, metric.label, metric.higher_is_better) == ("top_logit", "top logit (logits)", True)
    logits = torch.randn(3, 4, 5)
    assert torch.equal(metric(logits, torch.zeros(3, 4)), top_logit(logits, None))
    anonymous = as_metric(lambda logits, tokens: logits[:, 0, 0])
    assert (anonymous.name, anonymous.label, anonymous.higher_is_better) == ("metric", "metric", False)
    built_in = Loss()
    assert as_metric(built_in) is built_in  # already a metric: used as it is
    relabelled = as_metric(built_in, label="loss on everything (nats)")
    assert isinstance(relabelled, FunctionMetric) and relabelled.name == "loss" and not relabelled.higher_is_better
    with pytest.raises(InductionError, match="callable"):
        as_metric(3)


def test_a_new_metric_is_one_registered_class():
    from dataclasses import dataclass
    from typing import ClassVar

    @register_metric
    @dataclass(frozen=True)
    class Entropy:
        position: int = -1
        name: ClassVar[str] = "test_entropy"
        label: ClassVar[str] = "entropy at one position (nats)"
        higher_is_better: ClassVar[bool] = False

        def __call__(self, logits, tokens):
            return torch.distributions.Categorical(logits=logits[:, self.position].float()).entropy()

    try:
        assert "test_entropy" in metric_names()
        metric = make_metric("test_entropy", correct=torch.tensor([1]), position=0)
        assert isinstance(metric, CausalMetric) and metric.position == 0
        assert metric(torch.zeros(2, 3, 4), torch.zeros(2, 3)).allclose(torch.log(torch.tensor(4.0)))
        with pytest.raises(InductionError, match="already registered"):
            register_metric(type("Other", (), {"name": "test_entropy"}))
    finally:
        METRICS.pop("test_entropy")
