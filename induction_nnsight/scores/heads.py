"""The heads pass: every registered head score, and the loss by position, from one forward pass.

Each layer's attention pattern is reduced inside the trace by every pattern score as soon as
it exists, by chunks of queries (:mod:`~induction_nnsight.scores.chunked`), so no more than
one ``[batch, head, query chunk, key]`` block within the element budget is alive at a time and
what is saved is ``[batch, n_layers, n_heads]`` per score. On short inputs, consecutive layers
whose patterns together fit an eighth of the budget are reduced at once, their heads stacked
(:func:`~induction_nnsight.models.attention.stack_layers`): one set of tensor operations
instead of one per layer. Scores are declared in :mod:`~induction_nnsight.scores.declaration`
and passed by object or by registered name; this pass knows only what each one reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import nnsight
import torch

from ..errors import InductionError
from ..models.attention import attention_calls, attention_modules, layer_attention
from ..models.layout import model_facts, model_layout, norm_spec
from ..ndif.backend import remote_backend
from ..ndif.execution import Execution, as_execution
from ..ndif.settings import as_settings, on_ndif
from ..probes.tokens import Probe
from .chunked import GROUP_SHARE, LayerInput, PassPlan, can_join, collect, reduce_group
from .copying import copying_score
from .declaration import LOGIT_INPUTS, HeadScore, LogitInputs
from .losses import per_position_loss
from .registry import resolve_score, score_names
from .results import HeadScores, kind_heatmap
from .views import ProbeView
from .weights import (
    cached_static_scores,
    cached_unembed_mean,
    norm_scale,
    static_scores,
    unembed_mean,
    weight_of,
    weight_plan,
    weights_key,
)

__all__ = ["HeadScores", "head_scores", "kind_heatmap"]


def _resolve(kinds: Sequence[str | HeadScore], probe: Probe) -> dict[str, list[HeadScore]]:
    """The requested scores (objects, or registered names) grouped by what they read; scores needing a
    period skip probes without one."""
    scores = [resolve_score(kind) for kind in kinds]  # raises on an unknown name
    names = [score.name for score in scores]
    if len(set(names)) < len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise InductionError(f"two scores named {', '.join(twice)} in kinds: pass each once, or rename one")
    groups: dict[str, list[HeadScore]] = {"pattern": [], "logits": [], "weights": []}
    for score in scores:
        if not (score.needs_period and not probe.period):
            groups[score.reads].append(score)
    return groups


def _logit_masks(scores: list[HeadScore], view: ProbeView) -> dict[str, torch.Tensor]:
    """``name -> [batch, query]`` bool: the queries each logit score averages over (every one when it says none)."""
    every = torch.ones(view.tokens.shape, dtype=torch.bool, device=view.tokens.device)
    return {score.name: every if score.queries is None else score.queries(view).bool() for score in scores}


def head_scores(
    model,
    probe: Probe,
    *,
    kinds: Sequence[str | HeadScore] | None = None,
    loss: bool = True,
    per_row: bool = True,
    execution: Execution | None = None,
) -> HeadScores:
    """Score every head for every score in ``kinds`` from one forward pass.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        probe: The probe tokens and their ground truth (see :mod:`~induction_nnsight.probes.tokens`).
        kinds: :class:`~induction_nnsight.scores.declaration.HeadScore` objects and/or names of
            registered scores (every registered one when None:
            :func:`~induction_nnsight.scores.registry.score_names`).
        loss: Also compute the loss by position.
        per_row: Keep each row's scores (for bootstrap intervals); when False they are
            averaged over rows inside the trace, so what is saved (or downloaded from NDIF)
            does not grow with the batch.
        execution: How the trace runs (None: the defaults): ``remote`` (NDIF) and
            ``pattern_budget``, the most elements of one block of attention rows
            ``[batch, head, query chunk, key]``: patterns are reduced by chunks of queries
            (see :mod:`~induction_nnsight.scores.chunked`), so memory grows with the length,
            not its square.

    Returns:
        :class:`HeadScores` with ``[batch, n_layers, n_heads]`` (``[1, n_layers, n_heads]``
        without ``per_row``) per score read from the run, ``[n_layers, n_heads]`` per
        weight-only score (``static``), and the loss by position.

    Raises:
        InductionError: For an unknown score name, listing the registered ones.
        ScoreError: When a score's reduction raises, naming the score, the layer, the query
            chunk and the shapes of its inputs.
    """
    execution = as_execution(execution)
    remote, budget = execution.remote, execution.pattern_budget
    groups = _resolve(score_names() if kinds is None else kinds, probe)
    facts = model_facts(model)
    modules = attention_modules(model) if groups["pattern"] or groups["logits"] else []
    calls = attention_calls(model) if modules else []
    eager = facts.attn_implementation == "eager" and not on_ndif(remote)  # NDIF serves sdpa
    view = ProbeView(probe)
    tokens = probe.tokens
    layout = model_layout(model)
    final = norm_spec(model, layout.final_norm)  # module types are read here, outside the trace
    centered, offset = final.centered, final.offset
    plan = weight_plan(model)
    o_conv = plan.conv[0]
    static_kinds = groups["weights"] if layout.value_layout is not None else []
    local_static = local_mean = None  # weight-only values: here once per model and weights version, else in the trace
    reads = {name for name in LOGIT_INPUTS if any(score.reads_input(name) for score in groups["logits"])}
    if as_settings(remote) is None:  # (on NDIF, and in its dry run, the weights are not here)
        key = weights_key(model, layout) if static_kinds or "unembed_mean" in reads else None  # read once
        local_static = cached_static_scores(model, plan, static_kinds, key) if static_kinds else None
        local_mean = cached_unembed_mean(model, plan, key) if "unembed_mean" in reads else None
    masks = _logit_masks(groups["logits"], view)  # name -> [batch, query]
    logit_queries = (  # [q] positions where some row counts a logit score (None without logit scores)
        torch.stack(list(masks.values())).any(0).any(0).nonzero().flatten() if masks else None
    )

    saved_logits = saved_static = saved_loss = None  # only values saved inside the trace come back out of it
    stop_early = not loss and as_settings(remote) is None  # settled here: the trace body never reads `remote`
    with torch.no_grad(), model.trace(tokens, backend=remote_backend(model, remote)) as tracer:
        shared = None  # what every logit score may read besides a layer's rows and head outputs
        if groups["logits"]:  # the final norm's scale multiplies gathered rows: no [vocab, d_model] copy
            shared = LogitInputs(
                tokens=tokens,
                center=centered,
                unembed=weight_of(model, layout.unembed) if "unembed" in reads else None,  # [vocab, d_model]
                final_scale=norm_scale(model, layout.final_norm, offset),  # [d_model] or 1.0
                unembed_mean=None
                if "unembed_mean" not in reads
                else local_mean
                if local_mean is not None
                else unembed_mean(model, plan),  # [d_model], scaled rows
            )
        run = PassPlan(
            view, tuple(groups["pattern"]), tuple(groups["logits"]), budget, facts.n_heads, logit_queries, shared
        )
        rows = {score.name: [] for score in groups["pattern"]}  # name -> per layer [batch, head]
        boosts = {score.name: [] for score in groups["logits"]}  # name -> per layer [batch, head, query]
        group: list[LayerInput] = []  # consecutive layers reduced together
        for index, (module, call) in enumerate(zip(modules, calls)):
            attention = layer_attention(module, eager, call)  # rows of [batch, head, query, key] on demand
            layer = LayerInput(index, attention)
            if groups["logits"]:  # only at the queries that are averaged: half the work on two copies
                layer = LayerInput(
                    index,
                    attention,
                    model.get(layout.o_proj[index]).input[:, logit_queries] if "head_input" in reads else None,
                    weight_of(model, layout.o_proj[index], transpose=o_conv) if "w_out" in reads else None,
                )  # [batch, q, head * d_head], [d_model, head * d_head]
            if group and not can_join(group, attention, budget // GROUP_SHARE):
                collect(reduce_group(group, run), rows, boosts)
                group = []
            group.append(layer)
        if group:
            collect(reduce_group(group, run), rows, boosts)
        stacked = {k: torch.stack(v, dim=1) for k, v in rows.items()}  # name -> [batch, layer, head]
        saved_rows = nnsight.save(stacked if per_row else {k: v.nanmean(0, keepdim=True) for k, v in stacked.items()})
        if groups["logits"]:
            residual = model.get(layout.final_norm or layout.unembed).input[:, logit_queries]  # [batch, q, d_model]
            logit_rows = {
                name: copying_score(torch.stack(b, 1), residual, masks[name][:, logit_queries], centered)
                for name, b in boosts.items()
            }  # name -> [batch, layer, head]
            saved_logits = nnsight.save(
                logit_rows if per_row else {k: v.nanmean(0, keepdim=True) for k, v in logit_rows.items()}
            )
        if loss:
            saved_loss = nnsight.save(per_position_loss(model.output.logits, tokens))
        if static_kinds and local_static is None:
            saved_static = nnsight.save(static_scores(model, plan, static_kinds))
        if stop_early:
            tracer.stop()  # nothing after the last read is needed: no unembedding ([batch, pos, vocab] logits)
    per_row = {k: v.detach().cpu() for k, v in {**saved_rows, **(saved_logits or {})}.items()}
    static = {k: v.detach().cpu() for k, v in (local_static or saved_static or {}).items()}
    for score in groups["weights"]:  # NaN (null in files) where the value projection's layout is unknown
        static.setdefault(score.name, torch.full((facts.n_layers, facts.n_heads), float("nan")))
    declared = {score.name: score for scores in groups.values() for score in scores}
    return HeadScores(
        per_row, static, saved_loss.detach().cpu() if saved_loss is not None else None, facts.name, declared
    )
