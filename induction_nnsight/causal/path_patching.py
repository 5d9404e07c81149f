"""Path patching, exact and per head: remove one earlier head's direct contribution to the
residual stream only where one later head reads its keys, queries or values.

The source head ``s`` writes ``delta_s = (z_s - r_s) @ W_O[:, s]^T`` into the residual stream
(``z_s [batch, pos, d_head]`` its output, the slice of the output projection's input; ``r_s`` zero,
or its mean over a reference batch at each position). For path ``k`` (``q``, ``v``) of target ``t``
at layer ``l`` the variant recomputes ``x' = norm_l(resid_l - delta_s)`` with layer ``l``'s
pre-attention norm by hand and overwrites *only* ``t``'s slice of the key (query, value)
projection's output with ``x' @ W^T + b``: before rotary, so the model's own code applies rotary
and any ``k_norm`` after it. Every other reader of the residual stream sees it unchanged. Under
grouped-query attention the key/value head is shared by a group: the other heads of ``t``'s group
get their clean outputs back at the output projection, so the path ends at ``t`` alone. Path
``total`` ablates ``s`` at its output everywhere.

Batch of one trace: the clean rows, the reference rows (mean ablation), then each variant's copy
of the clean rows (:mod:`~induction_nnsight.causal.variants`). Clean rows give ``z_s`` and the
group heads' clean outputs. What leaves the trace per variant: the target's induction score (mean
attention on the diagonal at offset ``1 - seq_len``) and the repeated-half loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nnsight
import torch

from ..errors import InductionError
from ..models.attention import attention_call_name, attention_modules, attention_pattern
from ..models.layout import model_layout
from ..ndif.settings import Remote, on_ndif
from ..scores.reductions import diagonal_score_per_row
from .ablation import repeated_half_metric
from ..models.layout import is_conv1d
from .head_weights import (apply_norm, check_residual_heads, hand_norm_spec, output_columns,
                           projection_slice, rows_of)
from .variants import DEFAULT_MAX_TOKENS, Rows, run_variants

Head = tuple[int, int]
PATHS = ("k", "q", "v", "total")
METHODS = ("zero", "mean")


@dataclass(frozen=True)
class PathVariant:
    """One variant: ``source``'s contribution removed on ``path`` into ``target`` (all None: clean)."""

    source: Head | None
    target: Head | None
    path: str | None


@dataclass
class PathResult:
    """Scores and losses of every variant of one run.

    Attributes:
        variants: ``[n]`` the variants; ``variants[0]`` is the clean run.
        scores: ``[n]`` each variant's target's induction score (NaN for the clean variant).
        losses: ``[n]`` each variant's mean repeated-half loss.
        clean_scores: ``target -> clean induction score``.
    """

    variants: list[PathVariant]
    scores: torch.Tensor
    losses: torch.Tensor
    clean_scores: dict[Head, float]

    @property
    def clean_loss(self) -> float:
        return float(self.losses[0])


def path_variants(targets: Sequence[Head], paths: Sequence[str], sources=None) -> list[PathVariant]:
    """The clean variant, then for each target every head of an earlier layer on each path.

    Args:
        sources: ``target -> list of source heads``; None means every head of every earlier layer
            (which needs ``n_heads`` through :func:`all_earlier`).
    """
    out = [PathVariant(None, None, None)]
    for target in targets:
        for source in sources[target]:
            out.extend(PathVariant(source, target, path) for path in paths)
    return out


def all_earlier(target: Head, n_heads: int) -> list[Head]:
    """Every head of every layer before ``target``'s."""
    return [(layer, head) for layer in range(target[0]) for head in range(n_heads)]


class _Plan:
    """What the edit reads and writes at each layer (fixed outside the trace)."""

    def __init__(self, model, seq_len: int, remote: Remote):
        self.layout = model_layout(model)
        facts = self.layout.facts
        self.n_heads, self.d_head, self.group = facts.n_heads, facts.d_head, facts.n_heads // facts.n_kv_heads
        self.attentions = attention_modules(model)
        self.calls = [attention_call_name(a) for a in self.attentions]
        self.eager = facts.attn_implementation == "eager" and not on_ndif(remote)
        self.norms = [hand_norm_spec(model, p) for p in self.layout.pre_attention_norm]
        self.o_conv = is_conv1d(model, self.layout.o_proj[0])
        self.offset = 1 - seq_len


def _slices(model, plan: _Plan, rows: Rows, variants, layer: int, deltas, resid) -> None:
    """Overwrite each path variant's target slice of the q/k/v projection outputs at ``layer``."""
    layout, spec = plan.layout, plan.norms[layer]
    norm = model.get(spec.path) if spec.path else None
    norm_w = getattr(norm, "weight", None) if norm is not None else None
    norm_b = getattr(norm, "bias", None) if norm is not None else None
    by_module: dict[str, list] = {}
    for i, v in variants:
        path, start, stop = projection_slice(layout, layer, v.path, v.target[1])
        by_module.setdefault(path, []).append((i, v, start, stop))
    order = [p for p in (layout.q_proj[layer], layout.k_proj[layer], layout.v_proj[layer]) if p in by_module]
    for path in order:
        module = model.get(path)
        conv = is_conv1d(model, path)
        out = module.output  # [rows, pos, out]
        new = out.clone()
        for i, v, start, stop in by_module[path]:
            r0 = rows.n_source + i * rows.batch
            x = apply_norm(resid[r0 : r0 + rows.batch] - deltas[v.source], spec, norm_w, norm_b)
            weight, bias = rows_of(module.weight, module.bias if hasattr(module, "bias") else None, start, stop, conv)
            value = x @ weight.T.to(x.dtype)
            new[r0 : r0 + rows.batch, :, start:stop] = value if bias is None else value + bias
        module.output = new


def path_edit(model, variants: list[PathVariant], seq_len: int, method: str, n_clean: int, remote: Remote,
              saved: dict):
    """The :data:`~induction_nnsight.causal.variants.Edit` of :func:`path_patching` (scores go to ``saved``)."""
    plan = _Plan(model, seq_len, remote)
    layout = plan.layout
    targets = sorted({v.target for v in variants if v.target})

    def edit(rows: Rows) -> None:
        chosen = list(enumerate(variants[rows.start : rows.stop]))
        first = rows.start == 0
        layers = {v.source[0] for _, v in chosen if v.source} | {v.target[0] for _, v in chosen if v.target}
        if first:
            layers |= {t[0] for t in targets}
        deltas: dict[Head, torch.Tensor] = {}
        scores = [torch.full((), float("nan"))] * rows.n_variants
        for layer in sorted(layers):
            on_path = [(i, v) for i, v in chosen if v.target and v.target[0] == layer and v.path in "qkv"]
            if on_path:
                resid = model.get(layout.pre_attention_norm[layer]).input if plan.norms[layer].path else None
                if resid is None:
                    raise InductionError(f"layer {layer} has no pre-attention norm: pass set_layout(model, "
                                         "pre_attention_norm=...)")
                _slices(model, plan, rows, on_path, layer, deltas, resid)
            scored = [(i, v) for i, v in chosen if v.target and v.target[0] == layer]
            if scored or (first and any(t[0] == layer for t in targets)):
                pattern = attention_pattern(plan.attentions[layer], plan.eager, plan.calls[layer])
                per_row = diagonal_score_per_row(pattern, plan.offset)  # [rows, head]
                for i, v in scored:
                    r0 = rows.n_source + i * rows.batch
                    scores[i] = per_row[r0 : r0 + rows.batch, v.target[1]].mean()
                if first:
                    for t in targets:
                        if t[0] == layer:
                            saved[("clean", t)] = nnsight.save(per_row[:n_clean, t[1]].mean())
            _outputs(model, plan, rows, chosen, layer, deltas, method, n_clean)
        saved[rows.start] = nnsight.save(torch.stack(scores))

    return edit


def _outputs(model, plan: _Plan, rows: Rows, chosen, layer: int, deltas, method: str, n_clean: int) -> None:
    """At ``layer``'s output projection: the sources' deltas; total ablations; group heads restored."""
    need = {v.source for _, v in chosen if v.source and v.source[0] == layer and v.path in "qkv"}
    ablate = [(i, v.source[1]) for i, v in chosen if v.path == "total" and v.source[0] == layer]
    restore = [(i, v.target[1]) for i, v in chosen
               if v.target and v.target[0] == layer and v.path in ("k", "v") and plan.group > 1]
    if not (need or ablate or restore):
        return
    module = model.get(plan.layout.o_proj[layer])
    x = module.input  # [rows, pos, n_heads * d_head]
    split = x.reshape(x.shape[0], x.shape[1], plan.n_heads, plan.d_head)
    clean = split[:n_clean]
    if method == "mean":
        replacement = split[n_clean : rows.n_source].mean(dim=0)  # [pos, head, d_head]
    else:
        replacement = torch.zeros_like(split[0])
    for head in sorted(need):
        w_o = output_columns(module.weight, head[1], plan.d_head, plan.o_conv)  # [d_model, d_head]
        deltas[head] = (clean[:, :, head[1]] - replacement[:, head[1]]) @ w_o.T.to(x.dtype)
    if not (ablate or restore):
        return
    new = split.clone()
    for i, head in ablate:
        r0 = rows.n_source + i * rows.batch
        new[r0 : r0 + rows.batch, :, head] = replacement[:, head]
    for i, target in restore:
        r0 = rows.n_source + i * rows.batch
        group = target // plan.group
        others = [h for h in range(group * plan.group, (group + 1) * plan.group) if h != target]
        new[r0 : r0 + rows.batch, :, others] = clean[:, :, others]
    module.input = new.reshape(x.shape)


def path_patching(
    model,
    tokens: torch.Tensor,
    seq_len: int,
    variants: list[PathVariant],
    *,
    method: str = "zero",
    source: torch.Tensor | None = None,
    bos: bool = True,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    remote: Remote = False,
    progress: bool = True,
) -> PathResult:
    """Each variant's target induction score and repeated-half loss, many variants per trace.

    Args:
        model: An nnsight ``TransformersModel``.
        tokens: ``[batch, pos]`` repeated-token rows (``[bos] r_1..r_T r_1..r_T``).
        seq_len: ``T``, the length of the repeated block.
        variants: From :func:`path_variants`; ``variants[0]`` must be the clean one.
        method: ``"zero"`` or ``"mean"`` (the mean over ``source`` at each position).
        source: ``[n_ref, pos]`` reference rows (mean only).
        bos: Whether the rows start with BOS (for the repeated-half loss).
        max_tokens: Token budget of one trace.
        remote: Run the traces on NDIF.
        progress: Show a progress bar.

    Returns:
        A :class:`PathResult`.
    """
    if method not in METHODS:
        raise InductionError(f"unknown method {method!r}: pass one of {', '.join(METHODS)}")
    if method == "mean" and (source is None or source.shape[1] != tokens.shape[1]):
        raise InductionError("mean ablation needs reference rows as long as the tokens")
    if variants[0].path is not None:
        raise ValueError("variants[0] must be the clean variant")
    for v in variants[1:]:
        if v.path not in PATHS or not v.source[0] < v.target[0]:
            raise InductionError(f"bad variant {v}: the path must be one of {', '.join(PATHS)} and the source "
                                 "in an earlier layer than the target")
    check_residual_heads(model)
    rows = torch.cat([tokens] + ([source] if method == "mean" else []))
    saved: dict = {}
    edit = path_edit(model, variants, seq_len, method, tokens.shape[0], remote, saved)
    losses = run_variants(model, tokens, len(variants), edit, repeated_half_metric(seq_len, bos), source=rows,
                          max_tokens=max_tokens, remote=remote, progress=progress,
                          desc=f"path patching {len(variants) - 1} edges")
    starts = sorted(k for k in saved if isinstance(k, int))
    scores = torch.cat([saved[k].detach().cpu().reshape(-1) for k in starts])
    clean = {k[1]: float(v) for k, v in saved.items() if isinstance(k, tuple)}
    return PathResult(variants, scores, losses.reshape(-1), clean)
