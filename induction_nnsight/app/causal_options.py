"""What the causal jobs (``ablate``, ``circuit``; ``patch`` takes ``--seeds``) share: how a head is
removed, how many independent token draws, and how their rows are made.

A seed is a probe concern (which tokens), so it lives on the config beside ``--seed``, not on
the :class:`~induction_nnsight.ndif.execution.Execution` (how traces run): ``--seeds N`` draws the
rows with seeds ``seed .. seed + N - 1`` and pools them (N independent draws of the same
distribution; each costs what one run costs). The reference rows of ``mean`` and the draws of
``resample`` come from seeds no token draw uses (:data:`REFERENCE_SEED`, :data:`RESAMPLE_SEED`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..causal.ablation.method import DEFAULT_REFERENCE_ROWS, DEFAULT_RESAMPLE_DRAWS, METHODS, Ablation
from ..errors import InductionError
from ..models.layout import model_facts
from ..probes.tokens import repeated_tokens
from ..stats import CORRECTION, INTERVAL_METHOD
from .jobs import ScanConfig, scan_tokens
from .options import option, positive

__all__ = ["REFERENCE_SEED", "RESAMPLE_SEED", "CausalConfig", "SeededConfig", "ablation_for", "pooled_tokens"]

REFERENCE_SEED = 1_000_003
"""Offset of the seed of the ``mean`` reference rows from ``--seed``."""
RESAMPLE_SEED = 2_000_003
"""Offset of the seed of the ``resample`` draws from ``--seed``."""


@dataclass
class SeededConfig(ScanConfig):
    """A job's token settings with ``--seeds``."""

    seeds: int = option(
        1, help="independent token draws (seeds seed..seed+N-1), their rows pooled for the intervals", parse=positive
    )

    def describe_seeds(self) -> str:
        """`` x 3 seeds`` (empty for one seed), to follow :meth:`~.jobs.ScanConfig.describe_tokens`."""
        return f" x {self.seeds} seeds" if self.seeds > 1 else ""

    def interval_settings(self) -> dict:
        """What the JSON ``settings`` record about the intervals."""
        return {"rows": self.batch * self.seeds, "interval": INTERVAL_METHOD, "correction": CORRECTION}


@dataclass
class CausalConfig(SeededConfig):
    """:class:`SeededConfig` with how a head is removed."""

    method: str = option(
        "zero",
        help="zero: set a head's output to 0; mean: to its mean over --reference-rows rows; resample: to its "
        "output on another random-token row, averaged over --resample-draws draws",
        choices=METHODS,
    )
    reference_rows: int = option(DEFAULT_REFERENCE_ROWS, help="rows whose mean replaces a head (mean)", parse=positive)
    resample_draws: int = option(DEFAULT_RESAMPLE_DRAWS, help="draws averaged over (resample)", parse=positive)
    keep_bos: bool = option(False, help="leave position 0 (BOS) untouched when a head is removed")

    def describe_method(self) -> str:
        """``mean (64 rows)``, ``resample (3 draws)``, ``zero, BOS kept``, ``zero, norm frozen``."""
        rows = {"mean": f" ({self.reference_rows} rows)", "resample": f" ({self.resample_draws} draws)"}
        frozen = getattr(self, "freeze_norm", False)
        extra = (", BOS kept" if self.keep_bos else "") + (", norm frozen" if frozen else "")
        return self.method + rows.get(self.method, "") + extra

    def validate_method(self) -> None:
        """Check the method's settings (before a model is loaded)."""
        if self.method not in METHODS:
            raise InductionError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.keep_bos and not self.bos:
            raise InductionError("--keep-bos keeps the BOS position: drop it, or drop --no-bos")


def pooled_tokens(model, config: SeededConfig) -> torch.Tensor:
    """``[seeds * batch, pos]``: the rows of each seed, one draw after the other."""
    return torch.cat([scan_tokens(model, replace(config, seed=config.seed + i, seeds=1)) for i in range(config.seeds)])


def _rows(model, config: ScanConfig, n: int, seed: int) -> torch.Tensor:
    facts = model_facts(model)
    bos = facts.bos_token_id if config.bos else None
    return repeated_tokens(n, config.seq_len, seed=seed, low=config.low, high=config.high, bos_token_id=bos)


def ablation_for(model, config: CausalConfig, tokens: torch.Tensor, freeze_norm: bool = False) -> Ablation:
    """The :class:`~induction_nnsight.causal.ablation.method.Ablation` ``config`` asks for, with its rows
    (``mean``: ``reference_rows`` rows; ``resample``: ``resample_draws`` draws of as many rows as ``tokens``)."""
    source = None
    if config.method == "mean":
        source = _rows(model, config, config.reference_rows, config.seed + REFERENCE_SEED)
    elif config.method == "resample":
        source = _rows(model, config, config.resample_draws * tokens.shape[0], config.seed + RESAMPLE_SEED)
    return Ablation(config.method, source, keep_bos=config.keep_bos, freeze_norm=freeze_norm)
