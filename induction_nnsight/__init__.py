"""Find and explain induction heads in transformer language models with nnsight."""

from .scores.detect import HeadDetection, detect_heads
from .errors import InductionError
from .scores.heads import HEAD_KINDS, HeadScores, head_scores
from .models.layout import ModelLayout, model_layout, model_facts, set_layout
from .models.loading import DEFAULT_MODEL, load_model
from .scores.losses import half_losses
from .scores.scan import ScanResult, head_attention, induction_scores, loss_by_position, scan
from .probes.tokens import (
    Probe,
    abab_pattern,
    repeated_pattern,
    repeated_tokens,
    separator_pattern,
    small_vocab_pattern,
    text_pattern,
)

__all__ = [
    "DEFAULT_MODEL",
    "HEAD_KINDS",
    "HeadDetection",
    "HeadScores",
    "InductionError",
    "Probe",
    "ScanResult",
    "abab_pattern",
    "detect_heads",
    "half_losses",
    "head_attention",
    "head_scores",
    "induction_scores",
    "load_model",
    "loss_by_position",
    "model_facts",
    "repeated_pattern",
    "repeated_tokens",
    "scan",
    "separator_pattern",
    "small_vocab_pattern",
    "text_pattern",
]
