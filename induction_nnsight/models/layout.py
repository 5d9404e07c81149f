"""The model's layout: where its blocks, attention, projections, norms and embeddings live.

One :class:`ModelLayout` per model, found once from the module tree (GPT-2, Llama, GPT-NeoX,
Qwen2, Mistral, Gemma 2/3 and their kin are found automatically) and cached; every part of the
package that needs a module asks it, never the model. For a model whose modules carry unusual
names, say where things are, once, with :func:`set_layout` (or ``load_model(..., layout=...)``):
names relative to their parent, as nnterp's renaming does::

    set_layout(model, layers="backbone.blocks", attention="mixer", o_proj="out")

Keys: ``layers`` (path of the list of blocks), ``attention`` and ``pre_attention_norm`` (child
names in a block), ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj`` (child names in the attention
module), ``value_layout`` (``"separate"``, ``"stacked_qkv"`` as GPT-2's ``c_attn``,
``"interleaved_qkv"`` as GPT-NeoX's), ``final_norm``, ``embed`` and ``unembed`` (paths).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InductionError
from .facts import ModelFacts, read_facts

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
)
VALUE_LAYOUTS = ("separate", "stacked_qkv", "interleaved_qkv")

_ATTENTION = ("self_attn", "attn", "attention", "self_attention")
_OUTPUT = ("o_proj", "c_proj", "dense", "out_proj")
_VALUES = {"v_proj": "separate", "c_attn": "stacked_qkv", "query_key_value": "interleaved_qkv"}
_QUERIES, _KEYS = ("q_proj",), ("k_proj",)
_PRE_ATTENTION_NORMS = ("input_layernorm", "ln_1", "attention_norm")
_FINAL_NORMS = ("norm", "ln_f", "final_layer_norm", "final_norm")


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
        value_layout: How ``v_proj`` holds the values (one of :data:`VALUE_LAYOUTS`; None if unknown).
        pre_attention_norm: ``[n_layers]`` the norm before each attention (None where absent).
        final_norm: The norm before the unembedding (None where absent).
        embed: The token embedding.
        unembed: The unembedding (``lm_head``).
        overrides: The user's renamings this layout was built with.
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
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> list[str]:
        """``[n_layers]`` paths of the blocks."""
        return [f"{self.layers}.{i}" for i in range(self.facts.n_layers)]


def _fail(key: str, where: str, found: list[str]) -> InductionError:
    shown = ", ".join(found[:12]) or "none"
    return InductionError(
        f"cannot find the model's {key} in {where} (children: {shown}): pass set_layout(model, {key}=...) naming it"
    )


def _children(module: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return dict(module.named_children())


def _in_features(module: torch.nn.Module) -> int | None:
    if isinstance(module, torch.nn.Linear):
        return module.in_features
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and weight is not None:  # GPT-2: weight [in, out]
        return weight.shape[0]
    return None


def _named(children: dict[str, torch.nn.Module], names, override: str | None, key: str, where: str) -> str | None:
    """``override`` when given (checked to exist), else the first of ``names`` among ``children``."""
    if override is not None:
        if override not in children:
            raise _fail(key, where, list(children))
        return override
    return next((n for n in names if n in children), None)


def _layer_list(root: torch.nn.Module, n_layers: int, override: str | None) -> str:
    if override is not None:
        try:
            found = root.get_submodule(override)
        except AttributeError:
            found = None
        if not isinstance(found, torch.nn.ModuleList) or len(found) != n_layers:
            raise InductionError(
                f"layers={override!r} is not a list of {n_layers} blocks: "
                "pass set_layout(model, layers=...) with the path of the blocks"
            )
        return override
    for path, child in root.named_modules():
        if isinstance(child, torch.nn.ModuleList) and len(child) == n_layers and path:
            return path
    raise InductionError(
        f"{type(root).__name__}: found no list of {n_layers} blocks: pass set_layout(model, layers=...) with its path"
    )


def _attention_child(block: torch.nn.Module, override: str | None, where: str) -> str:
    children = _children(block)
    name = _named(children, _ATTENTION, override, "attention", where)
    if name is None:
        name = next((n for n, c in children.items() if type(c).__name__.endswith("Attention")), None)
    if name is None:
        raise _fail("attention", where, list(children))
    return name


def _output_child(attention: torch.nn.Module, width: int, override: str | None, where: str) -> str:
    children = _children(attention)
    if override is not None:
        return _named(children, (), override, "o_proj", where)
    named = [n for n in _OUTPUT if n in children and _in_features(children[n]) == width]
    others = [n for n, c in children.items() if _in_features(c) == width and n not in named]
    if not named and not others:
        raise _fail(f"o_proj (a projection taking {width} features)", where, list(children))
    return (named or others)[-1]


def _final_norm(root: torch.nn.Module, layers: str, override: str | None) -> str | None:
    if override is not None:
        try:
            root.get_submodule(override)
        except AttributeError:
            raise InductionError(
                f"final_norm={override!r} is not a module of the model: "
                "pass set_layout(model, final_norm=...) with its path"
            ) from None
        return override
    found = None
    for path, child in root.named_modules():
        if (
            path
            and not path.startswith(layers)
            and path.rsplit(".", 1)[-1] in _FINAL_NORMS
            and hasattr(child, "weight")
        ):
            found = path
    return found


def _module_path(root: torch.nn.Module, target: torch.nn.Module | None, key: str, override: str | None) -> str:
    if override is not None:
        return override
    for path, module in root.named_modules():
        if module is target:
            return path
    raise InductionError(f"cannot find the model's {key}: pass set_layout(model, {key}=...) with its path")


def find_layout(model, overrides: dict[str, Any] | None = None) -> ModelLayout:
    """Find the layout of an nnsight-wrapped transformers model (see :func:`model_layout`).

    Args:
        model: An nnsight ``TransformersModel``.
        overrides: Renamings for what the search cannot find (keys in :data:`LAYOUT_KEYS`).

    Raises:
        InductionError: For an unknown key, a name that is not there, or a part not found.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(LAYOUT_KEYS))
    if unknown:
        raise InductionError(f"unknown layout key(s) {', '.join(unknown)}: pass keys from {', '.join(LAYOUT_KEYS)}")
    if overrides.get("value_layout") not in (None, *VALUE_LAYOUTS):
        raise InductionError(f"value_layout={overrides['value_layout']!r}: pass one of {', '.join(VALUE_LAYOUTS)}")
    facts = read_facts(model)
    root = model._module
    layers = _layer_list(root, facts.n_layers, overrides.get("layers"))
    width = facts.n_heads * facts.d_head
    attention, q, k, v, o, norms, value_layout = [], [], [], [], [], [], None
    for i, block in enumerate(root.get_submodule(layers)):
        where = f"{layers}.{i}"
        name = _attention_child(block, overrides.get("attention"), where)
        path = f"{where}.{name}"
        module = block.get_submodule(name)
        children = _children(module)
        attention.append(path)
        o.append(f"{path}.{_output_child(module, width, overrides.get('o_proj'), path)}")
        for found, names, key in ((q, _QUERIES, "q_proj"), (k, _KEYS, "k_proj"), (v, tuple(_VALUES), "v_proj")):
            child = _named(children, names, overrides.get(key), key, path)
            found.append(f"{path}.{child}" if child else None)
        value_name = v[-1].rsplit(".", 1)[-1] if v[-1] else None
        value_layout = overrides.get("value_layout") or _VALUES.get(value_name, "separate" if value_name else None)
        norm = _named(
            _children(block), _PRE_ATTENTION_NORMS, overrides.get("pre_attention_norm"), "pre_attention_norm", where
        )
        norms.append(f"{where}.{norm}" if norm else None)
    return ModelLayout(
        facts=facts,
        layers=layers,
        attention=tuple(attention),
        q_proj=tuple(q),
        k_proj=tuple(k),
        v_proj=tuple(v),
        o_proj=tuple(o),
        value_layout=value_layout,
        pre_attention_norm=tuple(norms),
        final_norm=_final_norm(root, layers, overrides.get("final_norm")),
        embed=_module_path(root, root.get_input_embeddings(), "embed", overrides.get("embed")),
        unembed=_module_path(root, root.get_output_embeddings(), "unembed", overrides.get("unembed")),
        overrides=overrides,
    )


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
    """Read a norm's kind and epsilon from its module (a layout path, e.g. ``layout.final_norm``)."""
    if path is None:
        return NormSpec(None)
    module = model._module.get_submodule(path)
    eps = getattr(module, "eps", None)
    if eps is None:
        eps = getattr(module, "variance_epsilon", None)
    return NormSpec(
        path,
        isinstance(module, torch.nn.LayerNorm),
        "Gemma" in type(module).__name__,
        None if eps is None else float(eps),
    )


def is_conv1d(model, path: str) -> bool:
    """GPT-2's ``Conv1D`` stores its weight ``[in, out]``, the transpose of ``Linear``'s."""
    return type(model._module.get_submodule(path)).__name__ == "Conv1D"


_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # torch module -> ModelLayout


def model_layout(model) -> ModelLayout:
    """The model's :class:`ModelLayout`, found on first use and cached for the model's lifetime."""
    layout = _LAYOUTS.get(model._module)
    if layout is None:
        layout = _LAYOUTS[model._module] = find_layout(model)
    return layout


def set_layout(model, **overrides: Any) -> ModelLayout:
    """Say where a model with unusual module names keeps its parts (keys: :data:`LAYOUT_KEYS`).

    Returns:
        The new layout, used by every later call on ``model``.

    Raises:
        InductionError: For an unknown key or a name the model does not have.
    """
    layout = _LAYOUTS[model._module] = find_layout(model, overrides)
    return layout


def model_facts(model) -> ModelFacts:
    """Shape facts of a loaded model (cached with its layout): layers, heads, widths, context, BOS."""
    return model_layout(model).facts
