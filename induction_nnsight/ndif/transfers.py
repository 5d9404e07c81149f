"""Bytes moved by remote requests: one :class:`Transfer` per request, and their totals.

:class:`~induction_nnsight.ndif.backend.NdifBackend` appends a :class:`Transfer` to
its settings' ``transfers`` after each request; the dry run
(:class:`~induction_nnsight.ndif.dry_run.DryRunBackend`) keeps its own. Job
records report :func:`describe_transfers`. Imports nothing from this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
