"""``--plan``: what a job would send to NDIF and what it would cost there, with nothing sent.

A job run in plan mode runs its own code on a weightless model
(:func:`~induction_nnsight.models.weightless.weightless_model`) with ``remote`` settings whose
``plan`` is a :class:`JobPlan`; :func:`~induction_nnsight.ndif.backend.remote_backend` then gives
every trace and session a :class:`PlanBackend`, which

1. serializes the request exactly as NDIF's client does (nnsight's ``RequestModel.serialize``,
   zstd, this package shipped by value): its length is the request's bytes up, and a request over
   ``Execution.request_bytes`` is refused as on NDIF, so the session loop splits it the same way;
2. runs the request here on the meta model (:mod:`~induction_nnsight.ndif.meta_run`), counting
   its forward and backward passes and tokens;
3. takes the bytes down from the values it saved: what ``torch.save`` of real tensors of their
   shapes and dtypes weighs (uncompressed; NDIF compresses results with zstd, which shrinks
   floating-point values little, so this is a slight upper bound), and hands the job stand-in
   CPU tensors of those shapes (:func:`~.meta_run.stand_in`) so its code finishes;
4. estimates the request's server seconds from its FLOPs at :data:`DEFAULT_FLOP_RATE`.

Steps 1-4 are slow for a large model (a 405B forward pass on the meta device takes seconds here,
and serializing a request ships this package's source, half a second), so the session loop keys
each trace by what its cost depends on (:data:`~induction_nnsight.ndif.sessions.ChunkShape`) and a
plan runs one trace of each key alone on the meta device (:meth:`PlanBackend.probe`): a request is
priced from its traces' measures (passes and FLOPs add up, the saved values' sizes follow from
their shapes), and a request whose traces have the keys of one serialized before takes its size
(requests of one shape differ only in which variants they hold, a few bytes of compressed
pickle). The totals equal those of running every request, the bytes up within 0.1%
(``tests/integration/test_plan_shapes.py``, every command).

The session loop sizes the next request by the estimated seconds of the last one, as it would
by the measured ones on NDIF (:func:`~induction_nnsight.ndif.sessions.run_chunks`).

What a plan cannot know: the values. Everything the job reads back is a stand-in, so what it decides
from values (which heads score highest, where to stop) is arbitrary; jobs whose amount of work
depends on such a decision should be planned with that choice given (e.g. ``circuit --targets``).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .internals import saved_values, wrapped_module
from .meta_run import PassCount, counting_passes, meta_reads_as_stand_ins, noise_kept, stand_in
from .transfers import RequestTooLarge, check_size

__all__ = [
    "BACKWARD_FLOPS",
    "DEFAULT_FLOP_RATE",
    "NDIF_JOB_SECONDS",
    "JobPlan",
    "PlanBackend",
    "RequestPlan",
    "matmul_parameters",
]

DEFAULT_FLOP_RATE = 4e14
"""FLOP/s a request runs at on NDIF, for the server-time estimate: 400 TFLOP/s, about 40% of one
H100's dense bf16 peak (989 TFLOP/s), a usual utilization for batched inference of short rows. A
model sharded over several GPUs runs its layers one after another, so one request sees about one
GPU's rate. Queueing, loading and transfer times are not included."""
BACKWARD_FLOPS = 2.0
"""FLOPs of a backward pass per FLOP of the forward pass (the same rule as
:data:`~induction_nnsight.causal.cost.BACKWARD_FORWARDS`)."""
NDIF_JOB_SECONDS = 3600.0
"""NDIF's default time-out of one request (``Execution.request_seconds`` keeps to half of it)."""


def matmul_parameters(model) -> int:
    """Parameters that multiply every token: all of them but the input embedding's lookup table
    (counted when the output layer shares it). A forward pass costs ``2 x`` this many FLOPs per token."""
    module = wrapped_module(model)
    unique = {id(p): p.numel() for p in module.parameters()}
    embedding = module.get_input_embeddings().weight
    output = module.get_output_embeddings()
    tied = output is not None and output.weight is embedding
    return sum(unique.values()) - (0 if tied else embedding.numel())


@dataclass
class RequestPlan:
    """One request: bytes each way, the passes it runs and their FLOPs."""

    bytes_up: int
    bytes_down: int
    passes: PassCount
    flops: float


@dataclass(frozen=True)
class _Like:
    """A saved value's shape and dtype, from which a request of a known shape gets its stand-ins."""

    shape: tuple[int, ...]
    dtype: torch.dtype


def _mapped(value, leaf: type, fn: Callable):
    """``value`` (nested in lists, tuples and dicts, as a trace saves it), each ``leaf`` replaced by ``fn(leaf)``."""
    if isinstance(value, leaf):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_mapped(v, leaf, fn) for v in value)
    if isinstance(value, dict):
        return {k: _mapped(v, leaf, fn) for k, v in value.items()}
    return value


def _likes(value):
    """``value`` with every tensor replaced by its :class:`_Like`."""
    return _mapped(value, torch.Tensor, lambda t: _Like(tuple(t.shape), t.dtype))


def _from_likes(value):
    """The inverse of :func:`_likes`: fresh :func:`~.meta_run.stand_in` tensors."""
    return _mapped(value, _Like, lambda like: stand_in(like.shape, like.dtype))


@dataclass
class _Measured:
    """What a traced request of one shape measured: all of its :class:`RequestPlan` but the bytes up."""

    bytes_down: int
    passes: PassCount
    flops: float
    saved: dict
    """The saved values' :func:`_likes`."""


@dataclass
class JobPlan:
    """A job's requests as a plan collects them; :meth:`as_dict` is ``plan.json``.

    Attributes:
        flop_rate: FLOP/s of the server-time estimate.
        requests: One :class:`RequestPlan` per request, in order.
        refused: Requests refused for their size before sending (each then sent in two halves).
        stopped: Why the job would stop before it finishes (one trace over the request size
            budget), or None; the totals then cover the requests before the stop.
    """

    flop_rate: float = DEFAULT_FLOP_RATE
    requests: list[RequestPlan] = field(default_factory=list)
    refused: int = 0
    stopped: str | None = None
    by_shape: bool = True
    """Trace one request per shape and reuse its measures (False: trace every request, slowly)."""
    measured: dict = field(default_factory=dict, repr=False)
    """Per trace shape, what its first trace measured (:class:`PlanBackend`)."""
    sizes: dict = field(default_factory=dict, repr=False)
    """Per request shape (its traces' shapes in order), the serialized size of its first request."""

    def seconds(self, request: RequestPlan) -> float:
        """Estimated server seconds of ``request``: its FLOPs at :attr:`flop_rate`."""
        return request.flops / self.flop_rate

    def as_dict(self) -> dict:
        """``{"requests", "bytes_up", "bytes_down", "forward_passes", "backward_passes", "tokens",
        "server_seconds", ...}``: totals over the requests, the largest and longest request, the FLOP rate."""
        passes = [r.passes for r in self.requests]
        return {
            "requests": len(self.requests),
            "bytes_up": sum(r.bytes_up for r in self.requests),
            "bytes_down": sum(r.bytes_down for r in self.requests),
            "forward_passes": round(sum(p.forward_passes for p in passes), 2),
            "backward_passes": round(sum(p.backward_passes for p in passes), 2),
            "tokens": sum(p.tokens for p in passes),
            "server_seconds": round(sum(r.flops for r in self.requests) / self.flop_rate, 3),
            "flops": sum(r.flops for r in self.requests),
            "flop_rate": self.flop_rate,
            "largest_request_bytes": max((r.bytes_up for r in self.requests), default=0),
            "longest_request_seconds": round(max((self.seconds(r) for r in self.requests), default=0.0), 3),
            "requests_over_time_out": sum(self.seconds(r) > NDIF_JOB_SECONDS for r in self.requests),
            "requests_refused_for_size": self.refused,
            "stopped": self.stopped,
        }


def _stand_ins(value):
    """``value`` with every meta tensor replaced by a CPU :func:`~.meta_run.stand_in` of its shape and dtype."""
    return _mapped(value, torch.Tensor, lambda t: stand_in(t.shape, t.dtype) if t.device.type == "meta" else t)


class PlanBackend:
    """A request planned, not sent: serialized as for NDIF, run on the meta model, measured.

    ``server_seconds`` holds the last request's estimated seconds (the session loop sizes the next
    request by it); ``max_bytes`` is the size budget and ``keys`` the request's traces' shapes (None:
    unknown, the request is run), both set by the session loop, which first measures each shape it
    has not seen with :meth:`probe`.
    """

    def __init__(self, model, plan: JobPlan) -> None:
        self.model = model
        self.plan = plan
        self.max_bytes: int | None = None
        self.server_seconds: float | None = None
        self.keys: tuple | None = None

    @property
    def by_shape(self) -> bool:
        """Whether requests are priced from one measured trace per shape (:attr:`JobPlan.by_shape`)."""
        return self.plan.by_shape

    def knows(self, key) -> bool:
        """Whether a trace of shape ``key`` was measured."""
        return key in self.plan.measured

    def probe(self, key) -> Callable[[object], None]:
        """A backend for a session of one trace of shape ``key``: measured and kept, not a request."""

        def measure(tracer) -> None:  # nothing is serialized: no environment to pull
            known, values = _measure(self.model, tracer)
            self.plan.measured[key] = known
            _push(tracer, values)

        return measure

    def __call__(self, tracer) -> None:
        from nnsight.ndif import pull_env
        from nnsight.schema.request import RequestModel

        pull_env()  # as NdifBackend: local modules ship by value
        size = self.plan.sizes.get(self.keys) if self.keys is not None else None
        if size is None:  # serializing ships this package's source: about half a second a request
            size = len(RequestModel.serialize(tracer, compress=True))
            if self.keys is not None:
                self.plan.sizes[self.keys] = size
        try:
            check_size(size, self.max_bytes)
        except RequestTooLarge:
            self.plan.refused += 1
            raise
        if self.keys is not None and all(self.knows(key) for key in self.keys):
            known = _composed([self.plan.measured[key] for key in self.keys])
            values = _from_likes(known.saved)
        else:
            known, values = _measure(self.model, tracer)
        request = RequestPlan(size, known.bytes_down, known.passes, known.flops)
        self.plan.requests.append(request)
        self.server_seconds = self.plan.seconds(request)
        _push(tracer, values)


def _measure(model, tracer) -> tuple[_Measured, dict]:
    """Run a request on the meta model: its measures and its saved values (as stand-ins); a progress bar
    over the blocks it runs when that takes more than two seconds."""
    bar = tqdm(desc="planning on the meta device", unit=" blocks", delay=2, leave=False, file=sys.stderr)
    with bar, noise_kept(), meta_reads_as_stand_ins(), counting_passes(model, bar.update) as count:
        tracer.execute(tracer.info.code)
    values = _stand_ins(saved_values(tracer.info.frame.f_locals))
    n_params = matmul_parameters(model)
    flops = 2.0 * n_params * (count.forward_block_tokens + BACKWARD_FLOPS * count.backward_tokens)
    return _Measured(_saved_bytes(values), count, flops, _likes(values)), values


def _saved_bytes(values: dict) -> int:
    """What ``torch.save`` of ``values`` weighs: the bytes a request sends back."""
    buffer = io.BytesIO()
    torch.save(values, buffer)
    return buffer.getbuffer().nbytes


def _composed(parts: list[_Measured]) -> _Measured:
    """A session's measures from its traces' (each measured as a session of one): passes and FLOPs
    add; each saved list (the session loop saves one list of a value per trace) joins in order."""
    first = parts[0].passes
    passes = PassCount(first.n_layers)
    for part in parts:
        for name in ("block_rows", "block_tokens", "backward_passes", "tokens", "backward_tokens"):
            setattr(passes, name, getattr(passes, name) + getattr(part.passes, name))
    saved = {name: [v for part in parts for v in part.saved[name]] for name in parts[0].saved}
    with noise_kept():  # the sizes only: what comes after draws the same stand-ins as when every request runs
        size = _saved_bytes(_from_likes(saved))
    return _Measured(size, passes, sum(p.flops for p in parts), saved)


def _push(tracer, values: dict) -> None:
    """Hand ``values`` to the job's frame as a session's saved values."""
    import nnsight
    from nnsight.tracing.util import push

    for value in values.values():
        nnsight.save(value)
    push(tracer.info.frame, values)
