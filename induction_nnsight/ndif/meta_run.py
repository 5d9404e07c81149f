"""Running a job on a weightless (``meta``) model: values read as zeros, passes counted.

A plan (:mod:`~induction_nnsight.ndif.plan`) runs a job's own code on a model whose parameters
are meta tensors: every operation computes shapes and dtypes, none computes numbers. Two things
let the job's code run to the end there:

- :func:`meta_reads_as_zeros`: reading a meta tensor's value (``.item()``, ``bool(...)``,
  ``.cpu()``, ``.tolist()``) gives zeros (``False`` for a truth value) instead of an error, so
  transformers' own shortcuts (``padding_mask.all()``) and a job's bookkeeping go on. Whatever
  the job decides from those values (which heads are strongest) is therefore arbitrary: a plan
  counts what a job sends, not what it finds.
- :func:`counting_passes`: forward hooks count the rows and tokens each pass runs, as
  :mod:`~induction_nnsight.causal.cost` counts them (a pass over ``rows`` rows counts ``rows``; a
  pass that runs some of the blocks counts the fraction it ran), and a gradient hook on the logits
  counts the backward passes.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..models.layout import model_layout

__all__ = ["PassCount", "counting_passes", "meta_reads_as_zeros"]

_aten = torch.ops.aten


def _is_meta(value) -> bool:
    return isinstance(value, torch.Tensor) and value.device.type == "meta"


class _MetaReadsAsZeros(TorchDispatchMode):
    """Reading a meta tensor's value gives zeros: a scalar is 0 (False), a copy off meta is zero-filled."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _aten._local_scalar_dense.default and _is_meta(args[0]):
            dtype = args[0].dtype
            return False if dtype == torch.bool else 0.0 if dtype.is_floating_point or dtype.is_complex else 0
        if func is _aten._to_copy.default and _is_meta(args[0]):
            device = kwargs.get("device")
            if device is not None and torch.device(device).type != "meta":
                return torch.zeros(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype, device=device)
        if func is _aten.copy_.default and _is_meta(args[1]) and not _is_meta(args[0]):
            return args[0].zero_()
        return func(*args, **kwargs)


@contextmanager
def meta_reads_as_zeros():
    """Within the block (this thread), a meta tensor's value reads as zeros instead of raising."""
    with _MetaReadsAsZeros():
        yield


@dataclass
class PassCount:
    """What the passes of one request ran, counted per row.

    Attributes:
        forward_passes: Row forward passes (a pass through some of the blocks: the fraction it ran).
        backward_passes: Row backward passes (each from the logits, counted whole).
        tokens: Tokens of those passes, forward and backward (a partial pass counts its tokens fully).
        forward_block_tokens: Tokens x the fraction of blocks each forward pass ran (what its FLOPs scale with).
        backward_tokens: Tokens of the backward passes.
    """

    forward_passes: float = 0.0
    backward_passes: float = 0.0
    tokens: int = 0
    forward_block_tokens: float = 0.0
    backward_tokens: int = 0


def _rows_positions(args, kwargs, names: tuple[str, ...]) -> tuple[int, int] | None:
    """``(rows, positions)`` of the first tensor argument (positional, else the first of ``names``)."""
    value = args[0] if args and isinstance(args[0], torch.Tensor) else None
    for name in names:
        if value is None and isinstance(kwargs.get(name), torch.Tensor):
            value = kwargs[name]
    if value is None or value.dim() < 2:
        return None
    return int(value.shape[0]), int(value.shape[1])


@contextmanager
def counting_passes(model):
    """Count the passes ``model`` runs within the block; yields the :class:`PassCount` it fills.

    Each block's attention module counts its rows (so a block an intervention skips is not
    counted); the model itself counts the tokens it was given and, when the logits will get a
    gradient, hooks them to count the backward pass.
    """
    count = PassCount()
    layout = model_layout(model)
    n_layers = len(layout.attention)
    root = model._module

    def block(module, args, kwargs):
        shape = _rows_positions(args, kwargs, ("hidden_states",))
        if shape is not None:
            count.forward_passes += shape[0] / n_layers
            count.forward_block_tokens += shape[0] * shape[1] / n_layers

    def backward(rows: int, tokens: int):
        def hook(grad):
            count.backward_passes += rows
            count.backward_tokens += tokens
            count.tokens += tokens

        return hook

    def whole(module, args, kwargs, output):
        shape = _rows_positions(args, kwargs, ("input_ids", "inputs_embeds"))
        if shape is None:
            return
        count.tokens += shape[0] * shape[1]
        logits = getattr(output, "logits", None)
        if isinstance(logits, torch.Tensor) and logits.requires_grad:
            logits.register_hook(backward(shape[0], shape[0] * shape[1]))

    handles = [root.get_submodule(path).register_forward_pre_hook(block, with_kwargs=True) for path in layout.attention]
    handles.append(root.register_forward_hook(whole, with_kwargs=True))
    try:
        yield count
    finally:
        for handle in handles:
            handle.remove()
