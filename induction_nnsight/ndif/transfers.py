"""Bytes moved by remote requests: one :class:`Transfer` per request, and their totals.

:class:`~induction_nnsight.ndif.backend.NdifBackend` appends a :class:`Transfer` to
its settings' ``transfers`` after each request; the dry run
(:class:`~induction_nnsight.ndif.dry_run.DryRunBackend`) keeps its own. Job
records report :func:`describe_transfers`. :func:`check_size` refuses a request over the
size budget (:class:`RequestTooLarge`, which the session loop answers by splitting the request).
Imports only :mod:`induction_nnsight.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InductionError


class RequestTooLarge(InductionError):
    """A serialized request is over the size budget (``Execution.request_bytes``); nothing was sent."""

    def __init__(self, size: int, budget: int) -> None:
        super().__init__(
            f"one trace's request is {size:,} bytes, over the {budget:,}-byte budget: "
            "pass a smaller --max-tokens (or a larger request budget)"
        )
        self.size = size
        self.budget = budget


def check_size(size: int, budget: int | None) -> None:
    """Raise :class:`RequestTooLarge` when ``size`` bytes exceed ``budget`` (None: no budget)."""
    if budget is not None and size > budget:
        raise RequestTooLarge(size, budget)


@dataclass
class Transfer:
    """Bytes of one remote request: the serialized trace sent, the saved values received."""

    sent_bytes: int
    received_bytes: int
    seconds: float


def describe_transfers(transfers: list[Transfer]) -> dict[str, Any]:
    """Totals of a run's requests: ``{"requests", "sent_bytes", "received_bytes", "seconds"}``."""
    return {
        "requests": len(transfers),
        "sent_bytes": sum(t.sent_bytes for t in transfers),
        "received_bytes": sum(t.received_bytes for t in transfers),
        "seconds": round(sum(t.seconds for t in transfers), 3),
    }
