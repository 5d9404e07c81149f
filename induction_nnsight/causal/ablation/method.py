"""How a head is removed: one object for ``ablate``, ``circuit`` and path patching.

* ``zero``: the head's output set to zero (everywhere: its output is then off-distribution);
* ``mean``: its mean over a reference set of rows of the same distribution at each position
  (keeps the head's average contribution, removes what depends on this input);
* ``resample``: its output on another row of the same distribution (a different random-token
  draw), row by row, averaged over several draws (removes the information the head carries
  about *this* row while keeping its output on-distribution; the IOI line of work's choice).

``keep_bos`` leaves position 0 (the BOS / attention-sink position) untouched, so a head that
writes there is not confounded with what it does on the tokens; ``freeze_norm`` (path patching)
keeps the clean norm scale at the target's input.

>>> Ablation().method, Ablation("zero", keep_bos=True).keep_bos
('zero', True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import InductionError
from ..head_weights import SENDER_NORMS

__all__ = ["DEFAULT_REFERENCE_ROWS", "DEFAULT_RESAMPLE_DRAWS", "METHODS", "Ablation"]

METHODS = ("zero", "mean", "resample")
DEFAULT_REFERENCE_ROWS = 64
"""Rows of the reference set whose mean replaces a head under ``mean``."""
DEFAULT_RESAMPLE_DRAWS = 3
"""Draws a ``resample`` ablation averages over."""


@dataclass(frozen=True)
class Ablation:
    """How a head's output is removed.

    Attributes:
        method: ``"zero"``, ``"mean"`` or ``"resample"``.
        source: ``mean``: ``[n_ref, pos]`` reference rows (their mean at each position replaces the
            head). ``resample``: ``[draws * batch, pos]`` rows; draw ``d``'s row ``i`` replaces row
            ``i`` (the rows of a draw are a different random-token draw of the same distribution).
        keep_bos: Leave position 0 untouched.
        freeze_norm: Path patching only: the target's pre-attention norm keeps the clean scale
            (``1 / rms`` of the clean residual) instead of recomputing it on the patched residual.
        sender_norm: Path patching in post-norm blocks (Gemma 2/3, OLMo-2): how a sender's removal reaches
            the residual through its own post-attention norm on ``k``/``q``/``v`` paths: ``"recompute"``
            (the norm recomputed without the sender, the default) or ``"frozen"`` (the clean norm scale
            kept: linear); see :func:`~induction_nnsight.causal.head_weights.sender_delta`. Ignored in
            pre-norm blocks.

    Raises:
        InductionError: On an unknown method, or ``mean``/``resample`` without rows.
    """

    method: str = "zero"
    source: torch.Tensor | None = None
    keep_bos: bool = False
    freeze_norm: bool = False
    sender_norm: str = "recompute"

    def __post_init__(self) -> None:
        if self.sender_norm not in SENDER_NORMS:
            raise InductionError(f"unknown sender norm {self.sender_norm!r}: pass one of {', '.join(SENDER_NORMS)}")
        if self.method not in METHODS:
            raise InductionError(f"unknown method {self.method!r}: pass one of {', '.join(METHODS)}")
        if self.method != "zero" and self.source is None:
            raise InductionError(f"{self.method} ablation needs reference rows as long as the tokens")

    @property
    def reference(self) -> torch.Tensor | None:
        """The rows whose outputs replace a head's (None under zero ablation)."""
        return None if self.method == "zero" else self.source

    def estimated(self, batch: int) -> tuple[str, torch.Tensor | None]:
        """The ``(method, source)`` a first-order head estimate takes for this removal: ``resample`` is
        estimated against its first draw (each row's head output from the same row of that draw);
        ``keep_bos`` is not part of the estimate."""
        if self.method == "resample":
            return "source", self.draws(batch)[0]
        return self.method, self.reference

    def draws(self, batch: int) -> list[torch.Tensor]:
        """``resample``: the ``[batch, pos]`` rows of each draw.

        Raises:
            InductionError: When the rows are not a whole number of draws of ``batch`` rows.
        """
        if self.method != "resample":
            raise ValueError("draws() is for resample ablation")
        n = self.source.shape[0]
        if n < batch or n % batch:
            raise InductionError(
                f"resample ablation needs whole draws of {batch} rows, got {n} rows: pass draws x batch rows"
            )
        return [self.source[i : i + batch] for i in range(0, n, batch)]

    def check(self, tokens: torch.Tensor) -> None:
        """Refuse reference rows of another length than ``tokens [batch, pos]``."""
        if self.source is not None and self.method != "zero" and self.source.shape[1] != tokens.shape[1]:
            raise InductionError(
                f"the reference rows have {self.source.shape[1]} positions, the tokens {tokens.shape[1]}: "
                f"{self.method} ablation replaces a head position by position, so give both the same length"
            )
        if self.method == "resample":
            self.draws(tokens.shape[0])
