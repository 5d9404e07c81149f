"""What the ablations of :mod:`~induction_nnsight.causal.ablation.sweep` return: every head ablated alone
(:class:`SweepResult`) and the top heads against random heads (:class:`CurveResult`).

Both show themselves in a notebook (a one-line ``repr``, an HTML table) and draw their figure
(``figure()``) with the builders of :mod:`~induction_nnsight.figures`.
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go
import torch

from ...figures.causal import ablation_curve_figure, interval_hover
from ...figures.heads import heatmap_figure
from ...figures.style import ANNOTATED
from ...figures.tables import HTML_ROWS, Displayable, Summary, plain, titled
from ...names import head_name
from ...scores.ranking import rank_heads, ranked_rows
from ...stats import ALPHA

Head = tuple[int, int]


def _distinct(low: float, high: float, q: float) -> str:
    if not (low > 0 or high < 0):
        return "no (contains 0)"
    return "no (after correction)" if q == q and q > ALPHA else "yes"


@dataclass(repr=False)
class SweepResult(Displayable):
    """Every head ablated alone; shows the heads whose ablation moves the metric most (largest ``|delta|``)
    and draws ``figure()``, the heatmap of ``delta``.

    Attributes:
        baseline: Metric of the unablated model (same batch layout).
        values: ``[n_layers, n_heads]`` metric with that head ablated (NaN where not swept).
        delta: ``values - baseline``.
        metric: What the metric is, with its unit (e.g. ``"loss (nats)"``).
        model: The model's name or path.
        ci_low: ``[n_layers, n_heads]`` lower end of ``delta``'s 95% interval (bootstrap over rows).
        ci_high: ``[n_layers, n_heads]`` upper end.
        q_values: ``[n_layers, n_heads]`` each change's p-value adjusted by Benjamini-Hochberg over every
            head swept: distinct from 0 where at most :data:`~induction_nnsight.stats.ALPHA` (None: the
            interval decides).
    """

    baseline: float
    values: torch.Tensor
    delta: torch.Tensor
    metric: str | None = None
    model: str | None = None
    ci_low: torch.Tensor | None = None
    ci_high: torch.Tensor | None = None
    q_values: torch.Tensor | None = None

    FIGURES = ("delta",)

    def _summary(self) -> Summary:
        layers, heads = self.delta.shape
        low, high = self._interval()
        q = torch.full_like(self.delta, float("nan")) if self.q_values is None else self.q_values
        rows = [
            [name, delta, value, lo, hi, _distinct(lo, hi, qv)]
            for name, _, delta, value, lo, hi, qv in ranked_rows(
                self.delta.abs(), HTML_ROWS, self.delta, self.values, low, high, q
            )
        ]
        return Summary(
            "SweepResult",
            self.model,
            f"{layers} layers x {heads} heads",
            [
                "head",
                f"change of {self.metric or 'the metric'}",
                "ablated",
                "95% CI low",
                "95% CI high",
                "distinct from 0",
            ],
            rows,
            [("baseline", float(self.baseline))],
            rows_title="largest change",
        )

    def _interval(self) -> tuple[torch.Tensor, torch.Tensor]:
        nan = torch.full_like(self.delta, float("nan"))
        return (nan if self.ci_low is None else self.ci_low), (nan if self.ci_high is None else self.ci_high)

    def _figure(self, name: str, **options) -> go.Figure:
        low, high = self._interval()
        return interval_hover(self._heatmap(**options), plain(low), plain(high))

    def _heatmap(self, **options) -> go.Figure:
        return heatmap_figure(
            plain(self.delta),
            **{
                "title": titled("Change of the metric when one head is ablated", self.model),
                "value_range": (None, None),
                "colorbar_title": f"Δ {self.metric or 'metric'}",
                "top": rank_heads(self.delta.abs(), ANNOTATED),
                **options,
            },
        )


@dataclass(repr=False)
class CurveResult(Displayable):
    """Metric as more heads are ablated, top heads against random heads; shows the top heads in order
    with the metric after each is added, and draws ``figure()``, the curves.

    Attributes:
        ks: ``[K]`` the numbers of heads ablated, 1..K.
        baseline: Metric with nothing ablated.
        top: ``[K]`` metric with the top ``k`` heads ablated.
        random: ``[n_draws, K]`` metric with the first ``k`` heads of each random draw ablated.
        top_heads: The ranked heads.
        random_heads: The draws.
        metric: What the metric is, with its unit.
        model: The model's name or path.
        top_ci: ``[2, K]`` 95% interval (low, high) of ``top`` (bootstrap over rows).
        random_ci: ``[2, K]`` 95% interval of the random draws' mean (bootstrap over rows).
    """

    ks: list[int]
    baseline: float
    top: torch.Tensor
    random: torch.Tensor
    top_heads: list[Head]
    random_heads: list[list[Head]]
    metric: str | None = None
    model: str | None = None
    top_ci: torch.Tensor | None = None
    random_ci: torch.Tensor | None = None

    FIGURES = ("curve",)

    def _summary(self) -> Summary:
        mean = self.random.mean(dim=0)
        spread = self.random.std(dim=0) if self.random.shape[0] > 1 else torch.zeros_like(mean)
        rows = [
            [head_name(layer, head), float(self.top[i]), float(mean[i]), float(spread[i])]
            for i, (layer, head) in enumerate(self.top_heads)
        ]
        k = len(self.ks)
        return Summary(
            "CurveResult",
            self.model,
            f"k = 1..{k}, {self.random.shape[0]} random draws",
            ["head added", "top k ablated", "random k (mean)", "random k (sd over draws)"],
            rows,
            [("baseline", float(self.baseline)), (f"top {k}", float(self.top[-1])), (f"random {k}", float(mean[-1]))],
            rows_title="top heads",
        )

    def _figure(self, name: str, **options) -> go.Figure:
        return ablation_curve_figure(
            self.ks,
            plain(self.top),
            plain(self.random),
            plain(self.baseline),
            **{
                "title": titled("Top heads against random heads ablated", self.model),
                "y_title": self.metric or "metric",
                "intervals": {
                    name: (plain(ci[0]), plain(ci[1]))
                    for name, ci in (("top", self.top_ci), ("random", self.random_ci))
                    if ci is not None
                },
                **options,
            },
        )
