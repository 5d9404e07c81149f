"""Attention access: find each layer's attention module and read its probabilities.

Inside a trace, :func:`attention_pattern` returns a layer's attention
probabilities ``[batch, query_head, query, key]`` whatever the model's
``attn_implementation``: under ``eager`` it reads the weights the attention call
returns; under ``sdpa`` and the other fused kernels, which return no weights, it
recomputes ``softmax(Q K^T * scaling + mask)`` from the query and key states that
reach the attention call (through nnsight's ``.source``), honouring grouped-query
attention, soft-capping and sliding windows.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..errors import InductionError

_ATTENTION_CHILD_NAMES = ("self_attn", "attn", "attention", "self_attention")


def _find_layer_list(module: torch.nn.Module, n_layers: int) -> str:
    """Path of the ``ModuleList`` holding the ``n_layers`` transformer blocks."""
    for path, child in module.named_modules():
        if isinstance(child, torch.nn.ModuleList) and len(child) == n_layers and path:
            return path
    raise InductionError(
        f"{type(module).__name__}: found no ModuleList of {n_layers} layers; "
        "this model's layout is not supported"
    )


def _attention_child(layer: torch.nn.Module) -> str:
    """Name of a block's self-attention submodule."""
    for name in _ATTENTION_CHILD_NAMES:
        if isinstance(getattr(layer, name, None), torch.nn.Module):
            return name
    for name, child in layer.named_children():
        if type(child).__name__.endswith("Attention"):
            return name
    raise InductionError(
        f"{type(layer).__name__}: no attention submodule found "
        f"(tried {', '.join(_ATTENTION_CHILD_NAMES)} and any *Attention child)"
    )


def attention_paths(model) -> list[str]:
    """Dotted paths of every layer's attention module, in layer order.

    Example:
        ``["transformer.h.0.attn", ...]`` for GPT-2,
        ``["model.layers.0.self_attn", ...]`` for Llama.
    """
    from .loading import model_facts

    module = model._module
    layers = _find_layer_list(module, model_facts(model).n_layers)
    block = module.get_submodule(layers)
    return [f"{layers}.{i}.{_attention_child(layer)}" for i, layer in enumerate(block)]


def attention_modules(model) -> list[Any]:
    """The nnsight envoys of every layer's attention module, in layer order."""
    return [model.get(path) for path in attention_paths(model)]


def attention_call_name(attention) -> str:
    """The ``.source`` operation name of the attention-kernel call in ``forward``.

    transformers routes every implementation (eager, sdpa, flash ...) through one
    ``attention_interface(self, query, key, value, mask, scaling=..., ...)`` call;
    its operation name (``attention_interface_1`` on Llama in transformers 5)
    changes between versions, so it is looked up rather than hard-coded.
    """
    try:
        source = attention.source
        compiled = source.compiled
    except Exception as error:
        raise InductionError(
            f"{type(attention._module).__name__}: its forward source is not available to nnsight ({error})"
        ) from error
    lines = str(compiled.source).splitlines()
    for name in compiled.names:
        if not re.fullmatch(r"attention_interface_\d+", name):
            continue
        line = compiled.lines[name]  # 1-based
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        if "attention_interface(" in text:
            return name
    raise InductionError(
        f"{type(attention._module).__name__}: no attention_interface(...) call in its forward; "
        f"operations seen: {', '.join(compiled.names[:12])} ...; use attn_implementation='eager'"
    )


def softmax_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scaling: float | None = None,
    softcap: float | None = None,
    sliding_window: int | None = None,
) -> torch.Tensor:
    """Attention probabilities recomputed from query and key states.

    Args:
        query: ``[batch, query_head, query, d_head]``.
        key: ``[batch, kv_head, key, d_head]``; each key/value head serves
            ``query_head // kv_head`` query heads (grouped-query attention).
        mask: Additive float mask or boolean keep-mask broadcastable to
            ``[batch, query_head, query, key]``; None means causal.
        scaling: Multiplier of ``Q K^T`` (``d_head ** -0.5`` when None).
        softcap: Attention-logit soft-capping (Gemma 2): ``tanh(s / c) * c``.
        sliding_window: When the mask is None, keys further back than this are hidden.

    Returns:
        ``[batch, query_head, query, key]`` probabilities, rows summing to 1.
    """
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:
        key = key.repeat_interleave(n_rep, dim=1)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scaling
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    n_query, n_key = scores.shape[-2:]
    if mask is None:
        q_pos = torch.arange(n_query, device=scores.device)[:, None] + (n_key - n_query)
        k_pos = torch.arange(n_key, device=scores.device)[None, :]
        keep = k_pos <= q_pos
        if sliding_window:
            keep = keep & (q_pos - k_pos < sliding_window)
        scores = scores.masked_fill(~keep, float("-inf"))
    elif mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask[..., :n_key], float("-inf"))
    else:
        scores = scores + mask[..., :n_key].float()
    return torch.softmax(scores, dim=-1).to(query.dtype)


def attention_pattern(attention, eager: bool, call_name: str) -> torch.Tensor:
    """A layer's attention probabilities, read inside a trace.

    Must be called inside ``model.trace(...)``, for layers in forward order.
    Both routes read the attention call itself (not the module's output), so
    the head outputs that follow it in the same layer stay reachable.

    Args:
        attention: The layer's attention envoy (from :func:`attention_modules`).
        eager: Read the weights the call returns (``attn_implementation="eager"``)
            instead of recomputing them from its query and key states.
        call_name: The attention call's ``.source`` name (from :func:`attention_call_name`).

    Returns:
        ``[batch, query_head, query, key]`` attention probabilities.
    """
    call = getattr(attention.source, call_name)
    if eager:
        return call.output[1]
    args, kwargs = call.inputs
    query, key, mask = args[1], args[2], args[4] if len(args) > 4 else kwargs.get("attention_mask")
    return softmax_attention(
        query,
        key,
        mask,
        scaling=kwargs.get("scaling"),
        softcap=kwargs.get("softcap"),
        sliding_window=kwargs.get("sliding_window"),
    )


_OUTPUT_PROJECTIONS = ("o_proj", "c_proj", "dense", "out_proj")
VALUE_PROJECTIONS = ("v_proj", "c_attn", "query_key_value")
PRE_ATTENTION_NORMS = ("input_layernorm", "ln_1", "attention_norm")
_FINAL_NORMS = ("norm", "ln_f", "final_layer_norm", "final_norm")


def child_named(module: torch.nn.Module, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that is a child module of ``module``, else None."""
    for name in names:
        if isinstance(getattr(module, name, None), torch.nn.Module):
            return name
    return None


def _in_features(module: torch.nn.Module) -> int | None:
    if isinstance(module, torch.nn.Linear):
        return module.in_features
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and weight is not None:  # GPT-2: weight [in, out]
        return weight.shape[0]
    return None


def output_projection_paths(model) -> list[str]:
    """Dotted paths of every layer's attention output projection, in layer order.

    Example:
        ``["model.layers.0.self_attn.o_proj", ...]`` for Llama,
        ``["transformer.h.0.attn.c_proj", ...]`` for GPT-2.

    Raises:
        InductionError: When no child of the attention module takes
            ``n_heads * d_head`` features.
    """
    from .loading import model_facts

    facts = model_facts(model)
    width = facts.n_heads * facts.d_head
    paths = []
    for path in attention_paths(model):
        attention = model._module.get_submodule(path)
        children = dict(attention.named_children())
        named = [n for n in _OUTPUT_PROJECTIONS if n in children and _in_features(children[n]) == width]
        others = [n for n, c in children.items() if _in_features(c) == width and n not in named]
        if not named and not others:
            raise InductionError(
                f"{type(attention).__name__}: no output projection taking {width} features "
                f"(tried {', '.join(_OUTPUT_PROJECTIONS)}); this architecture is not supported"
            )
        paths.append(f"{path}.{(named or others)[-1]}")
    return paths


def final_norm_path(model) -> str | None:
    """Path of the norm applied to the residual stream before the unembedding, if any."""
    module = model._module
    layers = _find_layer_list(module, len(attention_paths(model)))
    found = None
    for path, child in module.named_modules():
        if path.startswith(layers) or not path:
            continue
        if path.rsplit(".", 1)[-1] in _FINAL_NORMS and hasattr(child, "weight"):
            found = path
    return found
