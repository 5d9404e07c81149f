"""The head-score registry: a head score is one small :class:`HeadScore` declaration.

A score says what it reads and how it reduces it to one number per row and head:

- ``reads="pattern"``: ``reduce(pattern, probe) -> [batch, head]`` from a layer's attention
  probabilities ``[batch, head, query, key]`` and the :class:`ProbeView` of the tokens; or,
  better, ``partial(rows, rows_view) -> (total, count)`` from the rows of a chunk of queries
  ``[batch, head, chunk, key]`` and their :class:`ProbeRows` (a mean over queries, summed over
  chunks: see :mod:`~induction_nnsight.scores.reductions`), which the pass runs chunk by chunk,
  so long sequences never build a layer's whole pattern (``reduce`` is then made from it). A
  pattern score reduces each head on its own: on short inputs the pass hands it several layers
  at once, their heads side by side (``[batch, layer * head, query, key]``);
- ``reads="logits"``: ``reduce(pattern, head_input, w_out, unembed, unembed_mean, tokens, center,
  final_scale) -> [batch, head, query]``, a direct effect on the logits before the final norm's
  division (the pass divides by the norm's scale and averages over the repeated copies' queries);
  ``unembed`` is as stored, ``final_scale`` the final norm's ``[d_model]`` multiplier for the rows
  read, ``unembed_mean`` the mean of the scaled rows;
- ``reads="weights"``: ``reduce(w_value, w_out, bridge, n_heads) -> [head]`` from a layer's OV
  weights alone (no tokens).

It also states its value range (which sets the chart's colour scale and the thresholds
:func:`~induction_nnsight.scores.detect.detect_heads` accepts), its unit and its default
threshold. The heads pass runs every registered score in one trace, so a new score shows up
in ``induction-nnsight heads``, its charts and ``detect_heads`` with nothing else to change::

    register_score(HeadScore(
        "self", "attention from each token to itself", "pattern",
        partial=lambda rows, view: diagonal_partial(rows, view.positions, 0),
    ))

A pattern score given only ``reduce`` still works: the pass builds each layer's whole
pattern for it (fine for short sequences; its memory grows with the square of the length).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import InductionError
from ..figures.style import signed as signed_range
from ..probes.tokens import Probe
from .reductions import (
    Partial,
    duplicate_token_mask,
    duplicate_token_rows,
    finish,
    induction_token_mask,
    induction_token_rows,
)

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

    @property
    def positions(self) -> torch.Tensor:
        """``[query]`` every query position."""
        return torch.arange(self.tokens.shape[1], device=self.tokens.device)

    def rows(self, positions: torch.Tensor, n_keys: int) -> ProbeRows:
        """The view of the queries at ``positions`` over the first ``n_keys`` keys."""
        return ProbeRows(self, positions, n_keys)


class ProbeRows:
    """A :class:`ProbeView` cut to the rows of a chunk of queries (what a ``partial`` reduction sees).

    Its masks are made for those rows only (on first use), so none is ``[batch, pos, pos]``.

    Attributes:
        probe: The :class:`~induction_nnsight.probes.tokens.Probe`.
        positions: ``[chunk]`` the query positions.
        n_keys: Keys in the rows (the pattern's rows are cut after the last query).
    """

    def __init__(self, view: ProbeView, positions: torch.Tensor, n_keys: int):
        self.probe = view.probe
        self.positions = positions.to(view.tokens.device)
        self.n_keys = n_keys
        self._view = view
        self._made: dict[str, torch.Tensor] = {}

    _once = ProbeView._once

    @property
    def tokens(self) -> torch.Tensor:
        """``[batch, pos]`` token ids (every position)."""
        return self.probe.tokens

    @property
    def period(self) -> int | None:
        """Distance from a token to its next copy on clean repeats, else None."""
        return self.probe.period

    @property
    def repeat_queries(self) -> torch.Tensor:
        """``[batch, chunk]`` bool: which of these queries lie in the repeated copies."""
        return self._once("repeat_queries", lambda: self._view.repeat_queries[:, self.positions])

    @property
    def duplicate(self) -> torch.Tensor:
        """``[batch, chunk, key]`` bool: earlier keys holding the query's token."""
        return self._once("duplicate", lambda: duplicate_token_rows(self.tokens, self.positions, self.n_keys))

    @property
    def induction(self) -> torch.Tensor:
        """``[batch, chunk, key]`` bool: keys right after an earlier copy of the query's token."""
        return self._once("induction", lambda: induction_token_rows(self.tokens, self.positions, self.n_keys))


def whole_pattern(
    partial: Callable[[torch.Tensor, ProbeRows], Partial],
) -> Callable[[torch.Tensor, ProbeView], torch.Tensor]:
    """A whole-pattern ``reduce(pattern, view) -> [batch, head]`` made from a ``partial`` reduction."""

    def reduce(pattern: torch.Tensor, view: ProbeView) -> torch.Tensor:
        n_query, n_key = pattern.shape[-2:]
        positions = torch.arange(n_query, device=pattern.device) + (n_key - n_query)
        return finish(partial(pattern, view.rows(positions, n_key)))

    return reduce


@dataclass(frozen=True)
class HeadScore:
    """One head score.

    Attributes:
        name: Its name (the ``kind`` of the CLI's ``--kinds`` and of ``detect_heads``).
        description: One line saying what it measures.
        reads: ``"pattern"``, ``"logits"`` or ``"weights"`` (see the module docstring).
        reduce: The reduction (signature by ``reads``); made from ``partial`` when None.
        value_range: ``(low, high)``; None where unbounded. A range below zero charts on a
            diverging scale centred on 0.
        unit: What the numbers are (``"fraction of attention"``, ``"logits"`` ...).
        threshold: Default detection threshold.
        needs_period: Defined only on clean repeats (a probe with a ``period``).
        partial: Pattern scores: ``partial(rows [batch, head, chunk, key], ProbeRows) ->
            (total [batch, head], count)``, the same score by chunks of queries.
        queries: With ``partial``: ``queries(view) -> [query]`` bool, the only queries the
            score counts (None: any). When every score of a pass says so, rows are made for
            those queries only (the induction stripe: the second half).
    """

    name: str
    description: str
    reads: str
    reduce: Callable[..., torch.Tensor] | None = None
    value_range: tuple[float | None, float | None] = (0.0, 1.0)
    unit: str = "fraction of attention"
    threshold: float = 0.4
    needs_period: bool = False
    partial: Callable[[torch.Tensor, ProbeRows], Partial] | None = None
    queries: Callable[[ProbeView], torch.Tensor] | None = None

    def __post_init__(self):
        if self.reads not in READS:
            raise InductionError(f"score {self.name!r} reads {self.reads!r}: pass reads= one of {', '.join(READS)}")
        if self.partial is not None and self.reads != "pattern":
            raise InductionError(f"score {self.name!r}: only pattern scores take partial=; pass reduce= instead")
        if self.reduce is None:
            if self.partial is None:
                raise InductionError(
                    f"score {self.name!r} has no reduction: pass reduce= (or partial= for a pattern score)"
                )
            object.__setattr__(self, "reduce", whole_pattern(self.partial))
        if not self.name.isidentifier():
            raise InductionError(f"score name {self.name!r} must be an identifier, such as 'self_attention'")

    @property
    def signed(self) -> bool:
        """Whether the score can be negative (charted on a diverging scale).

        See :func:`~induction_nnsight.figures.style.signed`.
        """
        return signed_range(self.value_range)

    def check_threshold(self, threshold: float) -> None:
        """Refuse a threshold outside the score's value range.

        Raises:
            InductionError: Naming the range.
        """
        low, high = self.value_range
        if threshold != threshold or (low is not None and threshold < low) or (high is not None and threshold > high):
            shown = f"[{'-inf' if low is None else low:g}, {'inf' if high is None else high:g}]"
            raise InductionError(
                f"--threshold {threshold} is outside the {self.name} score's range {shown}: pass a threshold within it"
            )


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
