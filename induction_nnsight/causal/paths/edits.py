"""The edits of a path-patching run, inside its trace: a source's contribution removed from one
target's keys, queries or values (:func:`slices`), and the edits at a layer's output projection
(:func:`outputs`: ``total`` ablations, the rest of a grouped key/value head restored).

With ``Plan.freeze_norm`` the target's pre-attention norm keeps the clean scale:
``norm(x - delta)`` becomes ``w * centre(x - delta) / rms(centre(x))`` (+ bias), so removing a
large head changes only the content the target reads, not ``1 / rms`` of its whole input
(:func:`frozen_norm`).

Without a pre-attention norm (OLMo-2) the target reads the block's input; in post-norm blocks a
sender's contribution passes through its own post-attention norm (:func:`~.head_weights.sender_delta`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ...models.heads import split_heads
from ...models.layout import apply_norm, norm_affine
from ..head_weights import output_columns, projection_slice, rows_of, sender_delta

if TYPE_CHECKING:
    from .traces import Clean, Plan, Run

__all__ = ["frozen_norm", "outputs", "skip_prefix", "slices"]


def frozen_norm(patched: torch.Tensor, clean: torch.Tensor, spec, weight, bias) -> torch.Tensor:
    """A norm of ``patched [..., d_model]`` that divides by the clean input's scale.

    Args:
        patched: ``[..., d_model]`` the patched residual.
        clean: ``[..., d_model]`` the clean residual, broadcastable to ``patched``.
        spec: The norm's :class:`~induction_nnsight.models.layout.NormSpec` (LayerNorm centres;
            Gemma's weight is ``1 + w``).
        weight: The norm's weight (None: none).
        bias: The norm's bias (None: none).

    Returns:
        ``[..., d_model]``, ``patched``'s dtype; equal to ``apply_norm(clean, ...)`` when ``patched`` is ``clean``.
    """
    if spec.path is None:
        return patched
    h, c = patched.float(), clean.float()
    if spec.centered:
        h, c = h - h.mean(-1, keepdim=True), c - c.mean(-1, keepdim=True)
    h = h * torch.rsqrt(c.pow(2).mean(-1, keepdim=True) + spec.eps)
    return norm_affine(h, spec, weight, bias).to(patched.dtype)


def _removed(clean: Clean, source) -> torch.Tensor:
    """``[batch, pos, d_head]`` what removing ``source`` takes away from its output: ``z - replacement``."""
    layer, head = source
    return clean.z[layer][:, :, head] - clean.replacement[layer][..., head, :]


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
    weight, bias = (getattr(norm, "weight", None), getattr(norm, "bias", None)) if spec.path else (None, None)
    resid = norm.input  # [k * batch, pos, d_model]; every run's rows hold the clean residual here
    b = resid.shape[0] // k
    deltas = {}
    for source in dict.fromkeys(r.source for _, r in kqv):
        w_o = output_columns(model.get(layout.o_proj[source[0]]).weight, source[1], plan.d_head, plan.o_conv)
        removed = _removed(clean, source).to(resid.dtype) @ w_o.T.to(resid.dtype)  # [batch, pos, d_model]
        post = plan.post_norms[source[0]] if plan.post_norms else None
        if post is not None and post.path is not None:  # through the sender's post-attention norm
            module = model.get(post.path)
            attn_out = clean.attn_out[source[0]].to(resid.dtype)
            removed = sender_delta(
                removed,
                attn_out,
                post,
                getattr(module, "weight", None),
                getattr(module, "bias", None),
                plan.sender_norm,
            )
        deltas[source] = removed
    order = list(deltas)
    patched = resid[:b][None] - torch.stack([deltas[s] for s in order])  # [sources, batch, pos, d_model]
    if getattr(plan, "freeze_norm", False):
        x = frozen_norm(patched, resid[:b][None], spec, weight, bias)
    else:
        x = apply_norm(patched, spec, weight, bias)
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


def outputs(model, plan: Plan, clean: Clean, runs: list[Run], layer: int, k: int) -> None:
    """At ``layer``'s output projection: total ablations, and the other heads of a k/v target's group restored."""
    ablate = [(i, r.source[1]) for i, r in enumerate(runs) if r.path == "total"]
    restore = [(i, r.target[1]) for i, r in enumerate(runs) if r.path in ("k", "v") and plan.group > 1]
    if not (ablate or restore):
        return
    module = model.get(plan.layout.o_proj[layer])
    x = module.input  # [k * batch, pos, n_heads * d_head]
    new = split_heads(x.clone(), plan.n_heads, plan.d_head).unflatten(0, (k, -1))  # [k, batch, pos, head, d]
    for i, head in ablate:
        new[i, :, :, head] = clean.replacement[layer][..., head, :].to(x.dtype)
    for i, target in restore:
        g = target // plan.group
        others = [h for h in range(g * plan.group, (g + 1) * plan.group) if h != target]
        new[i, :, :, others] = clean.z[layer][:, :, others].to(x.dtype)
    module.input = new.reshape(x.shape)
