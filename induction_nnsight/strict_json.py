"""Strict JSON and rounding: the one definition every writer of a results, journal or log file uses.

Strict means what ``JSON.parse`` and ``jq`` accept: NaN and infinities are written as ``null``, never as
``NaN``/``Infinity``, and reading refuses those constants. Numbers in result files carry
:data:`DECIMALS` decimals unless a writer states another count.

>>> to_json({"loss": float("nan"), "score": rounded(0.12345678)})
'{\\n "loss": null,\\n "score": 0.123457\\n}'
>>> json_line({"step": 1, "loss": float("inf")})
'{"step": 1, "loss": null}'
>>> parse_strict('{"a": NaN}')
Traceback (most recent call last):
...
ValueError: non-standard JSON constant NaN
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["DECIMALS", "json_line", "parse_strict", "rounded", "strict", "to_json"]

DECIMALS = 6
"""Decimals of the numbers a results file (and the figures drawn from it) holds."""


def strict(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON ``null``), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    return value


def rounded(value: float, decimals: int = DECIMALS) -> float | None:
    """A number for a results file: ``decimals`` decimals, None (``null``) where it is NaN or infinite."""
    value = float(value)
    return round(value, decimals) if math.isfinite(value) else None


def to_json(value: Any) -> str:
    """Strict, deterministic JSON text (indented one space): NaN and infinities become ``null``."""
    return json.dumps(strict(value), indent=1, sort_keys=False, allow_nan=False)


def json_line(value: Any) -> str:
    """Strict JSON on one line (a log line, a journal entry), without the newline."""
    return json.dumps(strict(value), allow_nan=False)


def parse_strict(text: str) -> Any:
    """Parse JSON refusing ``NaN``, ``Infinity`` and ``-Infinity`` (as ``JSON.parse`` and ``jq`` do).

    Raises:
        ValueError: On any non-standard constant.
    """

    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)
