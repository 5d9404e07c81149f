"""The heads pass: every registered head score, and the loss by position, from one forward pass.

Each layer's attention pattern is reduced inside the trace by every pattern score as soon as
it exists, by chunks of queries (:mod:`~induction_nnsight.scores.chunked`), so no more than
one ``[batch, head, query chunk, key]`` block within the element budget is alive at a time and
what is saved is ``[batch, n_layers, n_heads]`` per score. On short inputs, consecutive layers
whose patterns together fit an eighth of the budget are reduced at once, their heads stacked
(:func:`~induction_nnsight.models.attention.stack_layers`): one set of tensor operations
instead of one per layer. Scores are declared in :mod:`~induction_nnsight.scores.registry`;
this pass knows only what each one reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import nnsight
import plotly.graph_objects as go
import torch

from ..figures.heads import heatmap_figure, loss_by_position_figure
from ..figures.style import ANNOTATED
from ..figures.tables import HTML_ROWS, Displayable, Summary, plain, titled
from ..models.attention import (
    LayerAttention,
    attention_calls,
    attention_modules,
    can_stack,
    layer_attention,
    stack_layers,
)
from ..models.layout import model_facts, model_layout, norm_spec
from ..ndif.backend import remote_backend
from ..ndif.settings import Remote, as_settings, on_ndif
from ..probes.tokens import Probe
from .builtin import BUILTIN_SCORES
from .chunked import DEFAULT_PATTERN_BUDGET, GROUP_SHARE, layer_pattern_scores, query_chunks
from .copying import copying_score
from .losses import per_position_loss
from .ranking import rank_heads, ranked_rows
from .registry import HeadScore, ProbeView, get_score, score_names
from .weights import (
    cached_unembed_mean,
    cached_weight_scores,
    norm_scale,
    unembed_mean,
    weight_of,
    weight_plan,
    weight_scores,
)

HEAD_KINDS = tuple(score.name for score in BUILTIN_SCORES)
"""Names of the built-in scores; :func:`~induction_nnsight.scores.registry.score_names` lists every registered one."""


@dataclass(repr=False)
class HeadScores(Displayable):
    """Scores of one pass; shows itself as the top heads of its main kind (``induction`` when present)
    with every kind's score beside them, and draws a heatmap per kind (``figures()``; the main kind's
    is ``figure()``) and ``loss_by_position`` when computed.

    Attributes:
        per_row: ``kind -> [batch, n_layers, n_heads]`` for the scores read from a run
            (``[1, n_layers, n_heads]``, the mean, when averaged over rows inside the trace).
        weights: ``kind -> [n_layers, n_heads]`` for the scores read from the weights alone.
        loss_by_position: ``[pos - 1]`` mean next-token loss (None when not asked for).
        model: The model's name or path.
    """

    per_row: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    loss_by_position: torch.Tensor | None = None
    model: str | None = None

    def mean(self, kind: str) -> torch.Tensor:
        """``[n_layers, n_heads]`` score of ``kind``, averaged over rows (ignoring NaN rows)."""
        if kind in self.weights:
            return self.weights[kind]
        return self.per_row[kind].nanmean(0)

    @property
    def kinds(self) -> list[str]:
        return [*self.per_row, *self.weights]

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
        return kind_heatmap(name, self.mean(name), self.model, **options)


def kind_heatmap(kind: str, scores: torch.Tensor, model: str | None = None, **options) -> go.Figure:
    """The heatmap of one score kind, its top cells labelled (the one route of every kind's heatmap).

    Args:
        kind: A registered score's name (its unit and value range set the colour bar and scale).
        scores: ``[n_layers, n_heads]``.
        model: The model's name, for the title.
        options: Keyword arguments of :func:`~induction_nnsight.figures.heads.heatmap_figure` overriding
            the defaults (``title``, ``subtitle``, ...).
    """
    score, what = get_score(kind), kind.replace("_", " ")
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


def _by_reads(kinds, probe: Probe) -> dict[str, list[HeadScore]]:
    """The requested scores grouped by what they read; scores needing a period skip probes without one."""
    scores = [get_score(kind) for kind in kinds]  # raises on an unknown name
    groups: dict[str, list[HeadScore]] = {"pattern": [], "logits": [], "weights": []}
    for score in scores:
        if not (score.needs_period and not probe.period):
            groups[score.reads].append(score)
    return groups


def _joins(first: LayerAttention, attention: LayerAttention, held: int, budget: int) -> bool:
    """Whether a layer joins a group (whose first layer is ``first`` and ``held`` elements big) within the budget."""
    return can_stack(first, attention) and held + _numel(attention) <= budget


def _numel(attention: LayerAttention) -> int:
    """Elements of a layer's whole pattern ``[batch, head, query, key]``."""
    return math.prod(attention.shape)


def _reduce_layers(
    group: list[tuple],
    view: ProbeView,
    groups: dict,
    budget: int,
    n_heads: int,
    rows: dict,
    boosts: dict,
    logit_args: tuple | None,
    copy_queries: torch.Tensor,
) -> None:
    """Reduce consecutive layers together: pattern scores over their stacked heads (one set of tensor
    operations for the group), then the logit scores layer by layer from the same rows.

    Appends ``[batch, head]`` per layer to ``rows[name]`` and ``[batch, head, q]`` to ``boosts[name]``.
    """
    stacked = stack_layers([attention for attention, _ in group])
    if logit_args is not None and _numel(stacked) <= budget:  # one block, made once, read by both kinds of score
        stacked = LayerAttention(probs=stacked.pattern())
    for name, value in layer_pattern_scores(stacked, view, groups["pattern"], budget).items():
        rows[name].extend(value.unflatten(1, (len(group), n_heads)).unbind(1))  # [batch, head] per layer
    if logit_args is None:
        return
    for i, (attention, (head_input, w_out)) in enumerate(group):
        if stacked.probs is not None:
            attention = LayerAttention(probs=stacked.probs[:, i * n_heads : (i + 1) * n_heads])
        parts = {score.name: [] for score in groups["logits"]}  # per query chunk [batch, head, chunk]
        start = 0
        # logit reductions are per query; a [batch, head, chunk, d_model] block stays within half the budget
        for chunk in query_chunks(attention, budget // 2, copy_queries, width=w_out.shape[0]):
            chunk_rows, chunk_input = attention.rows(chunk), head_input[:, start : start + len(chunk)]
            start += len(chunk)
            for score in groups["logits"]:
                parts[score.name].append(score.reduce(chunk_rows, chunk_input, w_out, *logit_args))
        for name, chunks in parts.items():
            boosts[name].append(torch.cat(chunks, dim=-1))  # [batch, head, q]


def head_scores(
    model,
    probe: Probe,
    *,
    kinds: tuple[str, ...] | None = None,
    loss: bool = True,
    per_row: bool = True,
    remote: Remote = False,
    pattern_budget: int = DEFAULT_PATTERN_BUDGET,
) -> HeadScores:
    """Score every head for every score in ``kinds`` from one forward pass.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        probe: The probe tokens and their ground truth (see :mod:`~induction_nnsight.probes.tokens`).
        kinds: Names of registered scores (every registered one when None).
        loss: Also compute the loss by position.
        per_row: Keep each row's scores (for bootstrap intervals); when False they are
            averaged over rows inside the trace, so what is saved (or downloaded from NDIF)
            does not grow with the batch.
        remote: Run the trace on NDIF (``True``, a host URL or ``RemoteSettings``).
        pattern_budget: The most elements of one block of attention rows
            ``[batch, head, query chunk, key]``: patterns are reduced by chunks of queries
            (see :mod:`~induction_nnsight.scores.chunked`), so memory grows with the length,
            not its square.

    Returns:
        :class:`HeadScores` with ``[batch, n_layers, n_heads]`` (``[1, n_layers, n_heads]``
        without ``per_row``) per score read from the run,
        ``[n_layers, n_heads]`` per weight score, and the loss by position.

    Raises:
        InductionError: For an unknown score name, listing the registered ones.
    """
    groups = _by_reads(score_names() if kinds is None else kinds, probe)
    facts = model_facts(model)
    attentions = attention_modules(model) if groups["pattern"] or groups["logits"] else []
    calls = attention_calls(model) if attentions else []
    eager = facts.attn_implementation == "eager" and not on_ndif(remote)  # NDIF serves sdpa
    view = ProbeView(probe)
    tokens = probe.tokens
    layout = model_layout(model)
    final = norm_spec(model, layout.final_norm)  # module types are read here, outside the trace
    centered, offset = final.centered, final.offset
    plan = weight_plan(model)
    o_conv = plan.conv[0]
    weight_kinds = groups["weights"] if layout.value_layout is not None else []
    local_weights = local_mean = None  # weight-only values: here once per model and weights version, else in the trace
    if as_settings(remote) is None:  # (on NDIF, and in its dry run, the weights are not here)
        local_weights = cached_weight_scores(model, plan, weight_kinds) if weight_kinds else None
        local_mean = cached_unembed_mean(model, plan) if groups["logits"] else None
    repeats = probe.repeat_queries
    copy_queries = repeats.any(0).nonzero().flatten()  # [q] positions where some row counts a logit score

    saved_logits = saved_weights = saved_loss = None  # only values saved inside the trace come back out of it
    stop_early = not loss and as_settings(remote) is None  # settled here: the trace body never reads `remote`
    with torch.no_grad(), model.trace(tokens, backend=remote_backend(model, remote)) as tracer:
        rows = {score.name: [] for score in groups["pattern"]}  # name -> per layer [batch, head]
        boosts = {score.name: [] for score in groups["logits"]}  # name -> per layer [batch, head, query]
        logit_args = None  # what every logit score reads besides a layer's rows and head outputs
        if groups["logits"]:  # the final norm's scale multiplies gathered rows: no [vocab, d_model] copy
            unembed = weight_of(model, layout.unembed)  # [vocab, d_model]
            final_scale = norm_scale(model, layout.final_norm, offset)  # [d_model] or 1.0
            mean = local_mean if local_mean is not None else unembed_mean(model, plan)  # [d_model], scaled rows
            logit_args = (unembed, mean, tokens, centered, final_scale)
        group: list[tuple] = []  # consecutive layers reduced together: (LayerAttention, logit inputs or None)
        for layer, (attention, call) in enumerate(zip(attentions, calls)):
            pattern = layer_attention(attention, eager, call)  # rows of [batch, head, query, key] on demand
            inputs = None
            if groups["logits"]:  # only at the queries that are averaged: half the work on two copies
                inputs = (
                    model.get(layout.o_proj[layer]).input[:, copy_queries],  # [batch, q, head * d_head]
                    weight_of(model, layout.o_proj[layer], transpose=o_conv),
                )  # [d_model, head * d_head]
            if group and not _joins(
                group[0][0], pattern, sum(_numel(a) for a, _ in group), pattern_budget // GROUP_SHARE
            ):
                _reduce_layers(
                    group, view, groups, pattern_budget, facts.n_heads, rows, boosts, logit_args, copy_queries
                )
                group = []
            group.append((pattern, inputs))
        if group:
            _reduce_layers(group, view, groups, pattern_budget, facts.n_heads, rows, boosts, logit_args, copy_queries)
        stacked = {k: torch.stack(v, dim=1) for k, v in rows.items()}  # name -> [batch, layer, head]
        saved_rows = nnsight.save(stacked if per_row else {k: v.nanmean(0, keepdim=True) for k, v in stacked.items()})
        if groups["logits"]:
            residual = model.get(layout.final_norm or layout.unembed).input[:, copy_queries]  # [batch, q, d_model]
            logit_rows = {
                name: copying_score(torch.stack(b, 1), residual, repeats[:, copy_queries], centered)
                for name, b in boosts.items()
            }  # name -> [batch, layer, head]
            saved_logits = nnsight.save(
                logit_rows if per_row else {k: v.nanmean(0, keepdim=True) for k, v in logit_rows.items()}
            )
        if loss:
            saved_loss = nnsight.save(per_position_loss(model.output.logits, tokens))
        if weight_kinds and local_weights is None:
            saved_weights = nnsight.save(weight_scores(model, plan, weight_kinds))
        if stop_early:
            tracer.stop()  # nothing after the last read is needed: no unembedding ([batch, pos, vocab] logits)
    per_row = {k: v.detach().cpu() for k, v in {**saved_rows, **(saved_logits or {})}.items()}
    weights = {k: v.detach().cpu() for k, v in (local_weights or saved_weights or {}).items()}
    for score in groups["weights"]:  # NaN (null in files) where the value projection's layout is unknown
        weights.setdefault(score.name, torch.full((facts.n_layers, facts.n_heads), float("nan")))
    return HeadScores(
        per_row=per_row,
        weights=weights,
        model=facts.name,
        loss_by_position=saved_loss.detach().cpu() if saved_loss is not None else None,
    )
