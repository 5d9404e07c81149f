"""What the activation patching of :mod:`~induction_nnsight.causal.patching.engine` returns: a grid of
patched metrics and its recovery (:class:`PatchResult`).

It shows itself in a notebook (a one-line ``repr``, an HTML table) and draws its figure
(``figure()``) with the builders of :mod:`~induction_nnsight.figures`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import plotly.graph_objects as go
import torch

from ...figures.causal import interval_hover
from ...figures.heads import GridAxes, heatmap_figure
from ...figures.style import ANNOTATED
from ...figures.tables import HTML_ROWS, Displayable, Summary, plain, titled
from ...scores.ranking import rank_heads
from ..cost import Cost
from ..metrics import recovery

RECOVERY = "recovery (0: corrupted, 1: clean)"
"""Colour-bar title of a recovery grid."""


@dataclass(repr=False)
class PatchResult(Displayable):
    """A grid of patched metrics and its recovery; shows the cells that recover most and draws
    ``figure()``, the heatmap of ``recovery``.

    Attributes:
        clean: Metric of the clean rows.
        corrupted: Metric of the corrupted rows (nothing patched, same batch layout).
        values: The grid of patched metrics.
        recovery: ``(values - corrupted) / (clean - corrupted)``.
        rows: Labels of the grid's rows.
        columns: Labels of its columns.
        metric: What the metric is, with its unit.
        model: The model's name or path.
        ci_low: Lower end of each cell's 95% recovery interval (bootstrap over rows; NaN from one row).
        ci_high: Upper end.
        cost: The passes the grid ran (:class:`~induction_nnsight.causal.cost.Cost`), when known.
    """

    clean: float
    corrupted: float
    values: torch.Tensor
    recovery: torch.Tensor = field(init=False)
    rows: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    metric: str | None = None
    model: str | None = None
    ci_low: torch.Tensor | None = None
    ci_high: torch.Tensor | None = None
    cost: Cost | None = None

    FIGURES = ("recovery",)

    def __post_init__(self) -> None:
        self.recovery = recovery(self.values, self.corrupted, self.clean)

    def _heads_grid(self) -> bool:
        return all(r.startswith("L") for r in self.rows) and all(c.startswith("H") for c in self.columns)

    def _summary(self) -> Summary:
        def label(i: int, j: int) -> str:
            row, column = (self.rows[i] if self.rows else str(i)), (self.columns[j] if self.columns else str(j))
            return f"{row}{column}" if self._heads_grid() else f"{row} @ {column}"

        rows = [
            [label(i, j), float(self.recovery[i, j]), float(self.values[i, j])]
            for i, j in rank_heads(self.recovery, HTML_ROWS)
        ]
        return Summary(
            "PatchResult",
            self.model,
            f"{self.values.shape[0]} x {self.values.shape[1]} grid",
            ["site", "recovery", self.metric or "metric"],
            rows,
            [("clean", float(self.clean)), ("corrupted", float(self.corrupted))],
            rows_title="best recovery",
        )

    def _figure(self, name: str, **options) -> go.Figure:
        """The recovery heatmap; ``options`` may also name :class:`GridAxes` fields (``x_labels``, ...)."""
        heads, layers = self._heads_grid(), all(r.startswith("L") for r in self.rows)
        axes = GridAxes(
            self.columns or None,
            self.rows or None,
            "head" if heads else "position (token)",
            "layer" if heads else "layer (output of)" if layers else "",
            "" if heads else None,
        )
        changes = {f.name: options.pop(f.name) for f in fields(GridAxes) if f.name in options}
        nan = torch.full_like(self.recovery, float("nan"))
        low = nan if self.ci_low is None else self.ci_low
        high = nan if self.ci_high is None else self.ci_high
        figure = heatmap_figure(
            plain(self.recovery),
            **{
                "title": titled("Recovery when a clean activation is patched in", self.model),
                "value_range": (None, None),
                "colorbar_title": RECOVERY,
                "axes": replace(axes, **changes),
                "top": rank_heads(self.recovery, ANNOTATED),
                **options,
            },
        )
        return interval_hover(figure, plain(low), plain(high))
