"""Activation patching: run the corrupted rows, paste in one clean activation, score.

- :mod:`.sites`: where a clean activation is pasted (:class:`HeadSite`, :class:`ResidualSite`,
  :class:`QKVSite`): each site gives its grid's labels, its masks and its edit;
- :mod:`.engine`: the one engine, :func:`patch` ``(model, pair, site)``, and its thin wrappers
  :func:`patch_heads`, :func:`patch_residual`, :func:`patch_qkv`;
- :mod:`.results`: what it returns (:class:`PatchResult`).

Part of :mod:`induction_nnsight.causal`: may import what that stage may import and its flat modules
(metrics, pairs, head outputs, variants, intervals, cost).
"""

from .engine import patch, patch_heads, patch_qkv, patch_residual
from .results import PatchResult
from .sites import QKV, HeadSite, QKVSite, ResidualSite, Site, SitePlan

__all__ = [
    "QKV",
    "HeadSite",
    "PatchResult",
    "QKVSite",
    "ResidualSite",
    "Site",
    "SitePlan",
    "patch",
    "patch_heads",
    "patch_qkv",
    "patch_residual",
]
