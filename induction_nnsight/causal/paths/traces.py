"""The traces of path patching: one clean trace, then each intervention run from the first layer
where it differs from the clean run.

A *run* is one intervention: ``source``'s direct contribution removed from ``target``'s keys,
queries or values (paths ``k``, ``q``, ``v``), or ``source`` ablated everywhere (``total``; one
run serves every target, since the intervention does not depend on the target). A ``k``/``q``/``v``
run equals the clean run before the target's layer, a ``total`` run before the source's layer:
its *start* layer. The clean trace saves what the runs need (every head's output at the layers
the runs read, the residual stream entering each start layer, the clean scores and loss); then
(:mod:`~induction_nnsight.causal.paths.runs`) the runs of one start layer share traces (as many
as the token budget allows), in which the blocks before the start layer are skipped
(:meth:`Envoy.skip`) and return the clean residual.
The edits, the attention scores and the repeated-half loss are computed inside each trace, and
only the logits of the repeated half are computed (``logits_to_keep``), so what leaves a trace
is ``[runs, heads]`` scores per target layer and ``[runs]`` losses.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import nnsight
import torch

from ...models.attention import attention_calls, attention_modules, attention_pattern
from ...models.heads import split_heads
from ...models.layout import ModelLayout, model_layout
from ...ndif.backend import remote_backend
from ...ndif.execution import Execution
from ...ndif.settings import on_ndif
from ...scores.losses import token_losses
from ...scores.reductions import diagonal_score_per_row
from ..head_weights import hand_norm_spec

Head = tuple[int, int]


@dataclass(frozen=True)
class Run:
    """One intervention run: ``source`` removed on ``path`` into ``target`` (None for ``total``)."""

    source: Head
    path: str
    target: Head | None

    @property
    def start(self) -> int:
        """The first layer where the run differs from the clean run."""
        return self.source[0] if self.path == "total" else self.target[0]


@dataclass
class Clean:
    """What the clean trace saved.

    Attributes:
        z: ``layer -> [batch, pos, head, d_head]`` the clean rows' head outputs.
        replacement: ``layer -> [pos, head, d_head]`` what an ablated head outputs (zero, or
            the reference rows' mean).
        prefix: ``start layer -> [batch, pos, d_model]`` the residual stream entering that layer.
        scores: ``layer -> [head]`` clean induction scores at the target layers.
        loss: The clean rows' mean repeated-half loss.
        score_rows: ``layer -> [batch, head]`` the same scores row by row.
        loss_rows: ``[batch]`` the loss row by row.
    """

    z: dict[int, torch.Tensor]
    replacement: dict[int, torch.Tensor]
    prefix: dict[int, torch.Tensor]
    scores: dict[int, torch.Tensor]
    loss: float
    score_rows: dict[int, torch.Tensor] | None = None
    loss_rows: torch.Tensor | None = None
    attn_out: dict[int, torch.Tensor] = field(default_factory=dict)  # post-norm: layer -> clean attention output
    tuple_blocks: bool = False  # blocks return (hidden states, ...) rather than the hidden states
    grads: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> clean loss gradient (estimates)


@dataclass
class Plan:
    """What the traces read and write, fixed outside them (:func:`make_plan`).

    Plain data and module envoys only: the traces carry it to NDIF, so it holds no reference to
    a module-level cache (a class pickled by value drags its methods' globals along).
    """

    layout: ModelLayout
    n_heads: int
    d_head: int
    group: int
    attentions: list
    calls: list[str | None]
    eager: bool
    norms: list
    o_conv: bool
    offset: int
    keep: torch.Tensor  # [T] positions of the repeated half's logits
    kwargs: dict
    backend: Callable[[], object]
    freeze_norm: bool = False  # the target's norm keeps the clean scale (path_edits.frozen_norm)
    post_norms: list = field(default_factory=list)  # [n_layers] NormSpec of each post-attention norm
    sender_norm: str = "recompute"  # post-norm senders: recompute the norm, or freeze its clean scale

    def __getstate__(self) -> dict:
        """What a trace carries to NDIF: not the backend, which holds the connection settings."""
        return {k: v for k, v in self.__dict__.items() if k != "backend"}

    def loss(self, model, tokens: torch.Tensor) -> torch.Tensor:
        """``[rows]`` repeated-half loss of each row, inside a trace (one definition: ``token_losses``)."""
        logits = model.output.logits  # [rows, keep or pos, vocab]
        if not self.kwargs:
            logits = logits[:, self.keep]
        return token_losses(logits, tokens[:, self.keep]).mean(dim=-1)

    def scores(self, layer: int) -> torch.Tensor:
        """``[rows, head]`` induction scores at ``layer``, inside a trace."""
        pattern = attention_pattern(self.attentions[layer], self.eager, self.calls[layer])
        return diagonal_score_per_row(pattern, self.offset)


def make_plan(model, seq_len: int, bos: bool, execution: Execution) -> Plan:
    """The :class:`Plan` of ``model``'s path-patching traces on rows of repeated length ``seq_len``,
    run where ``execution.remote`` says."""
    remote = execution.remote
    layout = model_layout(model)
    facts = layout.facts
    attentions = attention_modules(model)
    # logits of the repeated half only: positions bos + T .. bos + 2T - 1 (the last predicts nothing)
    keep = torch.arange(int(bos) + seq_len, int(bos) + 2 * seq_len)
    forward = inspect.signature(model._module.forward).parameters
    return Plan(
        layout=layout,
        n_heads=facts.n_heads,
        d_head=facts.d_head,
        group=facts.n_heads // facts.n_kv_heads,
        attentions=attentions,
        calls=attention_calls(model),
        eager=facts.attn_implementation == "eager" and not on_ndif(remote),
        norms=[hand_norm_spec(model, p) for p in layout.pre_attention_norm],
        o_conv=layout.conv1d,
        offset=1 - seq_len,
        keep=keep,
        kwargs={"logits_to_keep": keep} if "logits_to_keep" in forward else {},
        backend=lambda: remote_backend(model, remote),
        post_norms=[hand_norm_spec(model, p) for p in layout.post_attention_norm or [None] * facts.n_layers],
    )


def clean_trace(model, plan: Plan, tokens: torch.Tensor, ablation, runs: list[Run], target_layers: set[int]) -> Clean:
    """One trace of the clean rows (and the reference rows: ``mean``'s set, or one ``resample`` draw of
    as many rows as ``tokens``), as ``ablation`` (an :class:`~.ablation_method.Ablation`) asks."""
    b, reference = tokens.shape[0], ablation.reference
    z_layers = {r.source[0] for r in runs} | {r.target[0] for r in runs if r.path != "total"}
    starts = {r.start for r in runs if r.start > 0}
    rows = tokens if reference is None else torch.cat([tokens, reference])
    last = max(z_layers | starts | target_layers, default=-1)
    found: dict = {}  # saved as one dict at the end: a remote run returns saved values only
    with torch.no_grad(), model.trace(rows, backend=plan.backend(), **plan.kwargs):
        for layer in range(last + 1):
            if layer in starts:
                block_in = model.get(plan.layout.blocks[layer - 1]).output
                if isinstance(block_in, tuple):  # (hidden states, ...): Falcon, BLOOM
                    found["tuple"], block_in = True, block_in[0]
                found[("prefix", layer)] = block_in[:b]
            if layer in target_layers:
                found[("scores", layer)] = plan.scores(layer)[:b]  # [batch, head]
            if layer in z_layers:
                found[("z", layer)] = model.get(plan.layout.o_proj[layer]).input
                if plan.post_norms and plan.post_norms[layer].path is not None:
                    found[("o", layer)] = model.get(plan.layout.o_proj[layer]).output[:b]
        found["loss"] = plan.loss(model, rows)[:b]
        saved = nnsight.save(found)
    z, replacement = {}, {}
    for layer in z_layers:
        split = split_heads(saved[("z", layer)].detach(), plan.n_heads, plan.d_head)
        z[layer] = split[:b]
        kind = "zero" if reference is None else ablation.method
        new = {"zero": torch.zeros_like(split[0]), "mean": split[b:].mean(dim=0), "resample": split[b:]}[kind]
        if ablation.keep_bos:  # position 0 keeps each row's own output: [batch, pos, head, d_head]
            new = torch.cat([split[:b, :1], new.expand_as(split[:b])[:, 1:]], dim=1)
        replacement[layer] = new

    def pick(kind: str) -> dict:
        return {k[1]: v.detach() for k, v in saved.items() if isinstance(k, tuple) and k[0] == kind}

    rows_scores, loss = pick("scores"), saved["loss"].detach().float().cpu()
    means = {layer: v.float().mean(dim=0) for layer, v in rows_scores.items()}
    return Clean(
        z,
        replacement,
        pick("prefix"),
        means,
        float(loss.mean()),
        rows_scores,
        loss,
        pick("o"),
        bool(saved.get("tuple", False)),
    )
