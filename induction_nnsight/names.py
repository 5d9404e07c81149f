"""How a head is named: ``L{layer}H{head}``, written and read in this one place.

Every stage may import it (figures included), so a head's name is spelled the same in tables, charts,
reports, JSON files and command-line options.

>>> head_name(18, 6), head_name((18, 6))
('L18H6', 'L18H6')
>>> parse_heads("L18H6, 17.3")
[(18, 6), (17, 3)]
"""

from __future__ import annotations

import re

from .errors import InductionError

__all__ = ["check_heads", "head_name", "parse_heads"]


def head_name(layer: int | tuple[int, int], head: int | None = None) -> str:
    """``(18, 6)`` or ``18, 6`` -> ``"L18H6"``."""
    if head is None:
        layer, head = layer
    return f"L{int(layer)}H{int(head)}"


def parse_heads(text: str, option: str = "--heads") -> list[tuple[int, int]]:
    """``"L18H6,L17H3"`` (or ``"18.6 17.3"``) -> ``[(18, 6), (17, 3)]``.

    Args:
        text: The heads, comma- or space-separated.
        option: The command-line option that gave them, named in the error.

    Raises:
        InductionError: On a malformed head.
    """
    heads = []
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        match = re.fullmatch(r"[Ll](\d+)[Hh](\d+)|(\d+)[.:](\d+)", part)
        if not match:
            raise InductionError(
                f"cannot read head {part!r}: pass {option} as L18H6 (layer 18, head 6), comma-separated"
            )
        layer, head = (int(g) for g in match.groups() if g is not None)
        heads.append((layer, head))
    if not heads:
        raise InductionError(f"no head given: pass {option} as L18H6 (layer 18, head 6), comma-separated")
    return heads


def check_heads(heads: list[tuple[int, int]], n_layers: int, n_heads: int, option: str = "--heads") -> None:
    """Refuse heads outside ``n_layers`` x ``n_heads``, naming ``option`` and the valid ranges.

    Raises:
        InductionError: On a head outside the model.
    """
    for layer, head in heads:
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise InductionError(
                f"head {head_name(layer, head)} is outside the model: pass {option} with layers "
                f"0..{n_layers - 1} and heads 0..{n_heads - 1}"
            )
