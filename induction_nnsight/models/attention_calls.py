"""Which call in an attention module's ``forward`` makes its pattern, found once per model.

The layout's ``attention_call`` names the function (see
:data:`~induction_nnsight.models.detect.ATTENTION_CALLS`): transformers' ``attention_interface``, torch's
``scaled_dot_product_attention`` (families with their own attention code, under ``sdpa``) or a
``softmax`` of their own (under ``eager``). A forward may call it on several branches (Falcon: one for
rotary, one for ALiBi); the branch that runs is the one whose line a short forward pass executes, found
once with :func:`sys.settrace` on the attention's own code and cached.
"""

from __future__ import annotations

import inspect
import re
import sys
import weakref

import torch

from ..errors import InductionError

__all__ = ["attention_call_name", "call_query_argument", "executed_lines"]

_EXECUTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # torch model -> {code: executed lines}


def executed_lines(root: torch.nn.Module, forward) -> set[int] | None:
    """File line numbers of ``forward`` (a function) that one short forward pass of ``root`` runs; None where
    the model cannot run here (meta weights for NDIF)."""
    code = forward.__code__
    cache = _EXECUTED.setdefault(root, {})
    if code in cache:
        return cache[code]
    if any(p.is_meta for p in root.parameters()):
        return None
    seen: set[int] = set()

    def local(frame, event, _arg):
        if event == "line":
            seen.add(frame.f_lineno)
        return local

    def tracer(frame, event, _arg):
        return local if event == "call" and frame.f_code is code else None

    tokens = torch.ones(1, 4, dtype=torch.long, device=next(root.parameters()).device)
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        with torch.no_grad():
            root(tokens)
    except Exception:
        seen = set()
    finally:
        sys.settrace(previous)
    cache[code] = seen or None
    return cache[code]


def call_query_argument(call_name: str) -> int | None:
    """Where an attention call takes its query (key and value follow): 1 for transformers' interface
    (after ``self``), 0 for torch's ``scaled_dot_product_attention``; None for a softmax (it takes scores)."""
    if "softmax" in call_name:
        return None
    return 0 if "scaled_dot_product_attention" in call_name else 1


def _def_line(forward) -> int:
    """The file line of ``def forward(`` (the compiled source's line 1)."""
    lines, start = inspect.getsourcelines(forward)
    return start + next(i for i, line in enumerate(lines) if line.lstrip().startswith(("def ", "async def ")))


def attention_call_name(attention, function: str = "attention_interface", root: torch.nn.Module | None = None) -> str:
    """The ``.source`` operation name of the call that makes the layer's pattern (``attention_interface_1`` on
    Llama in transformers 5; it changes between versions, so it is looked up).

    Args:
        attention: The layer's attention envoy.
        function: The function the call is made to (the layout's ``attention_call``).
        root: The whole torch model, run once to tell which of several calls runs (None: the first).

    Raises:
        InductionError: When ``forward`` makes no such call, naming the operations it makes.
    """
    try:
        source = attention.source
        compiled = source.compiled
    except Exception as error:
        raise InductionError(
            f"{type(attention._module).__name__}: its forward source is not available to nnsight ({error})"
        ) from error
    lines = str(compiled.source).splitlines()
    found = []
    for name in compiled.names:
        if not re.search(r"(^|_)" + re.escape(function) + r"_\d+$", name):
            continue
        line = compiled.lines[name]  # 1-based
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        if f"{function}(" in text:
            found.append((name, line))
    if not found:
        raise InductionError(
            f"layout attention_call={function!r}: {type(attention._module).__name__}.forward calls no {function}(...) "
            f"({', '.join(compiled.names[:12])} ...); pass set_layout(model, attention_call=...) naming the function "
            "its forward calls with (self, query, key, value, mask) that returns (output, probabilities)"
        )
    if len(found) > 1 and root is not None:
        forward = type(attention._module).forward
        ran = executed_lines(root, forward)
        if ran:
            first = _def_line(forward)
            running = [name for name, line in found if first + line - 1 in ran]
            return (running or [found[0][0]])[0]
    return found[0][0]
