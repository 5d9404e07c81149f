"""What a pattern score reads besides the attention probabilities: the probe's tokens and their masks.

A :class:`ProbeView` is made once per pass; :class:`ProbeRows` cuts it to the rows of one chunk of
queries (what a ``partial`` reduction sees), so no mask is ever ``[batch, pos, pos]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..probes.tokens import Probe
from .reductions import (
    Partial,
    duplicate_token_mask,
    duplicate_token_rows,
    finish,
    induction_token_mask,
    induction_token_rows,
)

__all__ = ["ProbeRows", "ProbeView", "whole_pattern"]


class _OfProbe:
    """What :class:`ProbeView` and :class:`ProbeRows` share: the probe's tokens and period, and masks made once."""

    probe: Probe
    # A plain dict, not functools.cached_property: that holds a lock, which cannot travel to NDIF.
    _made: dict[str, torch.Tensor]

    def _once(self, name: str, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        if name not in self._made:
            self._made[name] = make()
        return self._made[name]

    @property
    def tokens(self) -> torch.Tensor:
        """``[batch, pos]`` token ids (every position, in a chunk's rows too)."""
        return self.probe.tokens

    @property
    def period(self) -> int | None:
        """Distance from a token to its next copy on clean repeats, else None."""
        return self.probe.period


class ProbeView(_OfProbe):
    """What a pattern score sees besides the pattern: the probe and its token masks, each made once.

    Attributes:
        probe: The :class:`~induction_nnsight.probes.tokens.Probe`.
        tokens: ``[batch, pos]`` its token ids (read-only, as ``period``).
        period: Distance from a token to its next copy on clean repeats, else None.
    """

    def __init__(self, probe: Probe):
        self.probe = probe
        self._made = {}

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


class ProbeRows(_OfProbe):
    """A :class:`ProbeView` cut to the rows of a chunk of queries (what a ``partial`` reduction sees).

    Its masks are made for those rows only (on first use), so none is ``[batch, pos, pos]``.

    Attributes:
        probe: The :class:`~induction_nnsight.probes.tokens.Probe`.
        tokens: ``[batch, pos]`` its token ids, every position (read-only, as ``period``).
        period: Distance from a token to its next copy on clean repeats, else None.
        positions: ``[chunk]`` the query positions.
        n_keys: Keys in the rows (the pattern's rows are cut after the last query).
    """

    def __init__(self, view: ProbeView, positions: torch.Tensor, n_keys: int):
        self.probe = view.probe
        self.positions = positions.to(view.tokens.device)
        self.n_keys = n_keys
        self._view = view
        self._made: dict[str, torch.Tensor] = {}
        self._of_rows: dict[str, tuple[torch.Tensor, Any]] = {}  # name -> (the rows it was made from, value)

    def once_for(self, rows: torch.Tensor, name: str, make: Callable[[], Any]) -> Any:
        """``make()`` once for these very ``rows``: what several scores of a chunk reduce alike
        (``induction_exact`` and ``prefix_matching``: the attention on the induction keys) is made once.

        ``name`` stands for one function of the rows and this view; other rows get their own.
        """
        held = self._of_rows.get(name)
        if held is None or held[0] is not rows:
            held = self._of_rows[name] = (rows, make())
        return held[1]

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
