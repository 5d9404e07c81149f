"""How a job's traces run, as one object: where (``remote``), in what sizes, with what feedback.

Every function that traces takes one ``execution`` argument instead of a parameter per
concern, so a new concern (seeds, sessions, a journal) is one field here, not a parameter in
twenty signatures. ``None`` means :data:`DEFAULT_EXECUTION` (run here, default sizes, progress
bars on).

>>> run = Execution(remote=True, progress=False)
>>> run.remote, run.max_tokens == DEFAULT_MAX_TOKENS
(True, True)
>>> run.replace(progress=True).progress
True
>>> as_execution(None) is DEFAULT_EXECUTION
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InductionError
from .journal import Journal
from .settings import Remote, as_settings

DEFAULT_MAX_TOKENS = 4096
"""Tokens (variants x rows x positions) in one batched trace of a causal sweep."""
DEFAULT_MAX_ROWS = 64
"""Rows in one batched trace of a causal sweep, whatever their length."""
DEFAULT_PATTERN_BUDGET = 2**22
"""Elements of one block of attention rows ``[batch, head, query chunk, key]`` (16 MiB of float32).

56 queries of SmolLM2 at 8,192 tokens: a block that stays in the processor's cache between the
``Q K^T`` product, the softmax and the reductions. On a 2-core EPYC (32 MiB L3) one layer's
second-half rows at 8,191 tokens took 0.40 s with 16 MiB blocks and 1.13 s with 64 MiB blocks,
which spill to memory (docs/benchmarks.md)."""

DEFAULT_TRACES_PER_REQUEST = 16
"""Traces bundled into one request (one nnsight session) at most."""
DEFAULT_REQUEST_BYTES = 50_000_000
"""Bytes of one serialized request at most: half the 100,000,000-byte socket buffer of NDIF's API."""
DEFAULT_REQUEST_SECONDS = 1800.0
"""Estimated server seconds of one request at most: half NDIF's default job time-out (3,600 s)."""


@dataclass(frozen=True)
class Execution:
    """How traces run. Frozen: derive a variant with :meth:`replace`.

    Attributes:
        remote: Where traces run: ``False`` (here), ``True``, a host URL or a
            :class:`~induction_nnsight.ndif.settings.RemoteSettings` (NDIF), or ``"local"``
            (a dry run of a remote request); see :data:`~induction_nnsight.ndif.settings.Remote`.
        max_tokens: The most tokens (variants x rows x positions) one batched trace of a causal
            sweep may hold; more variants are split over several traces.
        max_rows: The most rows one batched trace may hold, whatever their length.
        pattern_budget: The most elements of one block of attention rows
            ``[batch, head, query chunk, key]``: patterns are reduced by chunks of queries, so
            memory grows with the length, not its square.
        progress: Show a progress bar over a job's traces.
        traces_per_request: The most traces one request (one nnsight session) bundles.
        request_bytes: The most bytes of one serialized request; a larger one is split in two
            (a single trace over it is refused in one line).
        request_seconds: The most estimated server seconds of one request: after each request
            the next one holds as many traces as the measured seconds per trace allow.
        journal: Where finished chunks are recorded and read back on resume
            (:class:`~induction_nnsight.ndif.journal.Journal`); None keeps none.
    """

    remote: Remote = False
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_rows: int = DEFAULT_MAX_ROWS
    pattern_budget: int = DEFAULT_PATTERN_BUDGET
    progress: bool = True
    traces_per_request: int = DEFAULT_TRACES_PER_REQUEST
    request_bytes: int = DEFAULT_REQUEST_BYTES
    request_seconds: float = DEFAULT_REQUEST_SECONDS
    journal: Journal | None = None

    def __post_init__(self) -> None:
        as_settings(self.remote)  # refuses a remote value of the wrong kind, in one line
        if not self.request_seconds > 0:
            raise InductionError(f"Execution.request_seconds must be positive, got {self.request_seconds!r}")
        for name in ("max_tokens", "max_rows", "pattern_budget", "traces_per_request", "request_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InductionError(f"Execution.{name} must be a positive integer, got {value!r}")

    def replace(self, **changes) -> Execution:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)


DEFAULT_EXECUTION = Execution()


def as_execution(execution: Execution | None) -> Execution:
    """``execution``, or :data:`DEFAULT_EXECUTION` for None; anything else is refused in one line."""
    if execution is None:
        return DEFAULT_EXECUTION
    if not isinstance(execution, Execution):
        raise InductionError(
            f"execution must be an Execution (e.g. Execution(remote=True)), not {type(execution).__name__}"
        )
    return execution
