"""Batched variants: many interventions scored in few forward passes.

Each trace runs one batch of rows: optional *source* rows first (clean tokens
to patch from, or rows to average), then the *target* rows
repeated once per variant. An ``edit`` called inside the trace rewrites some
activation of each variant's rows, typically from the source rows of the same
forward pass, so nothing large ever leaves the trace; only the metric of each
variant's rows is saved (``[variants, batch]``: per-row values give the intervals of
:mod:`~induction_nnsight.causal.intervals` without another forward pass). Rows never interact, so a variant's result
equals the result of running it alone (up to float summation order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import nnsight
import torch

from ..ndif.execution import Execution, as_execution
from ..ndif.sessions import run_chunks


@dataclass(frozen=True)
class Rows:
    """Where things are in one trace's batch.

    Attributes:
        n_source: Rows ``[0, n_source)`` are the source rows.
        batch: Rows per variant; variant ``i`` of this trace holds rows
            ``n_source + i * batch .. n_source + (i + 1) * batch``.
        start: Index of this trace's first variant among all variants.
        stop: One past its last variant.
    """

    n_source: int
    batch: int
    start: int
    stop: int

    @property
    def n_variants(self) -> int:
        return self.stop - self.start


Edit = Callable[[Rows], None]


def variants_per_trace(batch: int, n_source: int, n_pos: int, execution: Execution | None = None) -> int:
    """How many variants fit in one trace under ``execution``'s row and token budgets (at least 1)."""
    run = as_execution(execution)
    rows = min(run.max_rows, max(1, run.max_tokens // max(1, n_pos)))
    return max(1, (rows - n_source) // batch)


def run_variants(
    model,
    target: torch.Tensor,
    n_variants: int,
    edit: Edit | None,
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    source: torch.Tensor | None = None,
    execution: Execution | None = None,
) -> torch.Tensor:
    """Score ``n_variants`` edits of the target rows, batching several per trace.

    Args:
        model: An nnsight ``TransformersModel``.
        target: ``[batch, pos]`` token ids every variant runs on.
        n_variants: How many variants.
        edit: Called inside each trace (in forward order of what it touches)
            with the :class:`Rows` layout; None runs the rows unedited.
        metric: ``(logits [rows, pos, vocab], tokens [rows, pos]) -> [rows, ...]``.
        source: ``[n_source, pos]`` rows placed before the targets in every trace.
        execution: How the traces run (:class:`~induction_nnsight.ndif.execution.Execution`):
            ``max_tokens`` and ``max_rows`` bound one trace (the logits' memory), ``remote``
            sends them to NDIF, ``progress`` shows a bar on stderr; None for the defaults.

    Returns:
        ``[n_variants, ...]`` the metric averaged over each variant's rows.
    """
    return _run_variants(model, target, n_variants, edit, metric, source, as_execution(execution), "variants")


def _run_variants(model, target, n_variants, edit, metric, source, execution: Execution, desc: str) -> torch.Tensor:
    """:func:`run_variants` with its progress bar labelled ``desc``."""
    return _run_variant_rows(model, target, n_variants, edit, metric, source, execution, desc).mean(dim=1)


def _run_variant_rows(model, target, n_variants, edit, metric, source, execution: Execution, desc: str):
    """:func:`run_variants` per row: ``[n_variants, batch, ...]``."""
    batch, n_pos = target.shape
    n_source = 0 if source is None else source.shape[0]
    if source is not None and source.shape[1] != n_pos:
        raise ValueError(f"source rows have {source.shape[1]} positions, target rows {n_pos}")
    per = variants_per_trace(batch, n_source, n_pos, execution)
    chunks = [(start, min(n_variants, start + per)) for start in range(0, n_variants, per)]

    def trace_chunk(start: int, stop: int) -> torch.Tensor:
        k = stop - start
        rows = torch.cat(([source] if source is not None else []) + [target] * k)
        layout = Rows(n_source, batch, start, stop)
        with torch.no_grad(), model.trace(rows):
            if edit is not None:
                edit(layout)
            values = metric(model.output.logits[n_source:], target.repeat(k, 1))  # [k * batch, ...]
            saved = nnsight.save(values.reshape(k, batch, *values.shape[1:]).detach())  # [k, batch, ...]
        return saved

    # traces bundled into sessions, journaled and split by the one loop every sweep shares
    return torch.cat(run_chunks(model, chunks, trace_chunk, execution, desc, (target, source)))
