"""The edits path patching makes inside a run's trace: the blocks before the start layer skipped, and each
``k``/``q``/``v`` run's target slice of the projection outputs rewritten from the residual without its sender
(through the sender's post-attention norm in post-norm blocks; straight from the block's input where a block
has no pre-attention norm)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..models.layout import apply_norm
from .head_weights import output_columns, projection_slice, rows_of, sender_delta

if TYPE_CHECKING:
    from .path_traces import Clean, Plan, Run

__all__ = ["skip_prefix", "slices"]


def skip_prefix(model, plan: Plan, clean: Clean, layer: int, k: int) -> None:
    """Inside a trace of ``k`` runs' rows: skip the blocks before ``layer``, which return the clean residual."""
    if layer > 0:
        prefix = clean.prefix[layer].repeat(k, 1, 1)  # [k * batch, pos, d_model]
        for block in plan.layout.blocks[:layer]:
            model.get(block).skip((prefix, None) if clean.tuple_blocks else prefix)


def slices(model, plan: Plan, clean: Clean, kqv: list[tuple[int, Run]], layer: int, k: int) -> None:
    """Overwrite each k/q/v run's target slice of the projection outputs at ``layer``."""
    layout, spec = plan.layout, plan.norms[layer]
    norm = model.get(spec.path or layout.blocks[layer])  # no pre-attention norm (OLMo-2): the block's input
    norm_weights = (getattr(norm, "weight", None), getattr(norm, "bias", None)) if spec.path else (None, None)
    resid = norm.input  # [k * batch, pos, d_model]; every run's rows hold the clean residual here
    b = resid.shape[0] // k
    deltas = {}
    for source in dict.fromkeys(r.source for _, r in kqv):
        w_o = output_columns(model.get(layout.o_proj[source[0]]).weight, source[1], plan.d_head, plan.o_conv)
        removed = clean.z[source[0]][:, :, source[1]] - clean.replacement[source[0]][:, source[1]]
        removed = removed.to(resid.dtype) @ w_o.T.to(resid.dtype)  # [batch, pos, d_model]
        post = plan.post_norms[source[0]] if plan.post_norms else None
        if post is not None and post.path is not None:  # through the sender's post-attention norm
            module = model.get(post.path)
            weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
            attn_out = clean.attn_out[source[0]].to(resid.dtype)
            removed = sender_delta(removed, attn_out, post, weight, bias, plan.sender_norm)
        deltas[source] = removed
    order = list(deltas)
    x = apply_norm(
        resid[:b][None] - torch.stack([deltas[s] for s in order]),
        spec,
        *norm_weights,
    )  # [sources, batch, pos, d_model]
    groups: dict[tuple[str, int, int], list[tuple[int, int]]] = {}
    for i, r in kqv:
        path, start, stop = projection_slice(layout, layer, r.path, r.target[1])
        groups.setdefault((path, start, stop), []).append((i, order.index(r.source)))
    for path in (
        p for p in (layout.q_proj[layer], layout.k_proj[layer], layout.v_proj[layer]) if any(g[0] == p for g in groups)
    ):
        module, conv = model.get(path), layout.conv1d
        out = module.output  # [k * batch, pos, out]
        new = out.clone().reshape(k, b, *out.shape[1:])
        for (p, start, stop), members in groups.items():
            if p != path:
                continue
            weight, bias = rows_of(module.weight, getattr(module, "bias", None), start, stop, conv)
            value = x[[j for _, j in members]] @ weight.T.to(x.dtype)  # [m, batch, pos, d_head]
            new[[i for i, _ in members], :, :, start:stop] = value if bias is None else value + bias
        module.output = new.reshape(out.shape)
