"""What :func:`~induction_nnsight.dynamics.scoring.score_checkpoints` returns: the scored checkpoints.

A plain list of plain per-checkpoint dicts (what is cached and written), which also knows each
checkpoint's best induction head, the phase change, and how to show and draw itself.
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch

from ..figures.dynamics import k_edge_figure, loss_icl_figure, score_lines_figure, step_head_heatmap
from ..figures.style import ANNOTATED
from ..figures.tables import HTML_ROWS, Displayable, Summary, plain
from ..names import head_name
from ..scores.ranking import rank_heads, ranked_rows
from ..scores.registry import get_score
from .phase import best_heads, bootstrap_best, interval_sd, phase_test


def _tensor(table: list[list[float | None]]) -> torch.Tensor:
    """``[n_layers][n_heads]`` plain numbers, None for undefined -> ``[n_layers, n_heads]`` with NaN."""
    return torch.tensor([[float("nan") if v is None else float(v) for v in row] for row in table])


class CheckpointScores(Displayable, list):
    """The scored checkpoints in step order: a list of ``{"step", "path", "revision", "cached",
    "seq_len", "loss_first_half", "loss_repeated_half", "icl_score", "loss_by_position", "scores"}``
    (``scores``: ``kind -> [n_layers][n_heads]``; ``strongest_k_edge`` too when computed).

    Shows each checkpoint's best induction head and losses (``repr``: the top heads at the last
    step) and draws ``figures()`` ``induction`` (every head against step, the main one), ``loss``
    (loss halves and ICL score, the phase change shaded), ``k_edge`` (when computed) and ``heatmap``.
    """

    FIGURES = ("induction", "loss", "k_edge", "heatmap")

    @property
    def steps(self) -> list[int]:
        return [entry["step"] for entry in self]

    def best(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``([step] best induction score, [step] its flat head index)`` by the one ranking rule."""
        return best_heads(torch.stack([_tensor(entry["scores"]["induction"]) for entry in self]))

    def top_heads(self, n: int) -> list[tuple[int, int]]:
        """The ``n`` best heads by induction score at the last checkpoint.

        Ranked by :func:`~induction_nnsight.scores.ranking.rank_heads`.
        """
        return rank_heads(_tensor(self[-1]["scores"]["induction"]), n) if self else []

    def intervals(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """``([step] ci_low, [step] ci_high, [step - 1] row noise of each rise)`` of the best induction score
        (:func:`~induction_nnsight.dynamics.phase.bootstrap_best`); None without per-row scores."""
        if not self or any(entry.get("induction_rows") is None for entry in self):
            return None
        key = tuple(self.steps)
        if getattr(self, "_intervals", (None,))[0] != key:
            rows = torch.stack([torch.stack([_tensor(row) for row in entry["induction_rows"]]) for entry in self])
            self._intervals = (key, bootstrap_best(rows))
        return self._intervals[1]

    def phase_test(self) -> dict:
        """The phase-change test (:func:`~induction_nnsight.dynamics.phase.phase_test`) with the row noise
        of each best score (its interval's half-width over 1.96) when the per-row scores are there."""
        intervals = self.intervals()
        score_sd = interval_sd(intervals[0].tolist(), intervals[1].tolist()) if intervals is not None else None
        return phase_test(self.steps, self.best()[0].tolist(), score_sd)

    def phase(self) -> dict | None:
        """The phase change of the best induction score, or None when the test finds none."""
        return self.phase_test()["change"] if self else None

    def _figure_names(self) -> list[str]:
        k_edge = any("strongest_k_edge" in entry for entry in self)
        return [name for name in self.FIGURES if name != "k_edge" or k_edge] if self else []

    def _summary(self) -> Summary:
        if not self:
            return Summary("CheckpointScores", None, "no checkpoints", [], [])
        best, index = self.best()
        n_heads = len(self[0]["scores"]["induction"][0])
        rows = [
            [
                entry["step"],
                head_name(int(i) // n_heads, int(i) % n_heads),
                float(b),
                entry["loss_first_half"],
                entry["loss_repeated_half"],
                entry["icl_score"],
            ]
            for entry, b, i in zip(self, best, index)
        ]
        last = self[-1]
        test = self.phase_test()
        phase = test["change"]
        return Summary(
            "CheckpointScores",
            None,
            f"{len(self)} checkpoints, steps {self.steps[0]}..{last['step']}",
            ["step", "best induction head", "score", "first-half loss", "repeated-half loss", "repeated - first"],
            rows,
            [("phase change at step", phase["step"])] if phase else [("phase change", test["note"].split(":")[0])],
            rows_title=f"top at step {last['step']}",
            brief=ranked_rows(_tensor(last["scores"]["induction"]), HTML_ROWS),
            max_rows=len(self),
        )

    def _figure(self, name: str, **options) -> go.Figure:
        steps, induction = self.steps, plain([entry["scores"]["induction"] for entry in self])
        score = get_score("induction")
        top = self.top_heads(ANNOTATED)
        if name == "induction":
            return score_lines_figure(steps, induction, **{"highlight": top, "unit": score.unit, **options})
        if name == "heatmap":
            return step_head_heatmap(
                steps, induction, **{"unit": score.unit, "value_range": score.value_range, "top": top, **options}
            )
        if name == "k_edge":
            return k_edge_figure(steps, [entry.get("strongest_k_edge") for entry in self], self.phase(), **options)
        return loss_icl_figure(
            steps,
            *(plain([entry[key] for entry in self]) for key in ("loss_first_half", "loss_repeated_half", "icl_score")),
            self.phase(),
            **options,
        )
