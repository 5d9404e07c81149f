"""Static (weight-only) head scores (``reads="weights"``), computed once per model and its weights.

A static score reads the parameters and no tokens, so it is the same on every call until the weights change.
Run here, :func:`cached_static_scores` computes it outside the trace and keeps it against the
model's weights: the identity (``data_ptr``), shape, dtype and in-place version counter
(``_version``) of every parameter it reads. An optimizer step, ``load_state_dict`` or an in-place
edit under ``torch.no_grad()`` bumps a version (or replaces a tensor), so the next call recomputes.
Edits through ``param.data`` bypass the version counter: call :func:`forget_static_scores` after
them. On NDIF the weights are not here, so the heads pass calls :func:`static_scores` inside the
trace instead (same function, same numbers).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from ..models.layout import ModelLayout, model_layout, norm_spec
from ..models.qkv import value_heads
from .declaration import HeadScore


@dataclass(frozen=True)
class WeightPlan:
    """What the static scores read, settled from the module types outside the trace.

    Attributes:
        layout: The model's layout.
        conv: Whether the output and the value projections are GPT-2 ``Conv1D`` (stored transposed).
        offset: Norm weights are stored minus one (Gemma).
    """

    layout: ModelLayout
    conv: tuple[bool, bool]
    offset: bool


def weight_plan(model) -> WeightPlan:
    """The :class:`WeightPlan` of ``model`` (reads module types: call it outside a trace)."""
    layout = model_layout(model)
    o_conv = layout.conv1d
    v_conv = layout.v_proj[0] is not None and layout.conv1d
    return WeightPlan(layout, (o_conv, v_conv), norm_spec(model, layout.final_norm).offset)


def weight_of(model, path: str, transpose: bool = False) -> torch.Tensor:
    """The ``weight`` of the module at ``path`` (inside or outside a trace), transposed if asked."""
    weight = model.get(path).weight
    return weight.T if transpose else weight


def norm_scale(model, path: str | None, offset: bool) -> torch.Tensor | float:
    """``[d_model]`` the multiplier of a norm (``1 + w`` for Gemma's offset norms); 1.0 without a weight."""
    if path is None or getattr(model.get(path), "weight", None) is None:
        return 1.0
    weight = model.get(path).weight
    return 1.0 + weight if offset else weight


def static_scores(model, plan: WeightPlan, scores: list[HeadScore]) -> dict[str, torch.Tensor]:
    """Every static (weight-only) score of every head: ``name -> [n_layers, n_heads]`` (runs in a trace or outside).

    The final norm's scale multiplies the ``[d_model, d_model]`` bridge ``W_E^T W_U`` rather than the
    ``[vocab, d_model]`` unembedding, so no vocabulary-sized copy is made.
    """
    layout, facts = plan.layout, plan.layout.facts
    conv_out, conv_value = plan.conv
    bridge = weight_of(model, layout.embed).T @ weight_of(model, layout.unembed)  # [d_model, d_model]
    bridge = bridge * norm_scale(model, layout.final_norm, plan.offset)  # W_E^T W_U diag(final scale)
    per_layer = {score.name: [] for score in scores}
    for layer in range(facts.n_layers):
        w_v = value_heads(
            weight_of(model, layout.v_proj[layer], transpose=conv_value),
            layout.value_layout,
            facts.n_heads,
            facts.n_kv_heads,
            facts.d_head,
        ) * norm_scale(model, layout.pre_attention_norm[layer], plan.offset)  # [kv_head, d_head, d_model]
        w_out = weight_of(model, layout.o_proj[layer], transpose=conv_out)  # [d_model, head * d_head]
        for score in scores:
            per_layer[score.name].append(score.reduce(w_v, w_out, bridge, facts.n_heads))
    return {name: torch.stack(values) for name, values in per_layer.items()}


def unembed_mean(model, plan: WeightPlan) -> torch.Tensor:
    """``[d_model]`` float32 mean over the vocabulary of the unembedding's rows scaled by the final norm."""
    unembed = weight_of(model, plan.layout.unembed)  # [vocab, d_model]
    return unembed.mean(0, dtype=torch.float32) * norm_scale(model, plan.layout.final_norm, plan.offset)


def _read_paths(layout: ModelLayout) -> list[str]:
    """Every module whose ``weight`` the static scores read."""
    paths = [
        layout.embed,
        layout.unembed,
        layout.final_norm,
        *layout.v_proj,
        *layout.o_proj,
        *layout.pre_attention_norm,
    ]
    return [p for p in paths if p is not None]


def weights_key(model, layout: ModelLayout) -> tuple:
    """Identity and version of every weight the static scores read: equal keys, equal weights.

    Returns:
        One ``(path, data_ptr, _version, shape, dtype, device)`` entry per weight.
    """
    key = []
    for path in _read_paths(layout):
        weight = getattr(model.get(path), "weight", None)
        if weight is not None:
            key.append(
                (path, weight.data_ptr(), weight._version, tuple(weight.shape), str(weight.dtype), str(weight.device))
            )
    return tuple(key)


# torch module -> {(score or name, weights key): tensor}; weak, so a dropped model frees its entry.
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached(model, plan: WeightPlan, items: list, compute, key: tuple | None = None) -> dict:
    """``compute(missing items) -> {item: tensor}`` for the items not cached against the current weights
    (``key``: their :func:`weights_key`, when the caller has just read it)."""
    key = weights_key(model, plan.layout) if key is None else key
    entries = _CACHE.setdefault(model._module, {})
    missing = [item for item in items if (item, key) not in entries]
    if missing:
        for stale in [k for k in entries if k[1] != key]:  # another version of the weights: drop it
            del entries[stale]
        with torch.no_grad():
            fresh = compute(missing)
        for item in missing:
            entries[(item, key)] = fresh[item].detach()
    return {item: entries[(item, key)] for item in items}


def cached_static_scores(
    model, plan: WeightPlan, scores: list[HeadScore], key: tuple | None = None
) -> dict[str, torch.Tensor]:
    """:func:`static_scores` computed here, outside any trace, once per model and weights version.

    Args:
        key: The current :func:`weights_key` when already read (None: read here).

    Returns:
        ``name -> [n_layers, n_heads]`` on the CPU (a fresh copy, so callers may edit it).
    """

    def compute(missing):
        values = static_scores(model, plan, missing)
        return {score: values[score.name] for score in missing}

    return {score.name: value.cpu().clone() for score, value in _cached(model, plan, scores, compute, key).items()}


def cached_unembed_mean(model, plan: WeightPlan, key: tuple | None = None) -> torch.Tensor:
    """:func:`unembed_mean`, once per model and weights version (the copying score's baseline), on the
    model's device (``key``: the current :func:`weights_key` when already read)."""
    compute = lambda _: {"unembed_mean": unembed_mean(model, plan)}  # noqa: E731
    return _cached(model, plan, ["unembed_mean"], compute, key)["unembed_mean"]


def forget_static_scores(model) -> None:
    """Drop ``model``'s cached static scores (needed only after edits through ``param.data``)."""
    _CACHE.pop(model._module, None)
