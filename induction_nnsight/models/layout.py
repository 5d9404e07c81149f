"""The model's layout: where its blocks, attention, projections, norms and embeddings live, and how
they compute (the attention call, the norm, the q/k/v layout, the weights' orientation, post-norms).

One :class:`ModelLayout` per model, detected once from the module tree (GPT-2, Llama, GPT-NeoX,
Qwen2, Mistral, Gemma 2/3 and their kin are found by name, see :mod:`~induction_nnsight.models.detect`;
projections no name tells, by what they compute, see :mod:`~induction_nnsight.models.computed`),
checked when the model loads and cached; every part of the package that needs a module
or a fact about one asks it, never the model. For a model whose modules carry unusual names, say
where things are, once, with :func:`~induction_nnsight.models.validation.set_layout` (or
``load_model(..., layout=...)``), which checks the layout with one forward pass::

    set_layout(model, layers="backbone.blocks", attention="mixer", o_proj="out")

Keys (:data:`LAYOUT_KEYS`, each field of :class:`ModelLayout`): ``layers`` (path of the list of
blocks), ``attention`` and ``pre_attention_norm`` (child names in a block), ``q_proj``, ``k_proj``,
``v_proj``, ``o_proj`` (paths in the attention module: a child's name, or ``inner.query`` deeper),
``final_norm``, ``embed`` and ``unembed`` (paths), ``value_layout``, ``attention_call``, ``norm``,
``norm_offset``, ``conv1d``, ``post_norm`` and ``post_attention_norm`` (child name in a block); and every fact of
:class:`~induction_nnsight.models.facts.ModelFacts` (``n_heads``, ``d_head``, ``attn_implementation`` ...).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InductionError
from .detect import detect_layout
from .facts import FACT_KEYS, ModelFacts, read_facts
from .qkv import VALUE_LAYOUTS

LAYOUT_KEYS = (
    "layers",
    "attention",
    "pre_attention_norm",
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "value_layout",
    "final_norm",
    "embed",
    "unembed",
    "attention_call",
    "norm",
    "norm_offset",
    "conv1d",
    "post_norm",
    "post_attention_norm",
)
NORMS = ("layernorm", "rmsnorm")


@dataclass(frozen=True)
class ModelLayout:
    """Where a model keeps what the scores and interventions read (dotted module paths).

    Attributes:
        facts: Head counts, widths, context, BOS and attention implementation.
        layers: Path of the ``ModuleList`` of blocks.
        attention: ``[n_layers]`` paths of each block's attention module.
        q_proj: ``[n_layers]`` query projections (None where fused).
        k_proj: ``[n_layers]`` key projections (None where fused).
        v_proj: ``[n_layers]`` value-carrying weights (the fused q/k/v weight where fused; None if unknown).
        o_proj: ``[n_layers]`` output projections, whose input is the per-head outputs ``[.., head * d_head]``.
        value_layout: How ``v_proj`` holds the values (one of
            :data:`~induction_nnsight.models.qkv.VALUE_LAYOUTS`; None if unknown).
        pre_attention_norm: ``[n_layers]`` the norm before each attention (None where absent).
        final_norm: The norm before the unembedding (None where absent).
        embed: The token embedding.
        unembed: The unembedding (``lm_head``).
        attention_call: The function the attention's ``forward`` calls with ``(self, query, key, value,
            mask, scaling=..., ...)`` and which returns ``(output, probabilities or None)``
            (transformers' ``attention_interface``); read through nnsight's ``.source``.
        norm: ``"layernorm"`` (subtracts the mean) or ``"rmsnorm"``, for every norm (None without norms).
        norm_offset: Norm weights are stored minus one (Gemma multiplies by ``1 + weight``).
        conv1d: Projections store their weight ``[in, out]`` (GPT-2's ``Conv1D``), not ``Linear``'s ``[out, in]``.
        post_norm: The attention output is normed before it joins the residual stream (Gemma 2/3, OLMo-2).
        post_attention_norm: ``[n_layers]`` the norm applied to the attention output before the residual
            (None in pre-norm blocks).
        overrides: The fields the user gave when this layout was made.
    """

    facts: ModelFacts
    layers: str
    attention: tuple[str, ...]
    q_proj: tuple[str | None, ...]
    k_proj: tuple[str | None, ...]
    v_proj: tuple[str | None, ...]
    o_proj: tuple[str, ...]
    value_layout: str | None
    pre_attention_norm: tuple[str | None, ...]
    final_norm: str | None
    embed: str
    unembed: str
    attention_call: str
    norm: str | None
    norm_offset: bool
    conv1d: bool
    post_norm: bool
    post_attention_norm: tuple[str | None, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> list[str]:
        """``[n_layers]`` paths of the blocks."""
        return [f"{self.layers}.{i}" for i in range(self.facts.n_layers)]


def find_layout(model, overrides: dict[str, Any] | None = None) -> ModelLayout:
    """Detect the layout of an nnsight-wrapped transformers model (not checked: see
    :func:`~induction_nnsight.models.validation.set_layout`).

    Args:
        model: An nnsight ``TransformersModel``.
        overrides: Fields given instead of detected (keys in :data:`LAYOUT_KEYS` and
            :data:`~induction_nnsight.models.facts.FACT_KEYS`).

    Raises:
        InductionError: For an unknown key, a name that is not there, or a part not found.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(LAYOUT_KEYS) - set(FACT_KEYS))
    if unknown:
        raise InductionError(
            f"unknown layout key(s) {', '.join(unknown)}: pass keys from {', '.join(LAYOUT_KEYS + FACT_KEYS)}"
        )
    for key, allowed in (("value_layout", VALUE_LAYOUTS), ("norm", NORMS)):
        if overrides.get(key) not in (None, *allowed):
            raise InductionError(
                f"{key}={overrides[key]!r}: pass set_layout(model, {key}=...) with one of {', '.join(allowed)}"
            )
    facts = read_facts(model, overrides)
    return ModelLayout(facts=facts, **detect_layout(model, facts, overrides), overrides=overrides)


@dataclass(frozen=True)
class NormSpec:
    """How a norm computes (read from its module once, outside any trace).

    Attributes:
        path: The norm's module path (None: there is no norm there).
        centered: LayerNorm (subtracts the mean) rather than RMSNorm.
        offset: Weights stored minus one (Gemma multiplies by ``1 + weight``).
        eps: The epsilon added to the variance (None where the module names none).
    """

    path: str | None
    centered: bool = False
    offset: bool = False
    eps: float | None = None


def norm_spec(model, path: str | None) -> NormSpec:
    """A norm's kind and offset (from the layout) and its epsilon (from its module), for a layout path such as
    ``layout.final_norm``."""
    if path is None:
        return NormSpec(None)
    layout = model_layout(model)
    eps = norm_eps(model, model._module.get_submodule(path))
    return NormSpec(path, layout.norm == "layernorm", layout.norm_offset, None if eps is None else float(eps))


def norm_eps(model, module: torch.nn.Module) -> float | None:
    """A norm's epsilon: its ``eps`` or ``variance_epsilon``; for a norm without one (OLMo's non-parametric
    LayerNorm), the config's ``layer_norm_eps``/``rms_norm_eps``, else torch's LayerNorm default ``1e-5``
    for a module without weights (the layout check compares the norm by hand with its output)."""
    for name in ("eps", "variance_epsilon"):
        if getattr(module, name, None) is not None:
            return float(getattr(module, name))
    config = getattr(model, "config", None)
    for name in ("layer_norm_eps", "rms_norm_eps", "layer_norm_epsilon"):
        if getattr(config, name, None) is not None:
            return float(getattr(config, name))
    return 1e-5 if getattr(module, "weight", None) is None else None


def apply_norm(x: torch.Tensor, spec: NormSpec, weight: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    """A norm of ``x [..., d_model]`` computed by hand (LayerNorm, RMSNorm or Gemma's ``1 + w``), same shape."""
    if spec.path is None:
        return x
    h = x.float()
    if spec.centered:
        h = h - h.mean(-1, keepdim=True)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + spec.eps)
    return norm_affine(h, spec, weight, bias).to(x.dtype)


def norm_affine(
    h: torch.Tensor, spec: NormSpec, weight: torch.Tensor | None, bias: torch.Tensor | None
) -> torch.Tensor:
    """The norm's weight (Gemma's ``1 + w``) and bias applied to the normalised ``h [..., d_model]``, in
    float32, same shape: the last step of :func:`apply_norm` and of a norm with a frozen scale."""
    if weight is not None:
        h = h * ((1.0 + weight.float()) if spec.offset else weight.float())
    if bias is not None:
        h = h + bias.float()
    return h


_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # torch module -> ModelLayout


def model_layout(model) -> ModelLayout:
    """The model's :class:`ModelLayout`: the one checked when :func:`~induction_nnsight.models.loading.load_model`
    loaded it (or :func:`~induction_nnsight.models.validation.set_layout` last set), else found on first use
    (unchecked, for a model wrapped by hand), cached for the model's lifetime."""
    layout = _LAYOUTS.get(model._module)
    if layout is None:
        layout = _LAYOUTS[model._module] = find_layout(model)
    return layout


def keep_layout(model, layout: ModelLayout) -> ModelLayout:
    """Make ``layout`` the one every later call on ``model`` reads (used by
    :func:`~induction_nnsight.models.validation.set_layout` once it has checked it)."""
    _LAYOUTS[model._module] = layout
    return layout


def model_facts(model) -> ModelFacts:
    """Shape facts of a loaded model (cached with its layout): layers, heads, widths, context, BOS."""
    return model_layout(model).facts
