"""Where a model runs: ``cpu``, ``cuda``, ``mps``, or ``auto`` (the best one this machine has).

>>> resolve_device("cpu")
'cpu'
>>> resolve_device("tpu")
Traceback (most recent call last):
...
induction_nnsight.errors.InductionError: --device takes auto, cpu, cuda, mps: got 'tpu'
"""

from __future__ import annotations

import torch

from ..errors import InductionError

__all__ = ["DEVICES", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda", "mps")
"""The devices ``--device`` takes."""


def _available(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_available()
    if device == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return device == "cpu"


def resolve_device(device: str) -> str:
    """The device ``device`` names here: ``auto`` is ``cuda``, else ``mps``, else ``cpu``.

    Raises:
        InductionError: An unknown device, or one this machine (or this build of torch) does not have,
            in one line naming what it has.
    """
    if device not in DEVICES:
        raise InductionError(f"--device takes {', '.join(DEVICES)}: got {device!r}")
    if device == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if _available(d))
    if not _available(device):
        has = ", ".join(d for d in DEVICES[1:] if _available(d))
        raise InductionError(
            f"--device {device}: this machine (torch {torch.__version__}) has no {device} device; "
            f"pass --device {has.split(', ')[-1]} or --device auto (it has {has})"
        )
    return device
