"""Setting a model's layout, checked once with one forward pass on a few tokens (as nnterp does at load).

:func:`set_layout` detects every field the user does not give (by name, or by what the modules
compute: :mod:`~induction_nnsight.models.computed`), then reads one short forward pass through the
layout and checks what each field claims: the attention call's probabilities have
``n_heads`` heads of ``d_head`` features and sum to 1 over keys; the value layout, applied to the
value projection's output and weighted by those probabilities, reproduces the per-head outputs that
enter ``o_proj``; ``o_proj``'s weight, read in the orientation ``conv1d`` says, reproduces its output;
the norm computed by hand as ``norm`` and ``norm_offset`` say reproduces the pre-attention norm's
output. What does not fit is said in one line naming the field and the fix. ``post_norm`` is not
checked. A model with meta weights (built for NDIF) cannot run here: its paths are checked only.
:func:`~induction_nnsight.models.loading.load_model` runs it on every model it loads, so every layout,
detected or given, is checked once before it is used.
"""

from __future__ import annotations

from typing import Any

import nnsight
import torch

from ..errors import InductionError, first_line
from .attention import attention_call_name, layer_attention
from .heads import split_heads
from .layout import ModelLayout, NormSpec, apply_norm, find_layout, keep_layout, norm_eps
from .qkv import qkv_width, value_heads

N_TOKENS = 8  # tokens of the checking pass


def set_layout(model, **overrides: Any) -> ModelLayout:
    """Say where a model keeps its parts and how they compute, for what automatic detection gets wrong.

    Keys: the fields of :class:`~induction_nnsight.models.layout.ModelLayout`
    (:data:`~induction_nnsight.models.layout.LAYOUT_KEYS`) and the facts of
    :class:`~induction_nnsight.models.facts.ModelFacts` (``n_heads``, ``d_head`` ...); module
    paths are names relative to their parent, as nnterp's renaming does (projections may sit deeper
    in the attention module: ``q_proj="inner.query"``)::

        set_layout(model, layers="backbone.blocks", attention="mixer", o_proj="out", value_layout="stacked_qkv")

    Every field not given is detected (projections with unfamiliar names by what they compute, one more
    forward pass); the whole layout is then checked with one forward pass on :data:`N_TOKENS` tokens (see
    the module's docstring).

    Returns:
        The new layout, used by every later call on ``model``.

    Raises:
        InductionError: One line, naming the key that is unknown, the name the model does not
            have, or the field the forward pass shows does not fit, and the fix.
    """
    layout = find_layout(model, overrides)
    if not any(p.is_meta for p in model._module.parameters()):
        check_layout(model, layout)
    return keep_layout(model, layout)


def _misfit(fields: str, found: str, fix: str) -> InductionError:
    """One line: the fields, what the forward pass found, and the ``set_layout(model, ...)`` call that fixes it."""
    return InductionError(f"layout {fields} does not fit the model: {found}; pass set_layout(model, {fix})")


def _read(model, layout: ModelLayout) -> list[dict[str, Any]]:
    """One forward pass on a few tokens; per layer what the checks compare (tensors ``[1, ...]``)."""
    facts = layout.facts
    tokens = [t % facts.vocab_size for t in range(1, N_TOKENS + 1)]
    if facts.bos_token_id is not None:
        tokens = [facts.bos_token_id, *tokens[1:]]
    eager = facts.attn_implementation == "eager"
    calls = [attention_call_name(model.get(path), layout.attention_call, model._module) for path in layout.attention]
    try:
        with torch.no_grad(), model.trace(torch.tensor([tokens])):
            found = []
            for layer in range(facts.n_layers):
                seen: dict[str, Any] = {}
                if layout.pre_attention_norm[layer] is not None:
                    norm = model.get(layout.pre_attention_norm[layer])
                    seen["norm_in"], seen["norm_out"] = norm.input, norm.output
                if layout.v_proj[layer] is not None:
                    seen["values"] = model.get(layout.v_proj[layer]).output
                attention = layer_attention(model.get(layout.attention[layer]), eager, calls[layer])
                seen["query"], seen["key"] = attention.query, attention.key
                fits = attention.probs is not None or (attention.query is not None and attention.query.ndim == 4)
                seen["pattern"] = attention.pattern() if fits else None
                output = model.get(layout.o_proj[layer])
                seen["z"], seen["o_out"] = output.input, output.output
                found.append(seen)
            found = nnsight.save(found)
    except InductionError:
        raise
    except Exception as error:
        first = first_line(error)
        raise InductionError(
            f"the layout's modules do not run as one forward pass reads them ({first}): "
            "pass set_layout(model, ...) with the paths of the blocks, attention, projections and norms"
        ) from None
    return found


@torch.no_grad()
def check_layout(model, layout: ModelLayout) -> None:
    """Check ``layout`` against one forward pass of ``model`` (real weights, here).

    Raises:
        InductionError: One line naming the first field that does not fit, and the fix.
    """
    for layer, seen in enumerate(_read(model, layout)):
        _check_attention(layout, layer, seen)
        _check_output(model, layout, layer, seen)
        if layout.v_proj[layer] is not None:
            _check_values(layout, layer, seen)
        if layout.pre_attention_norm[layer] is not None:
            _check_norm(model, layout, layer, seen)


def _check_attention(layout: ModelLayout, layer: int, seen: dict) -> None:
    facts, pattern = layout.facts, seen["pattern"]
    if pattern is None:
        if facts.attn_implementation == "eager":
            found = f"layer {layer}'s attention call returns no probabilities"
            raise _misfit("attn_implementation='eager'", found, "attn_implementation=<its own, e.g. 'sdpa'>")
        found = f"layer {layer}'s {layout.attention_call}(...) call takes no [batch, head, query, d_head] query"
        raise _misfit(f"attention_call={layout.attention_call!r}", found, "attention_call=...")
    query, key = seen["query"], seen["key"]
    heads = (("n_heads", facts.n_heads, pattern.shape[1]),)
    if query is not None:
        # a kernel may get the key heads repeated for every query head (Falcon's new decoder under sdpa)
        kv = facts.n_kv_heads if key.shape[1] == facts.n_heads != facts.n_kv_heads else key.shape[1]
        heads += (("n_kv_heads", facts.n_kv_heads, kv), ("d_head", facts.d_head, query.shape[-1]))
    for name, claimed, got in heads:
        if claimed != got:
            raise _misfit(f"{name}={claimed}", f"layer {layer}'s attention call reads {got}", f"{name}={got}")
    sums = pattern.float().sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        found = f"layer {layer}'s probabilities sum to {sums.min().item():.3g}..{sums.max().item():.3g} over keys"
        raise _misfit(f"attention_call={layout.attention_call!r}", found, "attention_call=...")


def _check_output(model, layout: ModelLayout, layer: int, seen: dict) -> None:
    """The per-head outputs are ``n_heads * d_head`` wide and ``o_proj``'s weight, read as ``conv1d`` says,
    reproduces its output."""
    facts, z = layout.facts, seen["z"].float()
    if z.shape[-1] != facts.n_heads * facts.d_head:
        found = f"layer {layer}'s o_proj reads {z.shape[-1]} features, not n_heads * d_head"
        raise _misfit(f"n_heads={facts.n_heads}, d_head={facts.d_head}", found, "n_heads=..., d_head=...")
    module = model._module.get_submodule(layout.o_proj[layer])
    weight = module.weight.detach().float()
    weight = weight.T if layout.conv1d else weight  # [out, in]
    bias = getattr(module, "bias", None)
    out = seen["o_out"].float()
    fits = weight.shape == (out.shape[-1], z.shape[-1])
    if fits:
        hand = z @ weight.T + (0.0 if bias is None else bias.detach().float())
        fits = _close(hand, out)
    if not fits:
        found = f"layer {layer}'s o_proj weight {tuple(module.weight.shape)} read that way does not give its output"
        raise _misfit(f"conv1d={layout.conv1d}", found, f"conv1d={not layout.conv1d}")


def _check_values(layout: ModelLayout, layer: int, seen: dict) -> None:
    """The value layout, applied to ``v_proj``'s output and weighted by the pattern, gives the per-head outputs."""
    facts, values = layout.facts, seen["values"].float()  # [1, pos, out]
    fields = f"value_layout={layout.value_layout!r} (n_kv_heads={facts.n_kv_heads}, d_head={facts.d_head})"
    fix = "value_layout=...) naming separate, stacked_qkv, interleaved_qkv or grouped_qkv, "
    fix += "or set_layout(model, n_kv_heads=..., d_head=..."
    width = qkv_width(layout.value_layout, facts.n_heads, facts.n_kv_heads, facts.d_head)
    if values.shape[-1] != width:
        raise _misfit(fields, f"layer {layer}'s v_proj makes {values.shape[-1]} features, not {width}", fix)
    heads = value_heads(values[0].T, layout.value_layout, facts.n_heads, facts.n_kv_heads, facts.d_head)
    group = facts.n_heads // heads.shape[0]  # heads: [kv_head, d_head, pos]
    pattern = seen["pattern"][0].float()  # [head, query, key]
    # one batched product per layer (many tiny ones cost a thread wake-up each on a busy machine)
    hand = pattern @ heads.repeat_interleave(group, 0).transpose(1, 2)  # [head, pos, d_head]
    z = split_heads(seen["z"][0].float(), facts.n_heads, facts.d_head).transpose(0, 1)
    if not _close(hand, z):
        raise _misfit(fields, f"layer {layer}'s values weighted by its pattern do not give its per-head outputs", fix)


def _check_norm(model, layout: ModelLayout, layer: int, seen: dict) -> None:
    """The norm by hand, as ``norm`` and ``norm_offset`` say, gives the pre-attention norm's output."""
    path = layout.pre_attention_norm[layer]
    module = model._module.get_submodule(path)
    eps = norm_eps(model, module)
    if eps is None:  # nothing to compute it with by hand: path patching refuses such a norm itself
        return
    spec = NormSpec(path, layout.norm == "layernorm", layout.norm_offset, float(eps))
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    hand = apply_norm(seen["norm_in"].float(), spec, weight, bias)
    if not _close(hand, seen["norm_out"].float()):
        found = f"layer {layer}'s {path} ({type(module).__name__}) computes otherwise"
        raise _misfit(f"norm={layout.norm!r}, norm_offset={layout.norm_offset}", found, "norm=..., norm_offset=...")


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float noise: ``|a - b| <= 1e-3 (1 + max |b|)``."""
    return a.shape == b.shape and bool(((a - b).abs().max() <= 1e-3 * (1 + b.abs().max())).item())
