"""Activation patching: run the corrupted rows, paste in one clean activation, score.

- :mod:`.engine`: :func:`patch_heads`, :func:`patch_residual`, :func:`patch_qkv`;
- :mod:`.results`: what they return (:class:`PatchResult`).

Part of :mod:`induction_nnsight.causal`: may import what that stage may import and its flat modules
(metrics, pairs, head outputs, variants, intervals, cost).
"""

from .engine import patch_heads, patch_qkv, patch_residual
from .results import PatchResult

__all__ = ["PatchResult", "patch_heads", "patch_qkv", "patch_residual"]
