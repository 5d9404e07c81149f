"""Causal copying scores: one head's output patched at one position, from clean rows into corrupt ones.

Feucht et al. (2025): a head's output (its slice of the output projection's input) at the
second-to-last position of a corrupt row (the entity never seen) is replaced by its value on the
clean row (the entity seen earlier), and the model's log-probability of the entity's next token
is compared with the unpatched corrupt run's. Feucht et al. compare probabilities; on SmolLM2 one
head barely moved a random token's probability in a first run, too little to rank heads by, so
log-probabilities (nats) are compared. One variant per head, batched as the other sweeps are
(:func:`~induction_nnsight.causal.variants.variants_per_trace` sizes the traces, :class:`Rows`
lays them out).

A patch at the second-to-last position changes only the last two positions, so, run here, the
corrupt rows' prefix is computed once and cached (its keys and values), and each variant runs just
the last two tokens against that cache: 14 times fewer tokens on 28-token rows. On NDIF the rows run
whole (the cache does not travel, nor in the dry run); both give the same numbers.
"""

from __future__ import annotations

import inspect

import nnsight
import torch

from ...errors import InductionError
from ...models.heads import split_heads
from ...models.layout import model_facts, model_layout
from ...ndif.backend import remote_backend
from ...ndif.execution import Execution, as_execution
from ...ndif.sessions import run_chunks
from ...ndif.settings import as_settings
from ..variants import Rows, variants_per_trace
from .prompts import CopyingPrompts

__all__ = ["COPYING_TARGETS", "caches_prefix", "copying_sweep", "head_outputs_at"]

COPYING_TARGETS = {"concept": (-1, 1), "token": (-2, 0)}
"""What each copying score measures: ``(position, entity token)``: concept copying, the log-probability of
``c[1]`` at the last position; token copying, of ``c[0]`` at the second-to-last (the patched one)."""


def head_outputs_at(model, tokens: torch.Tensor, position: int, *, execution: Execution | None = None) -> torch.Tensor:
    """Every head's output at one position, from one trace.

    Returns:
        ``[batch, n_layers, n_heads, d_head]``.
    """
    facts, paths = model_facts(model), model_layout(model).o_proj  # the layout stays here: it does not pickle
    remote = as_execution(execution).remote
    with torch.no_grad(), model.trace(tokens, backend=remote_backend(model, remote)):
        parts = [model.get(path).input[:, position] for path in paths]
        saved = nnsight.save(torch.stack(parts, dim=1))  # [batch, layer, n_heads * d_head]
    return split_heads(saved.detach().cpu(), facts.n_heads, facts.d_head)


def caches_prefix(execution: Execution | None = None) -> bool:
    """Whether :func:`copying_sweep` caches the rows' prefix: when it runs here (a request, to NDIF, the dry
    run or a plan, sends whole rows). Its cost: :func:`~induction_nnsight.causal.cost.copying_cost`."""
    return as_settings(as_execution(execution).remote) is None


def _cache_kwarg(model) -> str:
    """``cache`` (transformers 5.2x) or ``past_key_values`` (earlier), whichever ``forward`` takes."""
    parameters = inspect.signature(model._module.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _prefix_cache(model, prefix: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's cached ``(keys, values)`` ``[batch, kv_head, pos, d_head]`` of the rows ``prefix``."""
    from transformers import DynamicCache

    cache = DynamicCache()
    with torch.no_grad(), model.trace(prefix, use_cache=True, **{_cache_kwarg(model): cache}):
        pass
    return [(layer.keys.detach(), layer.values.detach()) for layer in cache.layers]


def _repeated_cache(kv: list[tuple[torch.Tensor, torch.Tensor]], k: int):
    from transformers import DynamicCache

    cache = DynamicCache()
    for index, (keys, values) in enumerate(kv):
        cache.update(keys.repeat(k, 1, 1, 1), values.repeat(k, 1, 1, 1), index)
    return cache


def _layers(heads: list[tuple[int, int] | None]) -> list[int]:
    return sorted({h[0] for h in heads if h is not None})


def _patch(model, heads, clean: torch.Tensor | None, rows: Rows, projections: list[str], split_as) -> None:
    """Inside a trace: variant ``i`` of ``rows`` gets head ``heads[start + i]``'s clean output at the
    second-to-last position, at the input of ``projections[layer]`` (module paths: the layout itself stays out
    of the trace, it does not pickle). The clean output is ``clean [batch, layer, head, d_head]``, or, when
    None, read in the trace from its ``rows.n_source`` clean rows; ``split_as`` is ``(n_heads, d_head)``."""
    n_heads, d_head = split_as
    chosen = heads[rows.start : rows.stop]
    for layer in _layers(chosen):
        mask = torch.zeros(rows.n_variants, 1, n_heads, 1, dtype=torch.bool)
        for i, h in enumerate(chosen):
            if h is not None and h[0] == layer:
                mask[i, 0, h[1], 0] = True
        projection = model.get(projections[layer])
        x = projection.input  # [n_source + k * batch, pos, n_heads * d_head]
        n_pos = x.shape[1]
        at = n_pos - 2
        split = split_heads(x, n_heads, d_head)
        own, split = split[: rows.n_source], split[rows.n_source :].unflatten(0, (rows.n_variants, rows.batch))
        source = own[:, at] if clean is None else clean[:, layer].to(x.device, x.dtype)  # [batch, n_heads, d_head]
        new = torch.where(mask.to(x.device), source, split[:, :, at])  # [k, batch, n_heads, d_head]
        split = torch.cat([split[:, :, :at], new[:, :, None], split[:, :, at + 1 :]], dim=2)
        projection.input = torch.cat([own, split.flatten(0, 1)]).reshape(x.shape)


def copying_sweep(
    model, prompts: CopyingPrompts, target: str, *, heads=None, execution: Execution | None = None
) -> torch.Tensor:
    """Per-row log-probability of the copied token, corrupt and with each head patched from clean.

    Args:
        model: An nnsight ``TransformersModel``.
        prompts: The clean and corrupt rows (:func:`~induction_nnsight.causal.dual_route.prompts.copying_prompts`).
        target: ``"concept"`` (log-probability of ``c[1]`` at the last position) or ``"token"`` (of
            ``c[0]`` at the second-to-last), see :data:`COPYING_TARGETS`.
        heads: ``(layer, head)`` pairs to patch, one variant each; None for every head.
        execution: How the traces run (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``max_tokens``/``max_rows`` size them, ``remote``, ``progress``); None for the defaults.

    Returns:
        ``[1 + n_heads_patched, batch]``: row 0 the unpatched corrupt run, then one row per head.
    """
    if target not in COPYING_TARGETS:
        raise InductionError(f"unknown copying target {target!r}: pass one of {', '.join(COPYING_TARGETS)}")
    run = as_execution(execution)
    facts = model_facts(model)
    if heads is None:
        heads = [(layer, head) for layer in range(facts.n_layers) for head in range(facts.n_heads)]
    variants: list[tuple[int, int] | None] = [None, *heads]
    corrupt = prompts.corrupt
    batch, n_pos = corrupt.shape
    position, index = COPYING_TARGETS[target]
    wanted = prompts.entities[:, index]  # [batch]
    projections = model_layout(model).o_proj
    cached = caches_prefix(run)
    # here, the clean outputs are read once and the corrupt prefix cached; in a request the clean rows run in
    # each trace (sent, every head's clean output made a 405B request 72 MB)
    clean = head_outputs_at(model, prompts.clean, -2, execution=run) if cached else None
    kv = _prefix_cache(model, corrupt[:, :-2]) if cached else None
    rows_in = corrupt[:, -2:] if cached else corrupt
    n_source = 0 if cached else batch
    per = variants_per_trace(batch, n_source, n_pos, run)
    split_as = (facts.n_heads, facts.d_head)

    def trace_chunk(start: int, stop: int) -> torch.Tensor:
        k, kwargs = stop - start, {}
        if cached:  # the mask covers the cached prefix too (nnsight would make one for the two new tokens only)
            mask = torch.ones(k * batch, n_pos, dtype=torch.long)
            kwargs = {_cache_kwarg(model): _repeated_cache(kv, k), "use_cache": True, "attention_mask": mask}
        rows = rows_in.repeat(k, 1) if cached else torch.cat([prompts.clean, rows_in.repeat(k, 1)])
        with model.trace(rows, **kwargs):
            _patch(model, variants, clean, Rows(n_source, batch, start, stop), projections, split_as)
            logits = model.output.logits[n_source:, position]  # [k * batch, vocab]
            logp = torch.log_softmax(logits.float(), dim=-1).gather(1, wanted.repeat(k)[:, None].to(logits.device))
            saved = nnsight.save(logp.reshape(k, batch).detach())
        return saved

    chunks = [(start, min(len(variants), start + per)) for start in range(0, len(variants), per)]
    # traces bundled into sessions and journaled by the loop every sweep shares
    codes = torch.tensor([[-1, -1] if v is None else list(v) for v in variants], dtype=torch.long)
    results = run_chunks(model, chunks, trace_chunk, run, f"{target} copying", (corrupt, codes))
    return torch.cat(results)
