"""Automatic detection of a model's layout from its module tree: the default of every
:class:`~induction_nnsight.models.layout.ModelLayout` field the user does not give.

Finds blocks, attention, projections and norms by the names GPT-2, Llama, GPT-NeoX, Qwen2,
Mistral and Gemma 2/3 use (and their kin), the value layout by the projection's name, the norm's
kind and offset and GPT-2's ``Conv1D`` by module class, and post-norm blocks by their extra norms.
Where the attention's projections carry no familiar name (renamed, nested deeper, one fused
projection under another name), they and the value layout are found by what they compute, with one
forward pass (:mod:`~induction_nnsight.models.computed`; real weights only).
Nothing downstream looks at class or attribute names: it reads the layout.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from ..errors import InductionError
from .computed import PROJECTION_KEYS, compute_projections, features, is_conv1d
from .facts import ModelFacts

_ATTENTION = ("self_attn", "attn", "attention", "self_attention")
_OUTPUT = ("o_proj", "c_proj", "dense", "out_proj")
_VALUES = {
    "v_proj": "separate",
    "c_attn": "stacked_qkv",
    "qkv_proj": "stacked_qkv",
    "query_key_value": "interleaved_qkv",
}
_QUERIES, _KEYS = ("q_proj",), ("k_proj",)
_PRE_ATTENTION_NORMS = ("input_layernorm", "ln_1", "attention_norm", "self_attn_layer_norm", "ln_attn")
_FINAL_NORMS = ("norm", "ln_f", "final_layer_norm", "final_norm")
_POST_NORMS = ("pre_feedforward_layernorm", "post_attention_norm")  # Gemma 2/3 norm the attention output
# a block with a norm after its MLP norms its attention output too (Gemma 2/3, OLMo-2), by this name:
_POST_ATTENTION_NORMS = ("post_attention_layernorm", "post_attention_norm")
DEFAULT_ATTENTION_CALL = "attention_interface"
# the functions an attention forward may compute its pattern with, in the order they are looked for
# (transformers' interface; torch's fused kernel under sdpa; a softmax of its own under eager)
ATTENTION_CALLS = ("attention_interface", "scaled_dot_product_attention", "softmax")


def _fail(key: str, where: str, found: list[str], what: str = "") -> InductionError:
    shown = ", ".join(found[:12]) or "none"
    return InductionError(
        f"cannot find the model's {key}{what} in {where} (children: {shown}): "
        f"pass set_layout(model, {key}=...) naming it"
    )


def _children(module: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return dict(module.named_children())


def _in_features(module: torch.nn.Module) -> int | None:
    shape = features(module)
    return None if shape is None else shape[0]


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


def _value_layout(name: str | None, attention: torch.nn.Module, facts: ModelFacts) -> str | None:
    """The value layout a projection's name says; a fused ``query_key_value`` with fewer key/value heads than
    query heads (multi-query Falcon) stacks ``[q; k; v]`` rather than interleaving heads."""
    if name is None:
        return None
    found = _VALUES.get(name.rsplit(".", 1)[-1], "separate")
    if found == "interleaved_qkv" and getattr(attention, "new_decoder_architecture", False):
        return "grouped_qkv"  # Falcon's new decoder packs each key/value group's queries, key and value
    if found == "interleaved_qkv" and facts.n_kv_heads < facts.n_heads:
        weight = getattr(attention.get_submodule(name), "weight", None)
        stacked = (facts.n_heads + 2 * facts.n_kv_heads) * facts.d_head
        found = "stacked_qkv" if weight is not None and weight.shape[0] == stacked else found
    return found


def _attention_child(block: torch.nn.Module, override: str | None, where: str) -> str:
    children = _children(block)
    name = _named(children, _ATTENTION, override, "attention", where)
    if name is None:
        name = next((n for n, c in children.items() if type(c).__name__.endswith("Attention")), None)
    if name is None:
        raise _fail("attention", where, list(children))
    return name


def _inside(attention: torch.nn.Module, override: str, key: str, where: str) -> str:
    """``override``, a path relative to the attention module (``inner.q_proj`` one level deeper), checked."""
    try:
        attention.get_submodule(override)
    except AttributeError:
        raise _fail(key, where, list(_children(attention))) from None
    return override


def _output_child(attention: torch.nn.Module, width: int, guess: bool) -> str | None:
    """The output projection by name (taking ``width`` features); None where no name says it, unless ``guess``
    (no weights to compute with): then the last child taking ``width`` features."""
    children = _children(attention)
    named = [n for n in _OUTPUT if n in children and _in_features(children[n]) == width]
    others = [n for n, c in children.items() if _in_features(c) == width and n not in named] if guess else []
    return (named or others or [None])[-1]


def _named_projections(
    attention: torch.nn.Module, facts: ModelFacts, overrides: dict[str, Any], where: str, weights: bool
) -> tuple[dict[str, Any], bool]:
    """``(found, complete)``: :data:`~induction_nnsight.models.computed.PROJECTION_KEYS` -> relative paths and
    the value layout, by the user's fields and the familiar names, and whether they say them all. Without
    ``weights`` (nothing to compute with), the output projection is guessed by its width and must be found."""
    children = _children(attention)
    found = {k: _inside(attention, overrides[k], k, where) for k in PROJECTION_KEYS[:4] if k in overrides}
    found.setdefault("o_proj", _output_child(attention, facts.n_heads * facts.d_head, not weights))
    for key, names in (("q_proj", _QUERIES), ("k_proj", _KEYS), ("v_proj", tuple(_VALUES))):
        found.setdefault(key, next((n for n in names if n in children), None))
    found["value_layout"] = overrides.get("value_layout") or _value_layout(found["v_proj"], attention, facts)
    complete = None not in (found["o_proj"], found["v_proj"])
    complete = complete and not (found["value_layout"] == "separate" and None in (found["q_proj"], found["k_proj"]))
    if found["o_proj"] is None and not weights:
        raise InductionError(
            f"cannot find the model's o_proj (a projection taking n_heads * d_head = {facts.n_heads * facts.d_head} "
            f"features) by name in {where} (children: {', '.join(list(children)[:12]) or 'none'}), and on meta "
            "weights not by what it computes: pass set_layout(model, o_proj=...) naming it (a path inside the "
            "attention module, such as inner.o_proj)"
        )
    return found, complete


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


def _norm_kind(module: torch.nn.Module | None) -> tuple[str | None, bool]:
    """``(norm, norm_offset)`` of a norm module: LayerNorm or RMSNorm, and Gemma's ``1 + weight``."""
    if module is None:
        return None, False
    name = type(module).__name__
    layer_norm = isinstance(module, torch.nn.LayerNorm) or ("LayerNorm" in name and "RMS" not in name)
    kind = "layernorm" if layer_norm else "rmsnorm"  # OLMo's own LayerNorm subtracts the mean too
    return kind, "Gemma" in type(module).__name__


def _attention_call(module: torch.nn.Module, attn_implementation: str) -> str:
    """The function ``module.forward`` computes attention with (one of :data:`ATTENTION_CALLS`): transformers'
    interface where it calls it, else torch's ``scaled_dot_product_attention`` (not under eager), else ``softmax``."""
    try:
        source = inspect.getsource(type(module).forward)
    except (OSError, TypeError):
        return DEFAULT_ATTENTION_CALL
    for name in ATTENTION_CALLS:
        if name == "scaled_dot_product_attention" and attn_implementation == "eager":
            continue
        if f"{name}(" in source:
            return name
    return DEFAULT_ATTENTION_CALL


def _post_attention_norm(block: torch.nn.Module, where: str, post_norm: bool | None, name: str | None) -> str | None:
    """The norm applied to the attention output before the residual (Gemma 2/3, OLMo-2), None in pre-norm blocks
    (``name``: the user's child name for it)."""
    children = _children(block)
    if name is not None:
        return f"{where}.{_named(children, (), name, 'post_attention_norm', where)}"
    found = post_norm if post_norm is not None else any(n in children for n in _POST_NORMS)
    found = found or "post_feedforward_layernorm" in children
    name = next((n for n in _POST_ATTENTION_NORMS if n in children), None) if found else None
    return f"{where}.{name}" if name else None


def detect_layout(model, facts: ModelFacts, overrides: dict[str, Any]) -> dict[str, Any]:
    """Every layout field but ``facts``, the ``overrides`` given taken as they are (paths checked to exist).

    Args:
        model: An nnsight ``TransformersModel``.
        facts: The model's facts (head counts and widths).
        overrides: The user's fields (keys of :data:`~induction_nnsight.models.layout.LAYOUT_KEYS`).

    Returns:
        ``field -> value`` for :class:`~induction_nnsight.models.layout.ModelLayout`.

    Raises:
        InductionError: For a path that is not there, or a part not found.
    """
    root = model._module
    layers = _layer_list(root, facts.n_layers, overrides.get("layers"))
    blocks = list(root.get_submodule(layers))
    attention = [
        f"{layers}.{i}.{_attention_child(b, overrides.get('attention'), f'{layers}.{i}')}" for i, b in enumerate(blocks)
    ]
    call = overrides.get("attention_call") or _attention_call(
        root.get_submodule(attention[0]), facts.attn_implementation
    )
    weights = not any(p.is_meta for p in root.parameters())
    q, k, v, o, norms, value_layout, post, computed = [], [], [], [], [], None, [], None
    for i, (block, path) in enumerate(zip(blocks, attention)):
        where = f"{layers}.{i}"
        module = root.get_submodule(path)
        found, complete = _named_projections(module, facts, overrides, path, weights)
        if not complete and weights:  # no familiar names: by what the modules compute (once, the first time)
            given = {k: overrides[k] for k in PROJECTION_KEYS if k in overrides}
            given = {"o_proj": found["o_proj"], **given} if found["o_proj"] else given
            computed = computed or compute_projections(model, facts, path, call, given)
            found = {**found, **computed}
            found = {k: _inside(module, r, k, path) if r and k != "value_layout" else r for k, r in found.items()}
        for paths, key in ((q, "q_proj"), (k, "k_proj"), (v, "v_proj"), (o, "o_proj")):
            paths.append(f"{path}.{found[key]}" if found[key] else None)
        value_layout = found["value_layout"]
        norm = _named(
            _children(block), _PRE_ATTENTION_NORMS, overrides.get("pre_attention_norm"), "pre_attention_norm", where
        )
        norms.append(f"{where}.{norm}" if norm else None)
        post.append(
            _post_attention_norm(block, where, overrides.get("post_norm"), overrides.get("post_attention_norm"))
        )
    final_norm = _final_norm(root, layers, overrides.get("final_norm"))
    first_norm = next((p for p in (*norms, final_norm) if p is not None), None)
    norm, offset = _norm_kind(None if first_norm is None else root.get_submodule(first_norm))
    return {
        "layers": layers,
        "attention": tuple(attention),
        "q_proj": tuple(q),
        "k_proj": tuple(k),
        "v_proj": tuple(v),
        "o_proj": tuple(o),
        "value_layout": value_layout,
        "pre_attention_norm": tuple(norms),
        "final_norm": final_norm,
        "embed": _module_path(root, root.get_input_embeddings(), "embed", overrides.get("embed")),
        "unembed": _module_path(root, root.get_output_embeddings(), "unembed", overrides.get("unembed")),
        "attention_call": call,
        "norm": overrides.get("norm", norm),
        "norm_offset": overrides.get("norm_offset", offset),
        "conv1d": overrides.get("conv1d", is_conv1d(root.get_submodule(o[0]))),
        "post_norm": overrides.get("post_norm", any(p is not None for p in post)),
        "post_attention_norm": tuple(post),
    }
