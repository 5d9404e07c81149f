"""The head-score registry: a head score is one small :class:`HeadScore` declaration.

A score says what it reads and how it reduces it to one number per row and head:

- ``reads="pattern"``: ``reduce(pattern, probe) -> [batch, head]`` from a layer's attention
  probabilities ``[batch, head, query, key]`` and the :class:`ProbeView` of the tokens;
- ``reads="logits"``: ``reduce(pattern, head_input, w_out, unembed, unembed_mean, tokens, center)
  -> [batch, head, query]``, a direct effect on the logits before the final norm's scaling
  (the pass divides by that scale and averages over the repeated copies' queries);
- ``reads="weights"``: ``reduce(w_value, w_out, bridge, n_heads) -> [head]`` from a layer's OV
  weights alone (no tokens).

It also states its value range (which sets the chart's colour scale and the thresholds
:func:`~induction_nnsight.scores.detect.detect_heads` accepts), its unit and its default
threshold. The heads pass runs every registered score in one trace, so a new score shows up
in ``induction-nnsight heads``, its charts and ``detect_heads`` with nothing else to change::

    register_score(HeadScore(
        "self", "attention from each token to itself", "pattern",
        lambda pattern, probe: diagonal_score_per_row(pattern, 0),
    ))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import InductionError
from ..probes.tokens import Probe
from .reductions import duplicate_token_mask, induction_token_mask

READS = ("pattern", "logits", "weights")


class ProbeView:
    """What a pattern score sees besides the pattern: the probe and its token masks, each made once.

    Attributes:
        probe: The :class:`~induction_nnsight.probes.tokens.Probe`.
    """

    def __init__(self, probe: Probe):
        self.probe = probe
        # A plain dict, not functools.cached_property: that holds a lock, which cannot travel to NDIF.
        self._made: dict[str, torch.Tensor] = {}

    def _once(self, name: str, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        if name not in self._made:
            self._made[name] = make()
        return self._made[name]

    @property
    def tokens(self) -> torch.Tensor:
        """``[batch, pos]`` token ids."""
        return self.probe.tokens

    @property
    def period(self) -> int | None:
        """Distance from a token to its next copy on clean repeats, else None."""
        return self.probe.period

    @property
    def repeat_queries(self) -> torch.Tensor:
        """``[batch, query]`` bool: queries in the repeated copies."""
        return self._once("repeat_queries", lambda: self.probe.repeat_queries)

    @property
    def duplicate(self) -> torch.Tensor:
        """``[batch, query, key]`` bool: earlier keys holding the query's token."""
        return self._once("duplicate", lambda: duplicate_token_mask(self.tokens))

    @property
    def induction(self) -> torch.Tensor:
        """``[batch, query, key]`` bool: keys right after an earlier copy of the query's token."""
        return self._once("induction", lambda: induction_token_mask(self.tokens))


@dataclass(frozen=True)
class HeadScore:
    """One head score.

    Attributes:
        name: Its name (the ``kind`` of the CLI's ``--kinds`` and of ``detect_heads``).
        description: One line saying what it measures.
        reads: ``"pattern"``, ``"logits"`` or ``"weights"`` (see the module docstring).
        reduce: The reduction (signature by ``reads``).
        value_range: ``(low, high)``; None where unbounded. A range below zero charts on a
            diverging scale centred on 0.
        unit: What the numbers are (``"fraction of attention"``, ``"logits"`` ...).
        threshold: Default detection threshold.
        needs_period: Defined only on clean repeats (a probe with a ``period``).
    """

    name: str
    description: str
    reads: str
    reduce: Callable[..., torch.Tensor]
    value_range: tuple[float | None, float | None] = (0.0, 1.0)
    unit: str = "fraction of attention"
    threshold: float = 0.4
    needs_period: bool = False

    def __post_init__(self):
        if self.reads not in READS:
            raise InductionError(f"score {self.name!r} reads {self.reads!r}: pass reads= one of {', '.join(READS)}")
        if not self.name.isidentifier():
            raise InductionError(f"score name {self.name!r} must be an identifier, such as 'self_attention'")

    @property
    def signed(self) -> bool:
        """Whether the score can be negative (charted on a diverging scale)."""
        low = self.value_range[0]
        return low is None or low < 0

    def check_threshold(self, threshold: float) -> None:
        """Refuse a threshold outside the score's value range.

        Raises:
            InductionError: Naming the range.
        """
        low, high = self.value_range
        if threshold != threshold or (low is not None and threshold < low) or (high is not None and threshold > high):
            shown = f"[{'-inf' if low is None else low:g}, {'inf' if high is None else high:g}]"
            raise InductionError(f"--threshold {threshold} is outside the {self.name} score's range {shown}: "
                                 "pass a threshold within it")


_REGISTRY: dict[str, HeadScore] = {}


def _registry() -> dict[str, HeadScore]:
    """The registry, the built-in scores loaded into it on first use (not on import)."""
    from . import builtin  # noqa: F401  (registers the built-in scores once)

    return _REGISTRY


def register_score(score: HeadScore, *, replace: bool = False) -> HeadScore:
    """Add ``score`` to the registry; every later heads pass computes it.

    Args:
        score: The declaration.
        replace: Allow replacing a registered score of the same name.

    Returns:
        ``score``.

    Raises:
        InductionError: When the name is taken and ``replace`` is False.
    """
    registry = _registry()
    if score.name in registry and not replace:
        raise InductionError(f"a score named {score.name!r} is registered already: pass replace=True or rename it")
    registry[score.name] = score
    return score


def unregister_score(name: str) -> None:
    """Remove a registered score (a no-op for an unknown name)."""
    _registry().pop(name, None)


def get_score(name: str) -> HeadScore:
    """The registered score called ``name``.

    Raises:
        InductionError: For an unknown name, listing the known ones.
    """
    registry = _registry()
    try:
        return registry[name]
    except KeyError:
        raise InductionError(f"unknown head score {name!r}: pass one of {', '.join(registry)}") from None


def score_names() -> tuple[str, ...]:
    """Names of every registered score, in registration order (the built-in ones first)."""
    return tuple(_registry())
