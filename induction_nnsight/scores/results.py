"""What the heads pass returns: :class:`HeadScores`, and the one heatmap of a score kind."""

from __future__ import annotations

from dataclasses import dataclass, field

import plotly.graph_objects as go
import torch

from ..figures.heads import heatmap_figure, loss_by_position_figure
from ..figures.style import ANNOTATED
from ..figures.tables import HTML_ROWS, Displayable, Summary, plain, titled
from .declaration import HeadScore
from .ranking import rank_heads, ranked_rows
from .registry import resolve_score

__all__ = ["HeadScores", "kind_heatmap"]


@dataclass(repr=False)
class HeadScores(Displayable):
    """Scores of one pass; shows itself as the top heads of its main kind (``induction`` when present)
    with every kind's score beside them, and draws a heatmap per kind (``figures()``; the main kind's
    is ``figure()``) and ``loss_by_position`` when computed.

    Attributes:
        per_row: ``kind -> [batch, n_layers, n_heads]`` for the scores read from a run
            (``[1, n_layers, n_heads]``, the mean, when averaged over rows inside the trace).
        static: ``kind -> [n_layers, n_heads]`` for the weight-only scores (``reads="weights"``:
            read from the parameters alone, the same for every probe).
        loss_by_position: ``[pos - 1]`` mean next-token loss (None when not asked for).
        model: The model's name or path.
        declared: ``kind -> HeadScore`` the scores computed (a kind missing here is looked up in
            the registry).
    """

    per_row: dict[str, torch.Tensor]
    static: dict[str, torch.Tensor] = field(default_factory=dict)
    loss_by_position: torch.Tensor | None = None
    model: str | None = None
    declared: dict[str, HeadScore] = field(default_factory=dict)

    def mean(self, kind: str) -> torch.Tensor:
        """``[n_layers, n_heads]`` score of ``kind``, averaged over rows (ignoring NaN rows)."""
        if kind in self.static:
            return self.static[kind]
        return self.per_row[kind].nanmean(0)

    def score(self, kind: str) -> HeadScore:
        """The declaration ``kind`` was computed with."""
        return self.declared.get(kind) or resolve_score(kind)

    @property
    def kinds(self) -> list[str]:
        return [*self.per_row, *self.static]

    def _figure_names(self) -> list[str]:
        main = ["induction"] if "induction" in self.kinds else self.kinds[:1]
        loss = ["loss_by_position"] if self.loss_by_position is not None else []
        return main + [k for k in self.kinds if k not in main] + loss

    def _summary(self) -> Summary:
        kinds = [k for k in self._figure_names() if k != "loss_by_position"]
        if not kinds:
            return Summary("HeadScores", self.model, "no scores", [], [])
        tables = [self.mean(k) for k in kinds]
        rows = next(iter(self.per_row.values())).shape[0] if self.per_row else 1
        shape = f"{tables[0].shape[0]} layers x {tables[0].shape[1]} heads" + (f", {rows} rows" if rows > 1 else "")
        return Summary(
            "HeadScores",
            self.model,
            shape,
            ["head", *kinds],
            ranked_rows(tables[0], HTML_ROWS, *tables[1:]),
            rows_title=f"top {kinds[0]}",
        )

    def _figure(self, name: str, **options) -> go.Figure:
        if name == "loss_by_position":
            return loss_by_position_figure(
                plain(self.loss_by_position), **{"title": titled("Mean loss by position", self.model), **options}
            )
        return kind_heatmap(self.score(name), self.mean(name), self.model, **options)


def kind_heatmap(kind: str | HeadScore, scores: torch.Tensor, model: str | None = None, **options) -> go.Figure:
    """The heatmap of one score kind, its top cells labelled (the one route of every kind's heatmap).

    Args:
        kind: A :class:`~induction_nnsight.scores.declaration.HeadScore` or a registered score's
            name (its unit and value range set the colour bar and scale).
        scores: ``[n_layers, n_heads]``.
        model: The model's name, for the title.
        options: Keyword arguments of :func:`~induction_nnsight.figures.heads.heatmap_figure` overriding
            the defaults (``title``, ``subtitle``, ...).
    """
    score = resolve_score(kind)
    what = score.name.replace("_", " ")
    return heatmap_figure(
        plain(scores),
        **{
            "title": titled(f"{what.capitalize()} score per head", model),
            "colorbar_title": f"{what} score ({score.unit})",
            "value_range": score.value_range,
            "top": rank_heads(scores, ANNOTATED),
            **options,
        },
    )
