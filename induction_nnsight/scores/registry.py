"""The head-score registry: names for the CLI's ``--kinds``, and the one place names become scores.

Python callers need no registry: pass a :class:`~induction_nnsight.scores.declaration.HeadScore`
itself to :func:`~induction_nnsight.scores.heads.head_scores` (``kinds=[..., score]``) or
:func:`~induction_nnsight.scores.detect.detect_heads`. A name, where one is given instead, is
looked up here (:func:`resolve_score`). The registry holds the built-in scores
(:data:`~induction_nnsight.scores.builtin.BUILTIN_SCORES`, loaded on first use, not on import)
and whatever :func:`register_score` adds, which the CLI's ``heads`` job then offers and
computes::

    register_score(HeadScore(
        "self", "attention from each token to itself", "pattern",
        partial=lambda rows, view: diagonal_partial(rows, view.positions, 0),
    ))

Two names for two sets: :data:`~induction_nnsight.scores.builtin.BUILTIN_SCORES` are the
built-in declarations, always the same; :func:`score_names` lists what is registered now
(the built-in ones first, then any added).
"""

from __future__ import annotations

from ..errors import InductionError
from .declaration import HeadScore
from .views import ProbeView

__all__ = ["HeadScore", "ProbeView", "get_score", "register_score", "resolve_score", "score_names", "unregister_score"]

_REGISTRY: dict[str, HeadScore] = {}


def _registry() -> dict[str, HeadScore]:
    """The registry, the built-in scores loaded into it on first use (not on import)."""
    if not _REGISTRY:
        from .builtin import BUILTIN_SCORES  # imported late: loading the registry loads no scores

        _REGISTRY.update({score.name: score for score in BUILTIN_SCORES})
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
    """Names of every registered score, in registration order: the built-in ones
    (:data:`~induction_nnsight.scores.builtin.BUILTIN_SCORES`) first, then any added by
    :func:`register_score`."""
    return tuple(_registry())


def resolve_score(kind: str | HeadScore) -> HeadScore:
    """``kind`` itself when it is a :class:`HeadScore`, else the registered score of that name.

    Raises:
        InductionError: For an unknown name (listing the known ones) or anything else.
    """
    if isinstance(kind, HeadScore):
        return kind
    if not isinstance(kind, str):
        raise InductionError(f"a score kind is a name or a HeadScore, not {type(kind).__name__}: pass one of those")
    return get_score(kind)
