"""Per-head weights: where each head's query, key and value rows sit in its projection's output,
its output columns, the pre-attention norm computed by hand, and a sender's removal through a post-attention
norm (:func:`sender_delta`).

Shared by path patching (which rewrites one head's slice of a q/k/v projection's output inside
a trace) and the composition scores (which multiply the heads' weights). Layouts: separate
``q_proj``/``k_proj``/``v_proj`` (Llama, Qwen2, Mistral, Gemma), GPT-2's stacked ``c_attn``
(``[q; k; v]``) and GPT-NeoX's per-head interleaved ``query_key_value``, as
:mod:`~induction_nnsight.models.qkv` defines them. Where the layout says ``conv1d`` (GPT-2) weights are
stored ``[in, out]``; every weight returned here is in ``Linear``'s ``[out, in]``.
"""

from __future__ import annotations

import torch

from ..errors import InductionError
from ..models.layout import ModelLayout, NormSpec, apply_norm, model_layout, norm_affine, norm_spec
from ..models.qkv import COMPONENTS, kv_head, qkv_features


def hand_norm_spec(model, path: str | None) -> NormSpec:
    """:func:`~induction_nnsight.models.layout.norm_spec`, refusing a norm without an epsilon
    (path patching computes the pre-attention norm by hand and needs it)."""
    spec = norm_spec(model, path)
    if spec.path is not None and spec.eps is None:
        module = model._module.get_submodule(path)
        raise InductionError(
            f"{path} ({type(module).__name__}): no eps or variance_epsilon attribute; "
            "path patching computes the pre-attention norm by hand and needs it"
        )
    return spec


# how a sender's removal reaches the residual through its layer's post-attention norm (Gemma 2/3, OLMo-2)
SENDER_NORMS = ("recompute", "frozen")


def sender_delta(
    removed: torch.Tensor,
    attn_out: torch.Tensor | None,
    spec: NormSpec,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    sender_norm: str = "recompute",
) -> torch.Tensor:
    """What removing a sender changes in the residual stream, ``[batch, pos, d_model]`` (subtracted from it).

    Pre-norm blocks (``spec.path`` None): the sender's direct contribution ``removed`` itself. Post-norm
    blocks: ``"recompute"`` (the default) is ``N(o) - N(o - removed)`` with the layer's post-attention norm
    ``N`` computed by hand on the clean attention output ``o`` (the norm's scale recomputed without the
    sender); ``"frozen"`` keeps the clean scale, ``removed * w / rms(o)`` (linear in the sender).

    Args:
        removed: ``[batch, pos, d_model]`` the sender's output through ``W_O`` (``(z_s - r_s) W_O[:, s]^T``).
        attn_out: ``[batch, pos, d_model]`` the layer's clean attention output (the post-norm's input).
        spec: The post-attention norm (:class:`~induction_nnsight.models.layout.NormSpec`).
        weight: The norm's weight (None without one).
        bias: The norm's bias (None without one).
        sender_norm: One of :data:`SENDER_NORMS`.
    """
    if spec.path is None:
        return removed
    if sender_norm == "frozen":
        h, c = attn_out.float(), removed.float()
        if spec.centered:
            h, c = h - h.mean(-1, keepdim=True), c - c.mean(-1, keepdim=True)
        c = c * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + spec.eps)
        return norm_affine(c, spec, weight, None).to(removed.dtype)  # no bias: the change is linear
    return apply_norm(attn_out, spec, weight, bias) - apply_norm(attn_out - removed, spec, weight, bias)


def projection_slice(layout: ModelLayout, layer: int, component: str, head: int) -> tuple[str, int, int]:
    """Where query head ``head``'s (for ``"q"``) or its key/value head's (``"k"``, ``"v"``) rows are.

    Returns:
        ``(module path, start, stop)``: rows ``start:stop`` of the module's ``[out, in]`` weight,
        columns ``start:stop`` of its output.
    """
    facts = layout.facts
    index = head if component == "q" else kv_head(head, facts.n_heads, facts.n_kv_heads)
    start, stop = qkv_features(layout.value_layout, component, index, facts.n_heads, facts.d_head, facts.n_kv_heads)
    path = layout.v_proj[layer]
    if layout.value_layout == "separate":
        path = (layout.q_proj, layout.k_proj, layout.v_proj)[COMPONENTS.index(component)][layer]
        if path is None:
            raise InductionError(f"layer {layer} has no {component}_proj: pass set_layout(model, {component}_proj=...)")
    return path, start, stop


def rows_of(weight: torch.Tensor, bias: torch.Tensor | None, start: int, stop: int, conv: bool):
    """``([stop - start, in] weight rows, [stop - start] bias or None)`` of a projection."""
    rows = weight[:, start:stop].T if conv else weight[start:stop]
    return rows, (None if bias is None else bias[start:stop])


def output_columns(weight: torch.Tensor, head: int, d_head: int, conv: bool) -> torch.Tensor:
    """``[d_model, d_head]`` columns of the output projection that read head ``head``."""
    full = weight.T if conv else weight  # [d_model, n_heads * d_head]
    return full[:, head * d_head : (head + 1) * d_head]


def head_matrices(model, layer: int, head: int) -> dict[str, torch.Tensor]:
    """One head's weights with its layer's norm weight folded in (outside any trace, local weights).

    Returns:
        ``{"q", "k", "v", "o"}``: ``q``, ``k`` and ``v`` are ``[d_head, d_model]`` (reading the
        normed residual, the norm's weight and, for LayerNorm, its centring folded in); ``o`` is
        ``[d_model, d_head]`` (in post-norm blocks, times the post-attention norm's weight).
    """
    layout = model_layout(model)
    module = model._module
    spec = norm_spec(model, layout.pre_attention_norm[layer])
    d_model = layout.facts.d_model
    fold = torch.eye(d_model)
    if spec.path is not None:
        weight = getattr(module.get_submodule(spec.path), "weight", None)
        if weight is not None:  # OLMo's norms have none
            weight = weight.detach().float()
            fold = fold * ((1.0 + weight) if spec.offset else weight)[None, :]
        if spec.centered:
            fold = fold @ (torch.eye(d_model) - torch.full((d_model, d_model), 1.0 / d_model))
    out = {}
    for component in COMPONENTS:
        path, start, stop = projection_slice(layout, layer, component, head)
        weight = module.get_submodule(path).weight.detach().float()
        out[component] = rows_of(weight, None, start, stop, layout.conv1d)[0] @ fold
    o_path = layout.o_proj[layer]
    out["o"] = output_columns(
        module.get_submodule(o_path).weight.detach().float(), head, layout.facts.d_head, layout.conv1d
    )
    post = layout.post_attention_norm[layer] if layout.post_attention_norm else None
    weight = None if post is None else getattr(module.get_submodule(post), "weight", None)
    if weight is not None:  # post-norm: the norm's weight folded in, its scale frozen (a scalar per position)
        weight = weight.detach().float()
        out["o"] = ((1.0 + weight) if layout.norm_offset else weight)[:, None] * out["o"]
    return out
