"""Many traces, few requests: a job's chunks sent in nnsight sessions, journaled, split when too big.

:func:`run_chunks` is the one loop every multi-trace job shares (the causal sweeps go through
:func:`~induction_nnsight.causal.variants.run_variants`). It

1. reads back every chunk the :class:`~induction_nnsight.ndif.journal.Journal` already holds
   (``Execution.journal``; one line says how many were resumed);
2. bundles the remaining chunks' traces into requests, each one ``model.session(...)`` holding up
   to ``Execution.traces_per_request`` traces: the first request holds one trace (to measure the
   seconds a trace takes), each later one as many as ``Execution.request_seconds`` allows at the
   seconds per trace measured so far (estimated from FLOPs under ``--plan``: :mod:`~.plan`);
3. refuses a request whose serialized size is over ``Execution.request_bytes`` before sending it
   and splits it in two (a single trace over the budget stops with one line);
4. records each finished request's chunks in the journal.

The same code runs locally (a session with no backend runs its traces here), as a dry run and on
NDIF, so it is tested everywhere. A chunk's trace saves one small tensor; a session returns them
in order.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence

import nnsight
import torch
from tqdm.auto import tqdm

from .backend import remote_backend
from .execution import Execution
from .transfers import RequestTooLarge

__all__ = ["Chunk", "ChunkShape", "TraceChunk", "chunk_size", "run_chunks"]

Chunk = tuple[int, int]
"""A chunk of a job: variants ``[start, stop)``."""

TraceChunk = Callable[[int, int], torch.Tensor]
"""``(start, stop) -> saved tensor``: opens one ``model.trace`` (no backend) and returns what it saved."""

ChunkShape = Callable[[int, int], Hashable]
"""``(start, stop) -> key``: what a chunk's trace costs depends on; two chunks with equal keys run the
same passes over the same tokens and save tensors of the same shapes (a plan traces one of them)."""


def chunk_size(start: int, stop: int) -> int:
    """The default :data:`ChunkShape`: a chunk's cost depends on how many variants it holds, not which."""
    return stop - start


def _session(model, backend, group: Sequence[Chunk], trace_chunk: TraceChunk) -> list[torch.Tensor]:
    """The traces of ``group`` in one nnsight session under ``backend``; what each saved."""
    with torch.no_grad(), model.session(backend=backend):
        values = []
        for start, stop in group:
            values.append(trace_chunk(start, stop))
        values = nnsight.save(values)
    return values


def _send(model, group: Sequence[Chunk], trace_chunk: TraceChunk, execution: Execution, keys=None):
    """One request: the traces of ``group`` in one nnsight session; their saved tensors, on the CPU,
    and the server seconds a planned request is estimated at (None: the request was timed).

    ``keys`` (one per chunk: what its cost depends on) serve a plan
    (:class:`~induction_nnsight.ndif.plan.PlanBackend`): a chunk of a key not yet measured is first
    traced alone on the meta model, and the request is then priced from its traces' measures."""
    backend = remote_backend(model, execution.remote)
    if backend is not None and hasattr(backend, "max_bytes"):
        backend.max_bytes = execution.request_bytes
    if keys is not None and getattr(backend, "by_shape", False):
        for chunk, key in zip(group, keys, strict=True):
            if not backend.knows(key):
                _session(model, backend.probe(key), [chunk], trace_chunk)
        backend.keys = tuple(keys)
    values = _session(model, backend, group, trace_chunk)
    return [value.detach().cpu() for value in values], getattr(backend, "server_seconds", None)


def _next_size(execution: Execution, cap: int, seconds_per_trace: float | None) -> int:
    """Traces in the next request: 1 until a trace was timed, then what the time budget allows."""
    if seconds_per_trace is None:
        return 1
    by_time = math.floor(execution.request_seconds / max(seconds_per_trace, 1e-9))
    return max(1, min(cap, execution.traces_per_request, by_time))


def run_chunks(
    model,
    chunks: Sequence[Chunk],
    trace_chunk: TraceChunk,
    execution: Execution,
    label: str,
    inputs: Sequence[torch.Tensor | None] = (),
    shape: ChunkShape = chunk_size,
) -> list[torch.Tensor]:
    """Run every chunk's trace in sessions under ``execution``; resumed chunks are not recomputed.

    Args:
        model: An nnsight model.
        chunks: ``(start, stop)`` variant ranges, in order.
        trace_chunk: Opens a chunk's trace and returns the tensor it saved.
        execution: Where and in what sizes (``traces_per_request``, ``request_bytes``,
            ``request_seconds``), with what ``journal`` and ``progress``.
        label: What the chunks compute (the progress bar's label and part of the journal key).
        inputs: The tensors the traces read (their digest keys the journal: other tokens, other
            chunks).
        shape: What a chunk's cost depends on (:data:`ChunkShape`; default: its size). A plan
            traces one request per distinct set of shapes and multiplies.

    Returns:
        One saved tensor per chunk, in the order of ``chunks``.

    Raises:
        RequestTooLarge: One chunk alone is over ``execution.request_bytes``.
    """
    journal = execution.journal
    call = journal.call(label, *inputs[:2]) if journal is not None else None
    results: dict[Chunk, torch.Tensor] = {}
    for chunk in chunks:
        value = journal.get(call.key(*chunk)) if journal is not None else None
        if value is not None:
            results[chunk] = value
    if results:
        print(
            f"induction-nnsight: {label}: resumed {len(results)} of {len(chunks)} chunks from {journal.path}",
            file=sys.stderr,
        )
    queue = deque(chunk for chunk in chunks if chunk not in results)
    total = sum(stop - start for start, stop in chunks)
    bar = tqdm(
        total=total,
        desc=label,
        unit="variant",
        disable=not execution.progress or len(queue) <= 1,
        file=sys.stderr,
        leave=False,
    )
    bar.update(sum(stop - start for start, stop in results))
    cap, seconds_per_trace = execution.traces_per_request, None
    kind = (getattr(trace_chunk, "__code__", None), label, tuple(None if t is None else tuple(t.shape) for t in inputs))
    while queue:
        group = [queue.popleft() for _ in range(min(_next_size(execution, cap, seconds_per_trace), len(queue)))]
        start_time = time.monotonic()
        try:
            keys = [(kind, shape(*chunk)) for chunk in group]
            values, estimated = _send(model, group, trace_chunk, execution, keys)
        except RequestTooLarge:
            if len(group) == 1:
                raise
            cap = len(group) // 2  # split: the same chunks again, in requests half the size
            queue.extendleft(reversed(group))
            continue
        seconds = time.monotonic() - start_time if estimated is None else estimated  # --plan: the estimate
        seconds_per_trace = seconds / len(group)
        finished = dict(zip(group, values, strict=True))
        results.update(finished)
        if journal is not None:
            journal.record({call.key(*chunk): value for chunk, value in finished.items()})
        bar.update(sum(stop - start for start, stop in group))
    bar.close()
    return [results[chunk] for chunk in chunks]
