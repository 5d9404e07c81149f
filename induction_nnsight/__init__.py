"""Find and explain induction heads in transformer language models with nnsight."""

from .errors import InductionError
from .models import DEFAULT_MODEL, load_model, model_facts
from .scan import ScanResult, half_losses, induction_scores, loss_by_position, scan
from .tokens import repeated_tokens

__all__ = [
    "DEFAULT_MODEL",
    "InductionError",
    "ScanResult",
    "half_losses",
    "induction_scores",
    "load_model",
    "loss_by_position",
    "model_facts",
    "repeated_tokens",
    "scan",
]
