"""Head detector: the heads of one kind above a threshold, with bootstrap confidence intervals."""

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
from .declaration import HeadScore
from .heads import head_scores
from .ranking import rank_heads
from .registry import resolve_score
from .results import HeadScores, kind_heatmap

__all__ = ["HeadDetection", "bootstrap_interval", "default_probe", "detect_heads", "detections"]


def bootstrap_interval(
    per_row: torch.Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Percentile bootstrap over rows of the mean score.

    Args:
        per_row: ``[batch, n_layers, n_heads]`` per-sequence scores (NaN rows are skipped).
        n_boot: Resamples.
        level: Coverage of the interval.
        seed: Seed of the resampling.

    Returns:
        ``(low, high)``, each ``[n_layers, n_heads]``.
    """
    generator = torch.Generator().manual_seed(seed)
    n = per_row.shape[0]
    picks = torch.randint(0, n, (n_boot, n), generator=generator)
    means = per_row[picks].nanmean(1)  # [n_boot, n_layers, n_heads]
    tail = (1 - level) / 2
    return means.nanquantile(tail, dim=0), means.nanquantile(1 - tail, dim=0)


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

    FIGURES = ("scores", "top")

    def _tables(self) -> tuple[list, list | None, list | None]:
        """The scores and their interval as nested lists, read once (a 405B model has 16,128 heads)."""
        low, high = (None, None) if self.ci_low is None else (self.ci_low.tolist(), self.ci_high.tolist())
        return self.scores.tolist(), low, high

    def _head(self, layer: int, head: int, tables=None) -> dict[str, Any]:
        scores, low, high = tables or self._tables()
        entry = {"layer": layer, "head": head, "score": round(float(scores[layer][head]), 6)}
        if low is not None:
            entry["ci"] = [round(float(low[layer][head]), 6), round(float(high[layer][head]), 6)]
            entry["clearly_above"] = bool(low[layer][head] >= self.threshold)
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


def detections(
    scores: HeadScores, threshold: float | None, settings: dict[str, Any], n_boot: int = 1000, level: float = 0.95
) -> dict[str, HeadDetection]:
    """One :class:`HeadDetection` per kind in ``scores``, at ``threshold`` or each score's own default (None).

    Raises:
        InductionError: For a threshold outside a score's value range.
    """
    found = {}
    for kind in scores.kinds:
        score = scores.score(kind)
        limit = score.threshold if threshold is None else threshold
        score.check_threshold(limit)
        low = high = None
        if kind in scores.per_row:
            low, high = bootstrap_interval(scores.per_row[kind], n_boot=n_boot, level=level)
        found[kind] = HeadDetection(kind, limit, scores.mean(kind), low, high, settings, scores.model, score)
    return found


def detect_heads(
    model,
    kind: str | HeadScore = "induction",
    threshold: float | None = None,
    *,
    probe: Probe | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
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
        n_boot: Bootstrap resamples for the confidence intervals (over sequences).
        level: Coverage of the intervals.
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
        "n_boot": n_boot,
    }
    return detections(scores, threshold, settings, n_boot, level)[score.name]
