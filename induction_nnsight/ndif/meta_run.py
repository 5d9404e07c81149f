"""Running a job on a weightless (``meta``) model: values read as stand-ins, passes counted.

A plan (:mod:`~induction_nnsight.ndif.plan`) runs a job's own code on a model whose parameters
are meta tensors: every operation computes shapes and dtypes, none computes numbers. Two things
let the job's code run to the end there:

- :func:`meta_reads_as_stand_ins`: reading a meta tensor's value (``.item()``, ``bool(...)``,
  ``.cpu()``, ``.tolist()``) gives :func:`stand_in` values instead of an error (zeros for
  integers, ``False`` for truth values, seeded uniform noise in ``[0, 1)`` for floating point, so
  that a job's statistics of them are defined), and transformers' own shortcuts
  (``padding_mask.all()``) and a job's bookkeeping go on. Whatever the job decides from those
  values (which heads are strongest) is therefore arbitrary: a plan counts what a job sends, not
  what it finds.
- :func:`counting_passes`: forward hooks count the rows and tokens each pass runs, as
  :mod:`~induction_nnsight.causal.cost` counts them (a pass over ``rows`` rows counts ``rows``; a
  pass that runs some of the blocks counts the fraction it ran), and a gradient hook on the logits
  counts the backward passes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..models.layout import model_layout
from .internals import wrapped_module

__all__ = ["PassCount", "counting_passes", "meta_reads_as_stand_ins", "noise_kept", "reset_noise", "stand_in"]

_aten = torch.ops.aten
_NOISE = torch.Generator().manual_seed(0)


def stand_in(shape, dtype: torch.dtype, device="cpu") -> torch.Tensor:
    """What a meta tensor of ``shape`` and ``dtype`` reads as: uniform noise in ``[0, 1)`` for a
    floating-point dtype (from one seeded generator), zeros (``False``) otherwise."""
    if not (dtype.is_floating_point or dtype.is_complex):
        return torch.zeros(shape, dtype=dtype, device=device)
    return torch.rand(shape, generator=_NOISE, dtype=torch.float32).to(device=device, dtype=dtype)


def reset_noise(seed: int = 0) -> None:
    """Start the stand-ins' generator again (a plan starts here, so two plans of a job agree)."""
    _NOISE.manual_seed(seed)


@contextmanager
def noise_kept():
    """Within the block stand-ins draw as usual; after it the generator is where it was before, so what
    the block drew does not change what comes after (a request traced or taken from its shape's measures)."""
    state = _NOISE.get_state()
    try:
        yield
    finally:
        _NOISE.set_state(state)


def _is_meta(value) -> bool:
    return isinstance(value, torch.Tensor) and value.device.type == "meta"


class _MetaReadsAsStandIns(TorchDispatchMode):
    """Reading a meta tensor's value gives :func:`stand_in` values (a scalar, or a copy off meta)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _aten._local_scalar_dense.default and _is_meta(args[0]):
            return stand_in((), args[0].dtype).item()
        if func is _aten._to_copy.default and _is_meta(args[0]):
            device = kwargs.get("device")
            if device is not None and torch.device(device).type != "meta":
                return stand_in(args[0].shape, kwargs.get("dtype") or args[0].dtype, device)
        if func is _aten.copy_.default and _is_meta(args[1]) and not _is_meta(args[0]):
            return args[0].copy_(stand_in(args[0].shape, args[0].dtype, args[0].device))
        meta = real = False  # one pass over the arguments: this runs for every operation of a plan
        for a in (*args, *kwargs.values()) if kwargs else args:
            if isinstance(a, torch.Tensor):
                if a.is_meta:
                    meta = True
                elif a.dim():
                    real = True
        if meta and real:
            # a value read here (a weight copied off meta) meeting the meta activations: it joins them
            args = tuple(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args)
            kwargs = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        return func(*args, **kwargs)


@contextmanager
def meta_reads_as_stand_ins():
    """Within the block (this thread), a meta tensor's value reads as :func:`stand_in` values instead of raising."""
    with _MetaReadsAsStandIns():
        yield


@dataclass
class PassCount:
    """What the passes of one request ran, counted per row.

    Attributes:
        n_layers: Blocks of the model.
        block_rows: Rows summed over the blocks that ran them.
        block_tokens: Tokens summed over the blocks that ran them.
        backward_passes: Row backward passes (each from the logits, counted whole).
        tokens: Tokens of the passes, forward and backward (a partial pass counts its tokens fully).
        backward_tokens: Tokens of the backward passes.
    """

    n_layers: int
    block_rows: int = 0
    block_tokens: int = 0
    backward_passes: int = 0
    tokens: int = 0
    backward_tokens: int = 0

    @property
    def forward_passes(self) -> float:
        """Row forward passes (a pass through some of the blocks: the fraction it ran)."""
        return self.block_rows / self.n_layers

    @property
    def forward_block_tokens(self) -> float:
        """Tokens x the fraction of blocks each forward pass ran (what its FLOPs scale with)."""
        return self.block_tokens / self.n_layers


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
def counting_passes(model, on_block: Callable[[], object] | None = None):
    """Count the passes ``model`` runs within the block; yields the :class:`PassCount` it fills.

    Each block's attention module counts its rows (so a block an intervention skips is not
    counted); the model itself counts the tokens it is given; the output layer hooks the logits,
    when they will get a gradient, to count the backward pass. ``on_block`` is called as each block
    starts (a progress bar's update).
    """
    layout = model_layout(model)
    count = PassCount(len(layout.attention))
    root = wrapped_module(model)

    def block(module, args, kwargs):
        shape = _rows_positions(args, kwargs, ("hidden_states",))
        if on_block is not None:
            on_block()
        if shape is not None:
            count.block_rows += shape[0]
            count.block_tokens += shape[0] * shape[1]

    def backward(rows: int, tokens: int):
        def hook(grad):
            count.backward_passes += rows
            count.backward_tokens += tokens
            count.tokens += tokens

        return hook

    def whole(module, args, kwargs):
        shape = _rows_positions(args, kwargs, ("input_ids", "inputs_embeds"))
        if shape is not None:
            count.tokens += shape[0] * shape[1]

    def logits(module, args, output):  # on the output layer: before any intervention reads the model's output
        if isinstance(output, torch.Tensor) and output.requires_grad and output.dim() == 3:
            output.register_hook(backward(int(output.shape[0]), int(output.shape[0] * output.shape[1])))

    handles = [root.get_submodule(path).register_forward_pre_hook(block, with_kwargs=True) for path in layout.attention]
    handles.append(root.register_forward_pre_hook(whole, with_kwargs=True))
    handles.append(root.get_output_embeddings().register_forward_hook(logits))
    try:
        yield count
    finally:
        for handle in handles:
            handle.remove()
