"""Find and explain induction heads in transformer language models with nnsight.

The names below are the public API, grouped as the data flows: load a model (and say where
its parts live when they are unusually named), make a probe, score every head in one pass
(the registry says which scores exist), detect and rank heads, then test them causally.
Everything else lives in the subpackages (:mod:`~induction_nnsight.models`,
:mod:`~induction_nnsight.probes`, :mod:`~induction_nnsight.training`, :mod:`~induction_nnsight.ndif`,
:mod:`~induction_nnsight.scores`, :mod:`~induction_nnsight.dynamics`, :mod:`~induction_nnsight.causal`,
:mod:`~induction_nnsight.app`). Importing the package
imports none of them: each name is imported from its module on first use (PEP 562), so the
command line answers ``--version`` and Ctrl-C before torch loads.
"""

from __future__ import annotations

from importlib import import_module

from .version import __version__ as __version__

_SOURCES = {
    "scores.attention_view": ("AttentionView", "attention_view"),
    "causal.ablation.estimators": ("head_attribution",),
    "causal.ablation.method": ("Ablation",),
    "causal.ablation.sweep": (
        "CurveResult",
        "RandomDraws",
        "SweepResult",
        "ablate_heads",
        "ablation_curve",
        "ablation_sweep",
        "repeated_half_metric",
    ),
    "causal.circuit": ("CircuitMeasure", "CircuitResult", "circuit"),
    "causal.composition": ("composition_scores",),
    "causal.head_outputs": ("HEAD_METHODS",),
    "causal.metrics": ("CausalMetric", "RowMetric", "as_metric", "icl_score", "recovery"),
    "causal.pairs": ("Pair", "repeated_pair", "text_pair"),
    "causal.patching.results": ("PatchResult",),
    "causal.patching.engine": ("patch", "patch_heads", "patch_qkv", "patch_residual"),
    "causal.patching.sites": ("HeadSite", "QKVSite", "ResidualSite"),
    "dynamics.checkpoints": ("find_checkpoints",),
    "dynamics.phase": ("phase_change",),
    "dynamics.results": ("CheckpointScores",),
    "dynamics.scoring": ("ProbeSettings", "score_checkpoints"),
    "errors": ("InductionError",),
    "models.layout": ("ModelLayout", "model_facts", "model_layout"),
    "models.loading": ("DEFAULT_MODEL", "load_model"),
    "models.validation": ("set_layout",),
    "ndif.execution": ("Execution",),
    "probes.tokens": (
        "Probe",
        "abab_probe",
        "repeated_probe",
        "repeated_tokens",
        "separator_probe",
        "small_vocab_probe",
        "text_probe",
    ),
    "scores.builtin": ("BUILTIN_SCORES",),
    "scores.declaration": ("HeadScore", "LogitInputs", "ScoreError"),
    "scores.detect": ("HeadDetection", "detect_heads"),
    "scores.heads": ("HeadScores", "head_scores"),
    "scores.losses": ("half_losses",),
    "scores.ranking": ("rank_heads",),
    "scores.registry": ("get_score", "register_score", "score_names", "unregister_score"),
    "scores.scan": ("ScanResult", "head_attention", "induction_scores", "loss_by_position", "scan"),
    "scores.views": ("ProbeView",),
    "training.config": ("TrainSettings",),
    "training.loop": ("train",),
}
"""Submodule (relative to the package) -> the public names it defines."""

__all__ = [
    # loading and layout
    "DEFAULT_MODEL",
    "load_model",
    "model_facts",
    "ModelLayout",
    "model_layout",
    "set_layout",
    # how traces run (here or on NDIF, in what sizes, with what feedback)
    "Execution",
    # probes
    "Probe",
    "repeated_tokens",
    "repeated_probe",
    "abab_probe",
    "separator_probe",
    "small_vocab_probe",
    "text_probe",
    # the scan
    "scan",
    "ScanResult",
    "loss_by_position",
    "induction_scores",
    "head_attention",
    "half_losses",
    # head scores and their registry
    "head_scores",
    "HeadScores",
    "HeadScore",
    "BUILTIN_SCORES",
    "LogitInputs",
    "ProbeView",
    "ScoreError",
    "register_score",
    "unregister_score",
    "get_score",
    "score_names",
    # detection and ranking
    "detect_heads",
    "HeadDetection",
    "rank_heads",
    # causal validation
    "CausalMetric",
    "as_metric",
    "RowMetric",
    "repeated_half_metric",
    "icl_score",
    "recovery",
    "Pair",
    "repeated_pair",
    "text_pair",
    "HEAD_METHODS",
    "ablate_heads",
    "ablation_sweep",
    "SweepResult",
    "ablation_curve",
    "RandomDraws",
    "CurveResult",
    "patch",
    "HeadSite",
    "ResidualSite",
    "QKVSite",
    "patch_heads",
    "patch_residual",
    "patch_qkv",
    "PatchResult",
    "head_attribution",
    # the induction circuit
    "circuit",
    "CircuitMeasure",
    "Ablation",
    "CircuitResult",
    "composition_scores",
    # how induction heads form
    "TrainSettings",
    "train",
    "find_checkpoints",
    "ProbeSettings",
    "score_checkpoints",
    "CheckpointScores",
    "phase_change",
    # viewing attention
    "attention_view",
    "AttentionView",
    # errors
    "InductionError",
]

_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
