"""Detection by what modules compute: an attention's projections and value layout where their names say
nothing (renamed, nested one level deeper or more, or one fused projection under another name).

Candidates come from parameter shapes: every ``Linear`` (or GPT-2's ``Conv1D``) anywhere inside the
attention module that takes ``d_model`` features and makes a query/key/value width (``n_heads * d_head``,
``n_kv_heads * d_head``, or a fused ``(n_heads + 2 * n_kv_heads) * d_head``), and every one from
``n_heads * d_head`` back to ``d_model`` features (the output projection). Shapes alone cannot tell keys from
values, nor how a fused projection packs them, so one forward pass on a few tokens settles it: its rows are
one token sequence, row ``r`` with candidate ``r``'s output moved at one position, and what each candidate
computes is read at the attention call (:data:`~induction_nnsight.models.detect.ATTENTION_CALLS`):

* a candidate feeds the query, key or value when moving it moves that argument of the call (one fused
  projection moves all three);
* a fused projection's value layout is the one whose value slices equal the values the call receives
  (``stacked_qkv``, ``interleaved_qkv`` or ``grouped_qkv``, :mod:`~induction_nnsight.models.qkv`);
* the output projection is the candidate whose input is the call's output, its heads side by side.

What stays ambiguous is refused in one line naming what each candidate feeds and the
``set_layout(model, ...)`` keys that say it. The layout found is then checked like any other
(:func:`~induction_nnsight.models.validation.check_layout`).
"""

from __future__ import annotations

from typing import Any

import nnsight
import torch

from ..errors import InductionError, first_line
from .attention_calls import attention_call_name, call_query_argument
from .facts import ModelFacts
from .qkv import COMPONENTS, qkv_width, value_heads

PROJECTION_KEYS = ("q_proj", "k_proj", "v_proj", "o_proj", "value_layout")
FUSED_LAYOUTS = ("stacked_qkv", "interleaved_qkv", "grouped_qkv")  # the order ambiguous widths are tried in
N_TOKENS = 8  # tokens of the detecting pass
_AT = 1  # the position whose candidate outputs are moved


def is_conv1d(module: torch.nn.Module) -> bool:
    """GPT-2's ``Conv1D`` stores its weight ``[in, out]``, the transpose of ``Linear``'s."""
    return type(module).__name__ == "Conv1D"


def features(module: torch.nn.Module) -> tuple[int, int] | None:
    """``(in, out)`` features of a ``Linear`` or ``Conv1D``; None for any other module."""
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    weight = getattr(module, "weight", None)
    if is_conv1d(module) and weight is not None:
        return weight.shape[0], weight.shape[1]
    return None


def _candidates(attention: torch.nn.Module, facts: ModelFacts) -> tuple[list[str], list[str]]:
    """``(feeds, outputs)``: relative paths of the projections that may make q/k/v, and of those that may
    be the output projection, in module order."""
    n, kv, d = facts.n_heads, facts.n_kv_heads, facts.d_head
    widths = {n * d, kv * d, *(qkv_width(layout, n, kv, d) for layout in FUSED_LAYOUTS)}
    feeds, outputs = [], []
    for rel, module in attention.named_modules():
        shape = features(module) if rel else None
        if shape is None:
            continue
        if shape[0] == facts.d_model and shape[1] in widths:
            feeds.append(rel)
        if shape == (n * d, facts.d_model):
            outputs.append(rel)
    return feeds, outputs


def _tokens(facts: ModelFacts, rows: int) -> torch.Tensor:
    tokens = [t % facts.vocab_size for t in range(1, N_TOKENS + 1)]
    if facts.bos_token_id is not None:
        tokens = [facts.bos_token_id, *tokens[1:]]
    return torch.tensor([tokens] * rows)


def _read(model, path: str, call_name: str, feeds: list[str], outputs: list[str], facts: ModelFacts) -> dict:
    """One forward pass: row 0 as it is, row ``r`` with ``feeds[r - 1]``'s output moved at position
    :data:`_AT`. Returns the call's query, key and value ``[row, head, pos, d_head]`` and output, and each
    candidate's input and output in row 0."""
    attention = model._module.get_submodule(path)
    kept: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    noise = torch.Generator().manual_seed(0)

    def hook(rel: str, row: int | None):
        def run(_module, args, output):
            kept.setdefault(rel, (args[0].detach()[0].clone(), output.detach()[0].clone()))
            if row is None:
                return None
            moved = output.clone()
            push = torch.randn(output.shape[-1], generator=noise).to(output.device, output.dtype)
            moved[row, _AT] += push * (1.0 + output.detach().abs().max())
            return moved

        return run

    rows = {rel: r for r, rel in enumerate(feeds, start=1)}
    hooks = [
        attention.get_submodule(rel).register_forward_hook(hook(rel, rows.get(rel)))
        for rel in dict.fromkeys([*feeds, *outputs])
    ]
    at = call_query_argument(call_name)
    device = next(model._module.parameters()).device
    try:
        with torch.no_grad(), model.trace(_tokens(facts, 1 + len(feeds)).to(device)):
            call = getattr(model.get(path).source, call_name)
            args, kwargs = call.inputs
            qkv = [
                args[at + i] if len(args) > at + i else kwargs.get(name)
                for i, name in enumerate(("query", "key", "value"))
            ]
            out = call.output
            seen = nnsight.save([*qkv, out[0] if isinstance(out, tuple) else out])
    except InductionError:
        raise
    except Exception as error:
        first = first_line(error)
        raise InductionError(
            f"cannot run {path} to find its projections by what they compute ({first}): "
            "pass set_layout(model, q_proj=..., k_proj=..., v_proj=..., o_proj=...) naming them"
        ) from None
    finally:
        for handle in hooks:
            handle.remove()
    return {"qkv": seen[:3], "out": seen[3], "kept": kept}


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float noise: ``|a - b| <= 1e-3 (1 + max |b|)``."""
    a, b = a.float(), b.float()
    return a.shape == b.shape and bool(((a - b).abs().max() <= 1e-3 * (1 + b.abs().max())).item())


def _fed(read: dict, feeds: list[str]) -> dict[str, str]:
    """``candidate -> "q"/"k"/"v"/"qkv"/...``: the call's arguments that move when the candidate does."""
    found = {}
    for row, rel in enumerate(feeds, start=1):
        moved = [c for c, t in zip(COMPONENTS, read["qkv"]) if t is not None and not _close(t[row], t[0])]
        found[rel] = "".join(moved)
    return found


def _value_layout(path: str, rel: str, read: dict, facts: ModelFacts) -> str:
    """The fused layout whose value slices of ``rel``'s output equal the values the attention call reads."""
    n, kv, d = facts.n_heads, facts.n_kv_heads, facts.d_head
    out = read["kept"][rel][1]  # [pos, out]
    values = read["qkv"][2][0]  # [head, pos, d_head]: the kv heads, or every query head's (repeated)
    for layout in FUSED_LAYOUTS:
        if qkv_width(layout, n, kv, d) != out.shape[-1]:
            continue
        heads = value_heads(out.T, layout, n, kv, d).transpose(1, 2)  # [kv_head, pos, d_head]
        wanted = values[:: n // heads.shape[0]] if values.shape[0] == n != heads.shape[0] else values
        if _close(heads, wanted):
            return layout
    raise InductionError(
        f"cannot find how {path}.{rel} packs q, k and v: none of {', '.join(FUSED_LAYOUTS)} gives the values "
        f"its attention reads (n_kv_heads={kv}, d_head={d}): pass set_layout(model, value_layout=..., n_kv_heads=...)"
    )


def _output(path: str, outputs: list[str], read: dict, facts: ModelFacts) -> str:
    """The candidate whose input is the attention call's output, heads side by side."""
    out, pos = read["out"][0], N_TOKENS  # [pos, head, d_head] (transformers' interface) or [head, pos, d_head]
    arranged = [x.reshape(pos, -1) for x in (out, out.transpose(0, 1)) if x.shape[0] == pos]
    found = [rel for rel in outputs if any(_close(read["kept"][rel][0], x) for x in arranged)]
    if len(found) != 1:
        width = facts.n_heads * facts.d_head
        shown = ", ".join(outputs) or "none"
        raise InductionError(
            f"cannot find the model's o_proj in {path} by what it computes ({len(found)} of the projections from "
            f"n_heads * d_head = {width} to d_model = {facts.d_model} features ({shown}) take the attention's "
            "output): pass set_layout(model, o_proj=...) naming it"
        )
    return found[0]


def _projections(path: str, fed: dict[str, str], read: dict, facts: ModelFacts) -> dict[str, Any]:
    """``q_proj``, ``k_proj``, ``v_proj`` and ``value_layout`` from what each candidate feeds."""
    by = {what: [rel for rel, got in fed.items() if got == what] for what in ("q", "k", "v", "qkv")}
    if len(by["qkv"]) == 1 and not (by["q"] or by["k"] or by["v"]):
        rel = by["qkv"][0]
        return {"q_proj": None, "k_proj": None, "v_proj": rel, "value_layout": _value_layout(path, rel, read, facts)}
    if all(len(by[c]) == 1 for c in COMPONENTS) and not by["qkv"]:
        return {"q_proj": by["q"][0], "k_proj": by["k"][0], "v_proj": by["v"][0], "value_layout": "separate"}
    shown = "; ".join(f"{rel} feeds {'+'.join(got) or 'none of them'}" for rel, got in fed.items()) or "no candidates"
    raise InductionError(
        f"cannot tell the model's q/k/v projections in {path} by what they compute (moving each: {shown}): "
        "pass set_layout(model, q_proj=..., k_proj=..., v_proj=..., value_layout=...) naming them"
    )


def compute_projections(
    model, facts: ModelFacts, path: str, attention_call: str, given: dict[str, Any]
) -> dict[str, Any]:
    """An attention module's projections and value layout, found by one forward pass (real weights only).

    Args:
        model: An nnsight ``TransformersModel`` with real weights.
        facts: The model's facts (head counts and widths).
        path: The attention module's path (its layer's projections are found; every layer has the same names).
        attention_call: The function its forward computes attention with (the layout's ``attention_call``).
        given: The user's fields among :data:`PROJECTION_KEYS`, taken as they are.

    Returns:
        :data:`PROJECTION_KEYS` -> paths relative to the attention module (``inner.query``; q/k None where one
        fused projection holds them) and the value layout.

    Raises:
        InductionError: One line, for an attention call that takes no query/key/value (a softmax of the
            family's own), no candidate, or what stays ambiguous, naming the ``set_layout`` keys to pass.
    """
    found = {k: given[k] for k in PROJECTION_KEYS if k in given}
    if "o_proj" in found and "v_proj" in found:
        return found
    where = "(query, key, value)"
    if call_query_argument(attention_call) is None:
        raise InductionError(
            f"cannot find the model's projections in {path} by what they compute: its {attention_call}(...) call "
            f"takes no {where}: pass set_layout(model, q_proj=..., k_proj=..., v_proj=..., o_proj=...) naming them"
        )
    feeds, outputs = _candidates(model._module.get_submodule(path), facts)
    if "v_proj" not in found and not feeds:
        raise InductionError(
            f"cannot find the model's v_proj in {path} by name or by what it computes (no projection from "
            f"d_model = {facts.d_model} features to a query/key/value width): pass set_layout(model, v_proj=..., "
            "value_layout=...) naming it"
        )
    call_name = attention_call_name(model.get(path), attention_call, model._module)
    read = _read(model, path, call_name, feeds, outputs, facts)
    if "o_proj" not in found:
        found["o_proj"] = _output(path, outputs, read, facts)
    if "v_proj" not in found:
        fed = {rel: got for rel, got in _fed(read, feeds).items() if rel != found["o_proj"]}
        found = {**_projections(path, fed, read, facts), **found}
    return found
