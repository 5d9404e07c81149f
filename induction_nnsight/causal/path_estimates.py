"""Estimated loss effects of ``k``/``q``/``v`` paths: exact at the target, linear after it.

A ``k``, ``q`` or ``v`` run changes one head's output, the target's ``z_t [batch, pos, d_head]``,
and nothing else up to the target's layer. Its induction score needs that layer alone, so a
*probe* trace runs each variant from the target's layer to its attention and stops there: the
score is exact, and so is the target's new output ``z_t'``. The loss effect needs every later
layer; the estimate ``g_t . (z_t' - z_t)`` (attribution patching from the target's output on,
``g_t`` the gradient of the clean repeated-half loss with respect to ``z_t``, from one backward
pass) is first order in the change of one head's output. :func:`path_patching` computes the loss
effect exactly for the edges with the largest estimated loss or score effects, and keeps the
estimate for the rest.
"""

from __future__ import annotations

import nnsight
import torch

from .path_traces import Clean, Plan, Run, skip_prefix, slices


def loss_gradients(model, plan: Plan, tokens: torch.Tensor, layers: set[int]) -> dict[int, torch.Tensor]:
    """``layer -> [batch, pos, head, d_head]``: gradient of the clean mean repeated-half loss with
    respect to each head's output (the output projection's input) at ``layers``."""
    found = {}  # saved as one dict: a remote run returns saved values only
    with torch.enable_grad(), model.trace(tokens, backend=plan.backend(), **plan.kwargs):
        inputs = {}
        for layer in sorted(layers):
            x = model.get(plan.layout.o_proj[layer]).input  # [batch, pos, n_heads * d_head]
            if not x.requires_grad:  # frozen weights (as on NDIF's workers) leave the graph empty
                x.requires_grad_(True)
            inputs[layer] = x
        loss = plan.loss(model, tokens).mean()
        with loss.backward():
            for layer in sorted(layers, reverse=True):
                found[layer] = inputs[layer].grad.detach()
            saved = nnsight.save(found)
    return {layer: g.reshape(*g.shape[:2], plan.n_heads, plan.d_head) for layer, g in saved.items()}


def probe(
    model, plan: Plan, tokens: torch.Tensor, clean: Clean, grads: dict[int, torch.Tensor], runs: list[Run], layer: int
) -> torch.Tensor:
    """``k``/``q``/``v`` runs into targets at ``layer``, in one trace stopped after that layer's heads (no
    backend: it runs inside a session).

    Returns:
        ``[runs, batch, 2]`` float32: each run's target induction score (exact), then its estimated loss
        effect, row by row (the rows' effects sum to the effect on the mean loss).
    """
    k, b = len(runs), tokens.shape[0]
    heads = torch.tensor([r.target[1] for r in runs])
    clean_z = clean.z[layer][:, :, heads].permute(2, 0, 1, 3)  # [runs, batch, pos, d_head]
    grad = grads[layer][:, :, heads].permute(2, 0, 1, 3)
    with torch.no_grad(), model.trace(tokens.repeat(k, 1), **plan.kwargs) as tracer:
        skip_prefix(model, plan, clean, layer, k)
        slices(model, plan, clean, list(enumerate(runs)), layer, k)
        per_head = plan.scores(layer).reshape(k, b, -1)  # [runs, batch, head]
        scores = per_head[torch.arange(k), :, heads]  # [runs, batch]
        z = model.get(plan.layout.o_proj[layer]).input  # [runs * batch, pos, n_heads * d_head]
        z = z.reshape(k, b, z.shape[1], plan.n_heads, plan.d_head)[torch.arange(k), :, :, heads]
        estimate = ((z - clean_z.to(z.dtype)) * grad.to(z.dtype)).sum(dim=(2, 3))  # [runs, batch]
        saved = nnsight.save(torch.stack([scores, estimate], dim=-1).float())
        tracer.stop()
    return saved
