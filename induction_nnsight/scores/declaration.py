"""What a head score is: one small :class:`HeadScore` declaration, and what its reduction reads.

A score says what it reads and how it reduces it to one number per row and head:

- ``reads="pattern"``: best, ``partial(rows, view) -> (total, count)`` from the rows of a chunk
  of queries ``[batch, head, chunk, key]`` (attention probabilities) and their
  :class:`ProbeRows` (a mean over queries, summed over chunks: see
  :mod:`~induction_nnsight.scores.reductions`), which the pass runs chunk by chunk, so long
  sequences never build a layer's whole pattern; or, the fallback for short inputs,
  ``reduce(pattern, view) -> [batch, head]`` from a layer's whole pattern
  ``[batch, head, query, key]`` and the :class:`ProbeView` of the tokens (made from ``partial``
  when only that is given). A pattern score reduces each head on its own: on short inputs the
  pass hands it several layers at once, their heads side by side (``[batch, layer * head, ...]``);
- ``reads="logits"``: ``reduce(inputs) -> [batch, head, chunk]`` from one :class:`LogitInputs`
  (a layer's rows, head outputs, unembedding ... at one chunk of queries), a direct effect on
  the logits before the final norm's division; the score lists the fields it reads in
  ``inputs`` (the pass makes only those) and the queries it averages over in ``queries``;
- ``reads="weights"``: ``reduce(w_value, w_out, bridge, n_heads) -> [head]`` from a layer's OV
  weights alone (no tokens): a weight-only (static) score.

It also states its value range (which sets the chart's colour scale and the thresholds
:func:`~induction_nnsight.scores.detect.detect_heads` accepts), its unit and its default
threshold. Pass the object itself to :func:`~induction_nnsight.scores.heads.head_scores`
(``kinds=[..., score]``) or :func:`~induction_nnsight.scores.detect.detect_heads`; register it
(:func:`~induction_nnsight.scores.registry.register_score`) only for the CLI's ``--kinds``.

A reduction that raises is re-raised as a :class:`ScoreError` naming the score, the layer, the
query chunk and the shapes of what it was given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from ..errors import InductionError
from ..figures.style import signed as signed_range
from .reductions import Partial
from .views import ProbeRows, ProbeView, whole_pattern

__all__ = ["READS", "LOGIT_INPUTS", "HeadScore", "LogitInputs", "ScoreError", "call_reduction", "describe"]

READS = ("pattern", "logits", "weights")


@dataclass(frozen=True)
class LogitInputs:
    """What a logit score's ``reduce(inputs) -> [batch, head, chunk]`` may read: one layer at one chunk
    of queries. Fields the score does not list in :attr:`HeadScore.inputs` are None (never made).

    Attributes:
        pattern: ``[batch, head, chunk, key]`` attention probabilities of the chunk's queries.
        positions: ``[chunk]`` the queries' positions.
        head_input: ``[batch, chunk, head * d_head]`` the input of the output projection there.
        w_out: ``[d_model, head * d_head]`` the output projection.
        tokens: ``[batch, pos]`` token ids.
        center: The final norm subtracts the mean over ``d_model`` (LayerNorm; RMSNorm does not).
        unembed: ``[vocab, d_model]`` the unembedding as stored: multiply the rows you read by
            ``final_scale`` (no vocabulary-sized copy is made).
        final_scale: ``[d_model]`` the final norm's multiplier (1.0 without one).
        unembed_mean: ``[d_model]`` the mean over the vocabulary of the rows scaled by ``final_scale``.

    What several scores derive alike from one chunk is made once for all of them (:meth:`once`):
    ``anti_induction`` reads the copying boost that ``copying`` makes, and its token mask is made once
    for every layer.
    """

    pattern: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    head_input: torch.Tensor | None = None
    w_out: torch.Tensor | None = None
    tokens: torch.Tensor | None = None
    center: bool | None = None
    unembed: torch.Tensor | None = None
    final_scale: torch.Tensor | float | None = None
    unembed_mean: torch.Tensor | None = None

    def __post_init__(self):
        # what this chunk's scores derive from it (see once): not fields, so replace() starts afresh
        object.__setattr__(self, "_made", {})
        object.__setattr__(self, "_made_at_queries", {})

    def once(self, name: str, make: Callable[[], Any], *, every_layer: bool = False) -> Any:
        """``make()`` the first time a score of this chunk asks for ``name``; the same value after.

        Args:
            name: Stands for one function of the chunk's inputs (``"copying_boost"``); every score of the
                chunk gets the value the first one made (see :meth:`declared`).
            make: Makes it.
            every_layer: It reads only ``tokens`` and ``positions`` (a token mask), so the heads pass makes
                it once for these queries and hands it to every layer.
        """
        made = self._made_at_queries if every_layer else self._made
        if name not in made:
            made[name] = make()
        return made[name]

    def declared(self, score: HeadScore, at_queries: dict | None = None) -> LogitInputs:
        """These inputs with the fields ``score`` does not declare set to None, sharing :meth:`once`'s values.

        Args:
            at_queries: Where the values :meth:`once` makes ``every_layer`` are kept: one dict per chunk of
                queries for the whole pass (None: this chunk's own).
        """
        narrowed = replace(self, **{name: None for name in LOGIT_INPUTS if not score.reads_input(name)})
        object.__setattr__(narrowed, "_made", self._made)
        object.__setattr__(narrowed, "_made_at_queries", self._made_at_queries if at_queries is None else at_queries)
        return narrowed


LOGIT_INPUTS = tuple(f.name for f in fields(LogitInputs))
"""Every field a logit score may list in :attr:`HeadScore.inputs`."""
AXES = {
    "pattern": "batch head query key",
    "rows": "batch head chunk key",
    "positions": "chunk",
    "head_input": "batch chunk head_d_head",
    "w_out": "d_model head_d_head",
    "tokens": "batch pos",
    "unembed": "vocab d_model",
    "final_scale": "d_model",
    "unembed_mean": "d_model",
    "w_value": "kv_head d_head d_model",
    "bridge": "d_model d_model",
}
"""The axis names of each input a reduction may get, for the shapes its errors name."""


class ScoreError(InductionError):
    """A score's own reduction raised; the message names the score, the layer, the query chunk and the
    shapes of the inputs (the original exception is its ``__cause__``)."""


def describe(**inputs: Any) -> str:
    """The inputs of a reduction, einops-style: ``rows [batch=2, head=4, chunk=7, key=25], ...``."""
    shown = []
    for name, value in inputs.items():
        if isinstance(value, LogitInputs):
            shown.append(describe(**{f: getattr(value, f) for f in LOGIT_INPUTS if getattr(value, f) is not None}))
        elif isinstance(value, torch.Tensor):
            axes = AXES.get(name, "").split()
            sizes = [f"{axis}={n}" for axis, n in zip(axes, value.shape)] if len(axes) == value.ndim else []
            shown.append(f"{name} [{', '.join(sizes or map(str, value.shape))}]")
        elif isinstance(value, (ProbeView, ProbeRows)):
            shown.append(
                f"{name} {type(value).__name__}(tokens [batch={value.tokens.shape[0]}, pos={value.tokens.shape[1]}])"
            )
        else:
            shown.append(f"{name}={value!r}")
    return ", ".join(shown)


def call_reduction(
    score: HeadScore, reduction: Callable[..., Any], where: str | Callable[[], str], **inputs: Any
) -> Any:
    """``reduction(*inputs.values())``; an exception it raises is re-raised as a :class:`ScoreError`.

    Args:
        score: The score whose reduction runs (named in the error).
        reduction: Its ``reduce`` or ``partial``.
        where: Which layer(s) and query chunk, e.g. ``"layer 1, queries 0:7"`` (or a function making it,
            called only on an error: no device sync on the way).
        inputs: The reduction's arguments, by name (their shapes are named in the error).

    Raises:
        ScoreError: Chained (``from``) to what the reduction raised.
    """
    try:
        return reduction(*inputs.values())
    except ScoreError:
        raise
    except Exception as error:
        place = where() if callable(where) else where
        raise ScoreError(
            f"score {score.name!r} ({score.reads}) raised at {place} on {describe(**inputs)}: "
            f"{type(error).__name__}: {error}; fix its {'partial' if reduction is score.partial else 'reduce'}"
        ) from error


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
        queries: Pattern scores with ``partial``: ``queries(view) -> [query]`` bool, the only
            queries the score counts (None: any); when every score of a pass says so, rows are
            made for those queries only (the induction stripe: the second half). Logit scores:
            ``queries(view) -> [batch, query]`` bool, the queries its values are averaged over
            (None: every one).
        inputs: Logit scores: the :class:`LogitInputs` fields ``reduce`` reads (None: every one);
            the pass makes only those and leaves the others None.
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
    inputs: tuple[str, ...] | None = None

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
        if self.inputs is not None:
            unknown = [name for name in self.inputs if name not in LOGIT_INPUTS]
            if self.reads != "logits" or unknown:
                raise InductionError(
                    f"score {self.name!r}: inputs= lists LogitInputs fields of a logit score"
                    f"{f', not {unknown}' if unknown else ''}: pass names from {', '.join(LOGIT_INPUTS)}"
                )
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

    def reads_input(self, name: str) -> bool:
        """Whether this logit score reads the :class:`LogitInputs` field ``name``."""
        return self.inputs is None or name in self.inputs
