"""The runs of path patching after the clean trace (:mod:`~induction_nnsight.causal.paths.traces`):
the runs of one start layer share traces, in which the blocks before the start layer are skipped
and return the clean residual, as many runs per trace as the token budget allows, the traces
bundled into requests by the loop every multi-trace job shares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import nnsight
import torch

from ...ndif.execution import Execution
from ...ndif.sessions import run_chunks
from .edits import outputs, skip_prefix, slices
from .traces import Clean, Plan, Run

__all__ = ["run_codes", "run_shape", "run_traces", "start_chunks"]


def _score_layers(runs: list[Run], layer: int, target_layers: set[int]) -> list[int]:
    """The layers whose scores a trace of ``runs`` (all starting at ``layer``) saves, in order: ``layer``
    for k/q/v runs, every later target layer for ``total`` runs."""
    kqv = any(r.path != "total" for r in runs)
    total = any(r.path == "total" for r in runs)
    return sorted(({layer} if kqv else set()) | {t for t in target_layers if t > layer and total})


def _trace(
    model,
    plan: Plan,
    tokens: torch.Tensor,
    clean: Clean,
    runs: list[Run],
    layer: int,
    target_layers: set[int],
    loss: bool = True,
) -> torch.Tensor:
    """Runs that all start at ``layer``, in one trace (no backend: it runs inside a session); without
    ``loss`` the trace stops after the last layer it scores.

    Returns:
        ``[runs, batch, len(layers) * head + 1]`` float32, packed into one tensor (what a session
        returns and the journal keeps): the ``[runs, batch, head]`` scores of each of
        :func:`_score_layers`' layers in order, then the ``[runs, batch]`` losses (NaN without ``loss``).
    """
    k, b = len(runs), tokens.shape[0]
    kqv = [(i, r) for i, r in enumerate(runs) if r.path != "total"]
    score_layers = set(_score_layers(runs, layer, target_layers))
    found = []  # saved as one tensor at the end: a remote run returns saved values only
    with torch.no_grad(), model.trace(tokens.repeat(k, 1), **plan.kwargs) as tracer:
        skip_prefix(model, plan, clean, layer, k)
        if kqv:
            slices(model, plan, clean, kqv, layer, k)
        for t in sorted(score_layers | {layer}):
            if t in score_layers:
                found.append(plan.scores(t).reshape(k, b, -1).float())  # [runs, batch, head]
            if t == layer:
                outputs(model, plan, clean, runs, layer, k)
        if loss:
            found.append(plan.loss(model, tokens.repeat(k, 1)).reshape(k, b, 1).float())
        else:
            found.append(torch.full((k, b, 1), float("nan"), device=found[0].device))
        saved = nnsight.save(torch.cat(found, dim=-1))
        if not loss:
            tracer.stop()
    return saved


def start_chunks(runs: list[Run], chosen: Iterable[int], per: int) -> tuple[list[int], list[tuple[int, int]]]:
    """The ``chosen`` runs (indices into ``runs``) ordered by start layer, and the ``[start, stop)``
    chunks of that order one trace each runs: one start layer per chunk, at most ``per`` runs."""
    by_start: dict[int, list[int]] = {}
    for i in chosen:
        by_start.setdefault(runs[i].start, []).append(i)
    order, chunks = [], []
    for layer in sorted(by_start):
        first, n = len(order), len(by_start[layer])
        order += by_start[layer]
        chunks += [(first + c, first + min(n, c + per)) for c in range(0, n, per)]
    return order, chunks


def run_shape(members: Callable[[int, int], list[Run]]) -> Callable[[int, int], tuple]:
    """A chunk's :data:`~induction_nnsight.ndif.sessions.ChunkShape`: where its runs start, which paths
    they patch and which layers they score decide its passes (the trace skips the blocks before the
    start and stops after the last scored layer), not which heads they patch."""

    def shape(start: int, stop: int) -> tuple:
        return tuple((r.start, r.path, r.target[0] if r.target else None) for r in members(start, stop))

    return shape


def run_codes(runs: list[Run]) -> torch.Tensor:
    """``[runs, 5]`` int64: each run's source, path and target (-1: none), for the journal's key."""
    rows = [[*r.source, ("k", "q", "v", "total").index(r.path), *(r.target or (-1, -1))] for r in runs]
    return torch.tensor(rows, dtype=torch.long).reshape(len(runs), 5)


def run_traces(
    model,
    plan: Plan,
    tokens: torch.Tensor,
    clean: Clean,
    runs: list[Run],
    target_layers: set[int],
    execution: Execution,
    loss: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every run, grouped by start layer, as many per trace as ``execution.max_tokens`` allows.

    The traces go through :func:`~induction_nnsight.ndif.sessions.run_chunks`, the loop every
    multi-trace job shares: several per request (an nnsight session, as ``execution``'s
    ``traces_per_request``, ``request_bytes`` and ``request_seconds`` allow), each finished chunk
    recorded in ``execution.journal`` and read back instead of recomputed on resume (a progress
    bar when ``execution.progress``). Without ``loss`` each trace stops after the last target layer
    it scores.

    Returns:
        ``(scores [runs, n_layers, batch, head], losses [runs, batch])`` row by row; scores are NaN where
        a run was not scored, losses without ``loss``.
    """
    per, b = max(1, execution.max_tokens // tokens.numel()), tokens.shape[0]
    scores = torch.full((len(runs), plan.layout.facts.n_layers, b, plan.n_heads), float("nan"))
    losses = torch.full((len(runs), b), float("nan"))
    order, chunks = start_chunks(runs, range(len(runs)), per)

    def members(start: int, stop: int) -> list[Run]:
        return [runs[i] for i in order[start:stop]]

    def trace_chunk(start: int, stop: int) -> torch.Tensor:
        chunk = members(start, stop)
        return _trace(model, plan, tokens, clean, chunk, chunk[0].start, target_layers, loss)

    what = "path patching" if loss else "path patching (scores)"
    codes = torch.cat([run_codes(runs), torch.full((len(runs), 1), int(loss))], dim=1)
    values = run_chunks(model, chunks, trace_chunk, execution, what, (tokens, codes), run_shape(members))
    for (start, stop), value in zip(chunks, values, strict=True):  # unpack what _trace packed
        chunk, value = order[start:stop], value.float().cpu()
        layers = _score_layers(members(start, stop), runs[chunk[0]].start, target_layers)
        for j, t in enumerate(layers):
            scores[chunk, t] = value[..., j * plan.n_heads : (j + 1) * plan.n_heads]
        losses[chunk] = value[..., -1]
    return scores, losses
