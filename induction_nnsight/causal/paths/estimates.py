"""Estimated loss effects of path-patching runs: exact up to the changed head's output, linear after it.

A ``k``, ``q`` or ``v`` run changes one head's output, the target's ``z_t [batch, pos, d_head]``,
and nothing else up to the target's layer. Its induction score needs that layer alone, so a
*probe* trace runs each variant from the target's layer to its attention and stops there: the
score is exact, and so is the target's new output ``z_t'``. The loss effect needs every later
layer; the estimate ``g_t . (z_t' - z_t)`` (attribution patching from the target's output on,
``g_t`` the gradient of the clean repeated-half loss with respect to ``z_t``, from one backward
pass) is first order in the change of one head's output. A ``total`` run removes its source
everywhere: its scores come from a trace stopped at the last target layer, its loss effect is
estimated as ``g_s . (r_s - z_s)`` at the source's output (:func:`removal_estimate`).
:func:`estimate_all` fills in every run this way and picks the edges with the largest estimated loss
or score effects, whose loss effects
:func:`~induction_nnsight.causal.paths.patching.path_patching` then computes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import nnsight
import torch

from ...models.heads import split_heads
from ...ndif.execution import Execution
from ...ndif.sessions import run_chunks
from .edits import skip_prefix, slices
from .runs import run_codes, run_shape, run_traces, start_chunks
from .traces import Clean, Plan, Run

Head = tuple[int, int]
__all__ = ["Known", "estimate", "estimate_all", "loss_gradients", "probe", "removal_estimate", "score_estimates"]


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
    return {layer: split_heads(g, plan.n_heads, plan.d_head) for layer, g in saved.items()}


def score_estimates(
    model, plan: Plan, tokens: torch.Tensor, clean: Clean, targets: list[Head]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attribution patching on each target's induction score, for every source ``s`` in a layer before
    target ``t``: ``G_t(s) . (r_s - z_s)``, ``G_t`` the gradient of ``t``'s clean mean score with respect to
    ``s``'s output through every path; and the part of it through the direct path alone (the gradient at
    ``t``'s layer input, read back through ``s``'s output projection). One trace of one copy of the rows
    per target, stopped after the last target's layer, and one backward pass; only the estimates leave it.

    Returns:
        ``(through_all, direct, sizes)``: ``through_all`` and ``direct`` each ``[targets, n_layers, n_heads]``
        (0 at and after a target's layer; ``direct`` None where a post-attention norm stands between a
        sender and the residual stream); ``sizes`` ``[n_layers, n_heads]`` each source's removal relative
        to the residual stream it is written into, ``|(r_s - z_s) W_O,s| / |resid|`` averaged over the
        rows and every position but the first (0 from the last target's layer on): the larger, the less a
        first-order estimate is to be trusted.
    """
    k, b = len(targets), tokens.shape[0]
    last = max(t[0] for t in targets)
    direct_too = not any(n is not None and n.path is not None for n in plan.post_norms)
    with torch.enable_grad(), model.trace(tokens.repeat(k, 1), backend=plan.backend(), **plan.kwargs) as tracer:
        inputs, resid, parts, sizes = {}, {}, [], []
        for layer in range(last + 1):
            block_in = model.get(plan.layout.blocks[layer]).input  # [k * b, pos, d_model]
            if direct_too and any(t[0] == layer for t in targets):
                resid[layer] = block_in
            for j, (lt, head) in enumerate(targets):
                if lt == layer:  # the attention call comes before the output projection's input
                    parts.append(plan.scores(layer)[j * b : (j + 1) * b, head].mean())
            if layer < last:
                x = model.get(plan.layout.o_proj[layer]).input  # [k * b, pos, n_heads * d_head]
                if not x.requires_grad:  # frozen weights (as on NDIF's workers) leave the graph empty
                    x.requires_grad_(True)
                inputs[layer] = x
                weight = model.get(plan.layout.o_proj[layer]).weight
                sizes.append(_relative_removal(plan, weight, x, block_in, clean.replacement[layer], b))
        found, direct = [], []
        with torch.stack(parts).sum().backward():
            at = {last: resid[last].grad} if last in resid else {}  # read in the order the backward pass runs
            for layer in reversed(range(last)):
                x = inputs[layer]
                z = split_heads(x.detach(), plan.n_heads, plan.d_head).unflatten(0, (k, b))  # [k, b, pos, head, d]
                change = clean.replacement[layer].to(x.dtype) - z
                grad = split_heads(x.grad, plan.n_heads, plan.d_head).unflatten(0, (k, b))
                found.append((grad * change).sum(dim=(1, 2, 4)))  # [k, head]
                if direct_too:
                    weight = model.get(plan.layout.o_proj[layer]).weight
                    full = (weight.T if plan.o_conv else weight).to(x.dtype)  # [d_model, n_heads * d_head]
                    rows = [
                        at[t[0]][j * b : (j + 1) * b] @ full if t[0] > layer else torch.zeros_like(x[:b])
                        for j, t in enumerate(targets)
                    ]
                    # through the direct path into each target's layer
                    grad = split_heads(torch.stack(rows), plan.n_heads, plan.d_head)
                    direct.append((grad * change).sum(dim=(1, 2, 4)))
                if layer in resid:
                    at[layer] = resid[layer].grad
            saved = nnsight.save(torch.stack(found[::-1] + direct[::-1], dim=1).float())  # [k, layer(s), head]
        size = nnsight.save(torch.stack(sizes).float())  # [last, head]
        tracer.stop()

    def grid(block: torch.Tensor) -> torch.Tensor:  # [k, last, head] -> [k, n_layers, head], 0 from each target on
        out = torch.zeros(k, plan.layout.facts.n_layers, plan.n_heads)
        out[:, :last] = block.detach().cpu()
        for j, (lt, _) in enumerate(targets):
            out[j, lt:] = 0.0
        return out

    sized = torch.zeros(plan.layout.facts.n_layers, plan.n_heads)
    sized[:last] = size.detach().cpu()
    return grid(saved[:, :last]), grid(saved[:, last:]) if direct_too else None, sized


def _relative_removal(plan: Plan, weight, x, block_in, replacement: torch.Tensor, b: int) -> torch.Tensor:
    """``[head]``: ``|(r_s - z_s) W_O,s| / |resid|`` of each head of a layer, averaged over the first copy's
    ``b`` rows and every position but the first, inside a trace (``x`` the output projection's input,
    ``block_in`` the residual stream entering the layer)."""
    z = split_heads(x[:b].detach(), plan.n_heads, plan.d_head)
    change = replacement.to(z.dtype) - z  # [b, pos, head, d_head]
    full = (weight.T if plan.o_conv else weight).detach().to(z.dtype)  # [d_model, n_heads * d_head]
    per_head = split_heads(full, plan.n_heads, plan.d_head)  # [d_model, head, d_head]
    written = torch.einsum("bphd,mhd->bphm", change, per_head).norm(dim=-1)  # [b, pos, head]
    stream = block_in[:b].detach().norm(dim=-1, keepdim=True)  # [b, pos, 1]
    return (written / stream)[:, 1:].mean(dim=(0, 1))


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
        z = split_heads(z, plan.n_heads, plan.d_head).unflatten(0, (k, b))[torch.arange(k), :, :, heads]
        estimate = ((z - clean_z.to(z.dtype)) * grad.to(z.dtype)).sum(dim=(2, 3))  # [runs, batch]
        saved = nnsight.save(torch.stack([scores, estimate], dim=-1).float())
        tracer.stop()
    return saved


@dataclass
class Known:
    """What the estimating step knows of each run before the exact runs.

    Attributes:
        rows: ``[runs, batch]`` each k/q/v run's target score row by row (exact, from its probe).
        losses: ``[runs]`` each run's estimated mean loss (clean loss plus the first-order estimate).
        totals: ``run index -> index into total_rows`` for the ``total`` runs.
        total_rows: ``[totals, n_layers, batch, head]`` the ``total`` runs' scores (exact, from traces
            stopped at the last target layer).
    """

    rows: torch.Tensor
    losses: torch.Tensor
    totals: dict[int, int]
    total_rows: torch.Tensor

    def score(self, run: int, target: Head) -> float:
        """Run ``run``'s mean score of ``target``."""
        if run in self.totals:
            return float(self.total_rows[self.totals[run], target[0], :, target[1]].mean())
        return float(self.rows[run].mean())


def estimate_all(model, plan: Plan, tokens, clean: Clean, runs, aims, execution, n: int) -> tuple[Known, list[int]]:
    """Every run's exact score and estimated loss (one backward pass, a probe per k/q/v run, a trace to
    the last target layer per ``total`` run), and the runs whose losses run exactly (:func:`_strongest`).
    ``aims``: the targets and their layers."""
    targets, layers = aims
    b = tokens.shape[0]
    known = Known(torch.full((len(runs), b), float("nan")), torch.full((len(runs),), float("nan")), {}, torch.empty(0))
    kqv = [i for i, r in enumerate(runs) if r.path != "total"]
    totals = [i for i, r in enumerate(runs) if r.path == "total"]
    wanted = {runs[i].target[0] for i in kqv} | {runs[i].source[0] for i in totals}
    clean.grads = loss_gradients(model, plan, tokens, wanted)
    if kqv:
        estimate(model, plan, tokens, clean, runs, kqv, execution, (known.rows, known.losses))
    if totals:
        for i in totals:
            known.losses[i] = clean.loss + removal_estimate(clean, runs[i].source)
        known.totals = {i: j for j, i in enumerate(totals)}
        chosen = [runs[i] for i in totals]
        known.total_rows, _ = run_traces(model, plan, tokens, clean, chosen, layers, execution, loss=False)
    return known, _strongest(runs, known, clean, n, targets)


def removal_estimate(clean: Clean, source: Head) -> float:
    """First-order change of the clean mean loss when ``source`` is removed everywhere (``total``):
    ``g_s . (r_s - z_s)`` (attribution patching, ``g_s`` from :func:`loss_gradients`, in ``clean.grads``)."""
    layer, head = source
    removed = clean.replacement[layer][..., head, :] - clean.z[layer][:, :, head]  # [batch, pos, d_head]
    return float((removed.float() * clean.grads[layer][:, :, head].float()).sum())


def estimate(
    model,
    plan: Plan,
    tokens,
    clean: Clean,
    runs: list[Run],
    chosen: list[int],
    execution: Execution,
    into: tuple[torch.Tensor, torch.Tensor],
) -> None:
    """Probe the ``chosen`` k/q/v runs: exact scores into ``into[0]`` (``[runs]`` means, or ``[runs, batch]``
    row by row), clean loss + estimate into ``into[1]`` (the gradients from :func:`loss_gradients`, into
    ``clean.grads`` where it lacks a target layer)."""
    scores, losses = into
    missing = {runs[i].target[0] for i in chosen} - set(clean.grads)
    if missing:
        clean.grads = {**clean.grads, **loss_gradients(model, plan, tokens, missing)}
    grads = clean.grads
    order, chunks = start_chunks(runs, chosen, max(1, execution.max_tokens // tokens.numel()))

    def trace_chunk(start: int, stop: int) -> torch.Tensor:
        members = [runs[i] for i in order[start:stop]]
        return probe(model, plan, tokens, clean, grads, members, members[0].start)

    codes = run_codes([runs[i] for i in order])
    shape = run_shape(lambda start, stop: [runs[i] for i in order[start:stop]])
    values = run_chunks(model, chunks, trace_chunk, execution, "estimating edges", (tokens, codes), shape)
    for (start, stop), value in zip(chunks, values, strict=True):
        chunk, value = order[start:stop], value.float().cpu()  # [runs, batch, 2]
        scores[chunk] = value[..., 0] if scores.dim() == 2 else value[..., 0].mean(dim=1)
        losses[chunk] = clean.loss + value[..., 1].sum(dim=1)


def _strongest(runs: list[Run], known: Known, clean: Clean, n: int, targets: set[Head]) -> list[int]:
    """Per target and path, the ``n`` runs with the largest estimated loss effects and the ``n`` with the
    largest score effects (``k``, ``q``, ``total``: a ``v`` run leaves the target's pattern alone)."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(runs):  # a total run serves every target after its source
        for target in [r.target] if r.target is not None else sorted(t for t in targets if t[0] > r.source[0]):
            groups.setdefault((target, r.path), []).append(i)
    out: set[int] = set()
    for (target, path), ids in groups.items():
        loss = (known.losses[ids] - clean.loss).abs()
        out |= {ids[j] for j in torch.argsort(loss, descending=True, stable=True)[:n].tolist()}
        if path != "v":
            base = float(clean.scores[target[0]][target[1]])
            score = torch.tensor([abs(known.score(i, target) - base) for i in ids])
            out |= {ids[j] for j in torch.argsort(score, descending=True, stable=True)[:n].tolist()}
    return sorted(out)
