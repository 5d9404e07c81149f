"""Head detector: the heads of one kind above a threshold, with t intervals and a corrected "clearly above".

A head's interval is the t interval on its mean over the probe rows
(:func:`~induction_nnsight.stats.mean_interval`); it is *clearly above* the threshold when the one-sided
t test of "its mean exceeds the threshold" survives Benjamini-Hochberg over every head of the model
(:data:`~induction_nnsight.stats.CORRECTION`), so at most 5% of the heads called clearly above are
expected not to be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
import torch

from ..figures.heads import top_heads_figure
from ..figures.tables import HTML_ROWS, Displayable, Summary, titled
from ..models.layout import model_facts
from ..names import head_name
from ..ndif.execution import Execution
from ..probes.checks import check_rows_fit
from ..probes.tokens import Probe, repeated_probe
from ..stats import ALPHA, CORRECTION, INTERVAL_METHOD, LEVEL, bh_adjust, mean_interval, mean_test
from .declaration import HeadScore
from .heads import head_scores
from .ranking import rank_heads
from .registry import resolve_score
from .results import HeadScores, kind_heatmap

__all__ = ["HeadDetection", "confirm_heads", "default_probe", "detect_heads", "detection_settings", "detections"]


@dataclass(repr=False)
class HeadDetection(Displayable):
    """The result of :func:`detect_heads`; shows itself as its top heads with their intervals and draws
    ``figures()`` ``scores`` (the heatmap, ``figure()``) and ``top`` (the best heads' bars).

    Attributes:
        kind: The score kind.
        threshold: Heads scoring at least this are listed in ``heads``.
        scores: ``[n_layers, n_heads]`` mean scores.
        ci_low: ``[n_layers, n_heads]`` lower bound of the interval (None for weight-only kinds).
        ci_high: ``[n_layers, n_heads]`` upper bound.
        q_above: ``[n_layers, n_heads]`` Benjamini-Hochberg adjusted p-value of "the mean exceeds the
            threshold" over every head (None without per-row scores); a head is clearly above where it
            is at most :data:`~induction_nnsight.stats.ALPHA`.
        settings: What produced it (model, probe, batch shape, level).
        model: The model's name or path (else ``settings["model"]``, where a job put it).
        declared: The score's declaration (None: the registered score named ``kind``).
    """

    kind: str
    threshold: float
    scores: torch.Tensor
    ci_low: torch.Tensor | None = None
    ci_high: torch.Tensor | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    declared: HeadScore | None = None
    q_above: torch.Tensor | None = None

    FIGURES = ("scores", "top")

    def _tables(self) -> tuple[list, list | None, list | None]:
        """The scores and their interval as nested lists, read once (a 405B model has 16,128 heads)."""
        low, high = (None, None) if self.ci_low is None else (self.ci_low.tolist(), self.ci_high.tolist())
        above = None if self.q_above is None else (self.q_above <= ALPHA).tolist()
        return self.scores.tolist(), low, high, above

    def _head(self, layer: int, head: int, tables=None) -> dict[str, Any]:
        scores, low, high, above = tables or self._tables()
        entry = {"layer": layer, "head": head, "score": round(float(scores[layer][head]), 6)}
        if low is not None:
            entry["ci"] = [round(float(low[layer][head]), 6), round(float(high[layer][head]), 6)]
            # corrected over every head where the per-row scores gave p-values; else the interval's lower end
            clear = above[layer][head] if above is not None else low[layer][head] >= self.threshold
            entry["clearly_above"] = bool(clear)
        return entry

    def top(self, n: int) -> list[dict[str, Any]]:
        """The ``n`` best heads, above threshold or not, best first (:func:`rank_heads`; no NaN)."""
        tables = self._tables()
        return [self._head(layer, head, tables) for layer, head in rank_heads(self.scores, n)]

    @property
    def heads(self) -> list[dict[str, Any]]:
        """Heads with score >= threshold, best first: ``{"layer", "head", "score", "ci", "clearly_above"}``."""
        tables = self._tables()
        return [
            self._head(layer, head, tables)
            for layer, head in rank_heads(self.scores)
            if tables[0][layer][head] >= self.threshold
        ]

    def _summary(self) -> Summary:
        columns = ["head", "score"] + (["interval", "clearly above"] if self.ci_low is not None else [])
        rows = [
            [head_name(h["layer"], h["head"]), h["score"], *([h["ci"], h["clearly_above"]] if "ci" in h else [])]
            for h in self.top(HTML_ROWS)
        ]
        layers, heads = self.scores.shape
        return Summary(
            "HeadDetection",
            self.model or self.settings.get("model"),
            f"{self.kind}, {layers} layers x {heads} heads",
            columns,
            rows,
            [("threshold", float(self.threshold)), ("heads above", len(self.heads))],
        )

    def _figure(self, name: str, **options) -> go.Figure:
        model = self.model or self.settings.get("model")
        if name == "top":
            return top_heads_figure(
                {self.kind: self.top(HTML_ROWS)},
                **{
                    "title": titled(f"Top {self.kind.replace('_', ' ')} heads", model),
                    "units": {self.kind: self.score.unit},
                    **options,
                },
            )
        return kind_heatmap(self.score, self.scores, model, **options)

    @property
    def score(self) -> HeadScore:
        """The score's declaration."""
        return self.declared or resolve_score(self.kind)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: kind, threshold, settings, heads above threshold, and the score table."""
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "settings": self.settings,
            "heads": self.heads,
            "scores": [[round(float(v), 6) for v in row] for row in self.scores],
        }


def default_probe(model, batch: int = 10, seq_len: int = 50, seed: int = 0, bos: bool = True) -> Probe:
    """Repeated random tokens from ``[1000, 10000)`` (clamped to the vocabulary) after BOS."""
    facts = model_facts(model)
    check_rows_fit(model, facts.name, seq_len, bos=bos and facts.bos_token_id is not None)  # (no BOS: none added)
    high = min(10000, facts.vocab_size)
    low = min(1000, high // 10)
    return repeated_probe(
        batch,
        seq_len,
        seed=seed,
        low=low,
        high=high,
        vocab_size=facts.vocab_size,
        bos_token_id=facts.bos_token_id if bos else None,
    )


def detection_settings(scores: HeadScores, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with the ``interval`` and ``correction`` that :func:`detections` applies to ``scores``:
    the one place that writes them (a job's own settings and each detection's read them from here).

    Returns:
        A new dict with both keys where some kind has per-row scores over more than one row (t intervals,
        Benjamini-Hochberg "clearly above"); ``settings`` itself (not a copy) where none has.
    """
    if any(rows.shape[0] > 1 for rows in scores.per_row.values()):
        return {**settings, "interval": INTERVAL_METHOD, "correction": f"clearly above: {CORRECTION}"}
    return settings


def detections(
    scores: HeadScores, threshold: float | None, settings: dict[str, Any], level: float = LEVEL
) -> dict[str, HeadDetection]:
    """One :class:`HeadDetection` per kind in ``scores``, at ``threshold`` or each score's own default (None).

    Each kind with per-row scores gets t intervals and Benjamini-Hochberg over all its heads for
    "clearly above"; each detection's settings are :func:`detection_settings`' (``interval`` and
    ``correction`` saying so).

    Raises:
        InductionError: For a threshold outside a score's value range.
    """
    found = {}
    settings = detection_settings(scores, settings)
    for kind in scores.kinds:
        score = scores.score(kind)
        limit = score.threshold if threshold is None else threshold
        score.check_threshold(limit)
        low = high = q_above = None
        if kind in scores.per_row and scores.per_row[kind].shape[0] > 1:  # (one row: averaged in the trace)
            rows = scores.per_row[kind]  # [batch, n_layers, n_heads]
            low, high = mean_interval(rows, level)
            q_above = bh_adjust(mean_test(rows, limit, side="greater")).float()
        found[kind] = HeadDetection(
            kind, limit, scores.mean(kind), low, high, settings, scores.model, score, q_above=q_above
        )
    return found


def confirm_heads(
    fresh: HeadScores, kind: str, heads: list[tuple[int, int]], threshold: float, level: float = LEVEL
) -> list[dict[str, Any]]:
    """The chosen ``heads`` of ``kind`` scored again on rows that did not choose them.

    The intervals of the heads a pass ranks first are conditional on that ranking: the rows that made a
    head look best also set its interval. On fresh rows the interval is a plain 95% interval, and
    "clearly above" is corrected over the confirmed heads only (Benjamini-Hochberg over ``len(heads)``).

    Args:
        fresh: Scores of a pass on other rows (per-row, at least 2 rows).
        kind: The score kind.
        heads: ``(layer, head)`` pairs, chosen on other rows.
        threshold: The detection threshold.
        level: Coverage.

    Returns:
        One ``{"layer", "head", "score", "ci", "clearly_above"}`` per head, in the order given.
    """
    rows = fresh.per_row[kind]  # [batch, n_layers, n_heads]
    index = torch.tensor(heads, dtype=torch.long).reshape(-1, 2)
    chosen = rows[:, index[:, 0], index[:, 1]]  # [batch, len(heads)]
    low, high = mean_interval(chosen, level)
    q = bh_adjust(mean_test(chosen, threshold, side="greater"))
    means = chosen.double().nanmean(0)
    return [
        {
            "layer": layer,
            "head": head,
            "score": round(float(means[i]), 6),
            "ci": [round(float(low[i]), 6), round(float(high[i]), 6)],
            "clearly_above": bool(q[i] <= ALPHA),
        }
        for i, (layer, head) in enumerate(heads)
    ]


def detect_heads(
    model,
    kind: str | HeadScore = "induction",
    threshold: float | None = None,
    *,
    probe: Probe | None = None,
    level: float = LEVEL,
    execution: Execution | None = None,
) -> HeadDetection:
    """Find the heads of one kind, like TransformerLens' ``detect_head`` but in one pass over a batch.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        kind: A :class:`~induction_nnsight.scores.declaration.HeadScore` (no registration needed) or a
            registered score's name (:func:`~induction_nnsight.scores.registry.score_names`).
        threshold: Heads scoring at least this are returned; within the score's value range
            (the score's own default when None: 0.4 for the built-in scores).
        probe: Tokens and ground truth (default: :func:`default_probe`, 10 x 50 repeated tokens).
        level: Coverage of the intervals (t intervals over sequences).
        execution: How the trace runs (None: here, the defaults; ``Execution(remote=True)``: on NDIF).

    Returns:
        A :class:`HeadDetection` (``heads``, ``top(n)``, ``to_dict()``).

    Raises:
        InductionError: For an unknown kind or a threshold outside its value range.
    """
    score = resolve_score(kind)
    if threshold is not None:
        score.check_threshold(threshold)
    probe = probe if probe is not None else default_probe(model)
    scores = head_scores(model, probe, kinds=(score,), execution=execution)
    settings = {
        "probe": probe.name,
        "batch": int(probe.tokens.shape[0]),
        "pos": int(probe.tokens.shape[1]),
        "period": probe.period,
        "level": level,
    }
    return detections(scores, threshold, settings, level)[score.name]
