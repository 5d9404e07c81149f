"""Composition scores from weights (Elhage et al. 2021): how much an earlier head's output can
feed a later head's queries (Q), keys (K) or values (V).

With a source head's OV circuit ``OV_s = W_O^s W_V^s`` and a target's QK circuit
``QK_t = W_Q^t^T W_K^t`` (column-vector convention, each ``[d_model, d_model]``, norm weights
folded into the reading matrices) the scores are

- K: ``||QK_t OV_s||_F / (||QK_t||_F ||OV_s||_F)`` (the source writes what the target's keys read),
- Q: ``||OV_s^T QK_t||_F / (||QK_t||_F ||OV_s||_F)`` (... what its queries read),
- V: ``||OV_t OV_s||_F / (||OV_t||_F ||OV_s||_F)`` (... what its values read),

the same numbers as ARENA's ``get_comp_score`` in TransformerLens' row-vector convention. Under
rotary positions the real QK circuit is ``W_Q^T R(j - i) W_K``, a different matrix at every
relative distance; these scores use the unrotated ``W_Q^T W_K`` (distance 0). Grouped-query
attention: a query head reads the key/value head of its group. The baseline is the mean score of
random Gaussian matrices of the same shapes and ranks (``d_model x d_head`` factors), a few
seeded draws; a score well above it means the weights line up more than chance.

Every product is computed through ``d_head x d_head`` Gram matrices, never ``d_model x d_model``
products: ``||L M R||_F^2 = tr(M^T (L^T L) M (R R^T))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .head_weights import head_matrices

Head = tuple[int, int]
COMPOSITION_PATHS = ("q", "k", "v")


@dataclass(frozen=True)
class CompositionRow:
    """One (source, target, path) composition score and its random baseline."""

    source: Head
    target: Head
    path: str
    score: float
    baseline: float


def _sq_norm(left: torch.Tensor, middle: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``||left @ middle @ right||_F^2`` from small Gram matrices (``left [a, m]``, ``right [n, b]``)."""
    return torch.trace(middle.T @ (left.T @ left) @ middle @ (right @ right.T))


def composition_score(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], path: str) -> float:
    """One composition score from :func:`~induction_nnsight.causal.head_weights.head_matrices` dicts.

    Args:
        source: ``{"v": [d_head, d_model], "o": [d_model, d_head], ...}`` of the earlier head.
        target: ``{"q", "k", "v": [d_head, d_model], "o": [d_model, d_head]}`` of the later head.
        path: ``"q"``, ``"k"`` or ``"v"``.

    Returns:
        The score in ``[0, 1]``.
    """
    o_s, v_s = source["o"].double(), source["v"].double()
    ov_sq = _sq_norm(o_s, torch.eye(o_s.shape[1], dtype=o_s.dtype), v_s)
    if path == "v":
        o_t, v_t = target["o"].double(), target["v"].double()
        reader_sq = _sq_norm(o_t, torch.eye(o_t.shape[1], dtype=o_t.dtype), v_t)
        product_sq = _sq_norm(o_t, v_t @ o_s, v_s)  # OV_t OV_s = O_t (V_t O_s) V_s
    else:
        q_t, k_t = target["q"].double(), target["k"].double()
        reader_sq = _sq_norm(q_t.T, torch.eye(q_t.shape[0], dtype=q_t.dtype), k_t)
        if path == "k":  # QK_t OV_s = Q_t^T (K_t O_s) V_s
            product_sq = _sq_norm(q_t.T, k_t @ o_s, v_s)
        else:  # OV_s^T QK_t = V_s^T (Q_t O_s)^T K_t
            product_sq = _sq_norm(v_s.T, (q_t @ o_s).T, k_t)
    return float(product_sq.clamp(min=0).sqrt() / (reader_sq.sqrt() * ov_sq.sqrt()))


def random_baseline(d_model: int, d_head: int, path: str, draws: int = 5, seed: int = 0) -> float:
    """Mean score of random Gaussian weights of the same shapes (the score is scale-free)."""
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    scores = []
    for _ in range(draws):
        source = {"v": draw(d_head, d_model), "o": draw(d_model, d_head)}
        target = {
            "q": draw(d_head, d_model),
            "k": draw(d_head, d_model),
            "v": draw(d_head, d_model),
            "o": draw(d_model, d_head),
        }
        scores.append(composition_score(source, target, path))
    return sum(scores) / len(scores)


def composition_scores(
    model,
    pairs: Sequence[tuple[Head, Head]],
    paths: Sequence[str] = COMPOSITION_PATHS,
    *,
    draws: int = 5,
    seed: int = 0,
) -> list[CompositionRow]:
    """Q, K and V composition scores of ``(source, target)`` pairs, from the model's weights.

    Reads local weights (not through a trace): on a model loaded for NDIF only, whose weights
    are not here, it cannot run.

    Args:
        model: An nnsight ``TransformersModel``.
        pairs: ``(source, target)`` heads, the source in an earlier layer.
        paths: Which of ``"q"``, ``"k"``, ``"v"``.
        draws: Random draws averaged for the baseline.
        seed: Seed of the baseline's draws.

    Returns:
        One :class:`CompositionRow` per pair and path.
    """
    first = next(iter(model._module.parameters()))
    if first.device.type == "meta":
        raise RuntimeError("composition scores need the model's weights here; this model has meta weights")
    cache: dict[Head, dict[str, torch.Tensor]] = {}

    def weights(head: Head) -> dict[str, torch.Tensor]:
        if head not in cache:
            cache[head] = head_matrices(model, *head)
        return cache[head]

    rows, baselines = [], {}
    for source, target in pairs:
        s, t = weights(source), weights(target)
        for path in paths:
            if path not in baselines:
                baselines[path] = random_baseline(s["o"].shape[0], s["o"].shape[1], path, draws, seed)
            rows.append(CompositionRow(source, target, path, composition_score(s, t, path), baselines[path]))
    return rows
