"""Find and explain induction heads in transformer language models with nnsight.

The names below are the public API, grouped as the data flows: load a model (and say where
its parts live when they are unusually named), make a probe, score every head in one pass
(the registry says which scores exist), detect and rank heads, then test them causally.
Everything else lives in the subpackages (:mod:`~induction_nnsight.models`,
:mod:`~induction_nnsight.probes`, :mod:`~induction_nnsight.training`, :mod:`~induction_nnsight.ndif`,
:mod:`~induction_nnsight.scores`, :mod:`~induction_nnsight.dynamics`, :mod:`~induction_nnsight.causal`,
:mod:`~induction_nnsight.app`). Importing the package imports
those modules and does nothing else.
"""

from .app.attention_view import AttentionView, attention_view
from .causal.ablation import (
    CurveResult,
    RandomDraws,
    SweepResult,
    ablate_heads,
    ablation_curve,
    ablation_sweep,
    repeated_half_metric,
)
from .causal.attribution import head_attribution
from .causal.circuit import CircuitMeasure, CircuitResult, circuit
from .causal.composition import composition_scores
from .causal.head_outputs import HEAD_METHODS
from .causal.metrics import RowMetric, icl_score, recovery
from .causal.pairs import Pair, repeated_pair, text_pair
from .causal.patch_results import PatchResult
from .causal.patching import patch_heads, patch_qkv, patch_residual
from .causal.path_patching import Ablation
from .dynamics.checkpoints import find_checkpoints
from .dynamics.phase import phase_change
from .dynamics.results import CheckpointScores
from .dynamics.scoring import ProbeSettings, score_checkpoints
from .errors import InductionError
from .models.layout import ModelLayout, model_facts, model_layout
from .models.loading import DEFAULT_MODEL, load_model
from .models.validation import set_layout
from .ndif.execution import Execution
from .probes.tokens import (
    Probe,
    abab_probe,
    repeated_probe,
    repeated_tokens,
    separator_probe,
    small_vocab_probe,
    text_probe,
)
from .scores.builtin import BUILTIN_SCORES
from .scores.declaration import HeadScore, LogitInputs, ScoreError
from .scores.detect import HeadDetection, detect_heads
from .scores.heads import HeadScores, head_scores
from .scores.losses import half_losses
from .scores.ranking import rank_heads
from .scores.registry import get_score, register_score, score_names, unregister_score
from .scores.scan import ScanResult, head_attention, induction_scores, loss_by_position, scan
from .scores.views import ProbeView
from .training.config import TrainSettings
from .training.loop import train

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
