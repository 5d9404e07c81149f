"""Counting what a torch model runs: an independent route to the ``cost`` a job records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def forward_passes(model) -> Iterator[tuple[list[int], list[int]]]:
    """Inside the block, every forward pass of the nnsight model's torch module: yields ``(rows, tokens)``,
    one entry per pass (its batch rows, and rows times positions)."""
    rows: list[int] = []
    tokens: list[int] = []

    def count(_module, args, kwargs):
        ids = args[0] if args else kwargs["input_ids"]
        rows.append(ids.shape[0])
        tokens.append(ids.numel())

    hook = model._module.register_forward_pre_hook(count, with_kwargs=True)
    try:
        yield rows, tokens
    finally:
        hook.remove()
