"""How a job runs, as objects in the open: the NDIF settings every job config names, and the run context.

Two kinds of options describe how a job runs rather than what it finds:

- :class:`NdifOptions`: ``--remote``, ``--ndif-host`` and ``--timeout``, the one definition every job
  config names with :func:`ndif_option` (at its own place in the config: they are settings, in the
  results' ``settings``, whose order they keep).
- :class:`RunContext`: ``--device``, ``--plan``, the request budgets (``--traces-per-request`` ...) and
  the job's journal. None of them is a setting (none is in the results' ``settings`` or in the
  journal's key): the command line builds one from its parsed arguments
  (:func:`~induction_nnsight.app.arguments.run_context`) and passes it to the job, whose
  :meth:`RunContext.execution` makes the :class:`~induction_nnsight.ndif.execution.Execution` its
  traces run under.

A job called without a context runs as ``RunContext()`` says: here on the default device, default
request budgets, no journal, no plan.

>>> from induction_nnsight.app.jobs import ScanConfig
>>> run = RunContext(traces_per_request=4).execution(ScanConfig(), progress=False)
>>> run.remote, run.traces_per_request, run.progress, run.journal
(False, 4, False, None)
>>> RunContext(plan=JobPlan()).execution(ScanConfig()).remote.plan is not None  # --plan: measured, not sent
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..models.devices import DEVICES, resolve_device
from ..ndif.execution import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_REQUEST_BYTES,
    DEFAULT_REQUEST_SECONDS,
    DEFAULT_TRACES_PER_REQUEST,
    Execution,
)
from ..ndif.journal import Journal
from ..ndif.plan import JobPlan
from ..ndif.settings import DEFAULT_TIMEOUT, RemoteSettings
from .options import like, option, positive, seconds

__all__ = ["NdifOptions", "RunContext", "ndif_option"]


@dataclass(frozen=True)
class NdifOptions:
    """Where a job's traces run: the one definition of the NDIF settings of every job config.

    A job config names each field with :func:`ndif_option`; :meth:`RunContext.remote_settings` reads them.

    Attributes:
        remote: Run the traces on NDIF.
        ndif_host: The NDIF API URL (None: ``NDIF_HOST``, else nnsight's config); giving it implies ``remote``.
        timeout: Seconds to wait for a request's result before giving up.
    """

    remote: bool = option(False, help="run the traces on NDIF (host from NDIF_HOST or nnsight's config)", group="NDIF")
    ndif_host: str | None = option(
        None,
        help="NDIF API URL, e.g. https://api.ndif.us (implies --remote)",
        metavar="URL",
        group="NDIF",
        implies="remote",
    )
    timeout: float = option(
        DEFAULT_TIMEOUT,
        help="give up on an NDIF request after this long",
        parse=seconds,
        metavar="SECONDS",
        group="NDIF",
    )


def ndif_option(name: str):
    """Field ``name`` (``remote``, ``ndif_host`` or ``timeout``) of :class:`NdifOptions`, for a job config.

    Example:
        ``timeout: float = ndif_option("timeout")``
    """
    return like(NdifOptions, name)


def _planned(on: bool) -> JobPlan | None:
    """``--plan`` -> a :class:`~induction_nnsight.ndif.plan.JobPlan` to fill (None without it)."""
    return JobPlan() if on else None


@dataclass(frozen=True)
class RunContext:
    """How a job runs here, not what it finds: passed from the command line to the job. Frozen: derive a
    variant with :meth:`replace`.

    Each field with an option is a command-line option of every command that traces
    (:data:`~induction_nnsight.app.arguments.TRACED`); none is a setting.

    Attributes:
        device: Where the model is loaded here (None: transformers' default, the CPU; the command
            line's default is ``cpu``, resolved by :func:`~induction_nnsight.models.devices.resolve_device`).
        plan: ``--plan``: the :class:`~induction_nnsight.ndif.plan.JobPlan` the job's requests fill
            instead of running (:func:`~induction_nnsight.app.plan_job.plan_job`); the job's model is
            then its weightless architecture.
        traces_per_request: The most traces one request (one nnsight session) bundles.
        request_bytes: The most bytes of one serialized request.
        request_seconds: The most estimated server seconds of one request.
        journal: The job's journal (:func:`~induction_nnsight.app.jobs.open_journal`): finished chunks
            recorded and read back on resume; None keeps none.
    """

    device: str | None = option(
        None,
        help="where the model runs here: cpu, cuda, mps, or auto (the best this machine has)",
        flag="--device",  # metavar DEVICE, not the choices
        choices=DEVICES,
        cli_default="cpu",
        finish=resolve_device,  # a device this machine lacks: one line, before any load
    )
    plan: JobPlan | None = option(
        None,
        help="print what the job would send to NDIF and cost there (requests, bytes, passes, tokens, server "
        "time), traced on the model's weightless architecture; nothing is sent, and only plan.json is written "
        "(with --out)",
        flag="--plan",
        cli_default=False,
        type_name="bool",
        group="NDIF",
        finish=_planned,
    )
    traces_per_request: int = option(
        DEFAULT_TRACES_PER_REQUEST,
        help="the most traces one request (one nnsight session) bundles",
        parse=positive,
        group="NDIF",
    )
    request_bytes: int = option(
        DEFAULT_REQUEST_BYTES,
        help="the most bytes of one serialized request; a larger one is split in two before it is sent",
        parse=positive,
        metavar="BYTES",
        group="NDIF",
    )
    request_seconds: float = option(
        DEFAULT_REQUEST_SECONDS,
        help="the most estimated server seconds of one request (half NDIF's default job time-out)",
        parse=seconds,
        metavar="SECONDS",
        group="NDIF",
    )
    journal: Journal | None = None

    @property
    def planned(self) -> bool:
        """Whether the job is planned (``--plan``) rather than run."""
        return self.plan is not None

    def replace(self, **changes) -> RunContext:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)

    def remote_settings(self, config: NdifOptions) -> RemoteSettings | None:
        """NDIF settings of a config with :class:`NdifOptions`' fields (None: run locally); under
        ``--plan``, settings that plan every request instead of sending it."""
        if self.plan is not None:
            return RemoteSettings(host=config.ndif_host, timeout=config.timeout, check_hosted=False, plan=self.plan)
        if not config.remote:
            return None
        return RemoteSettings(host=config.ndif_host, timeout=config.timeout)

    def execution(self, config: NdifOptions, progress: bool = True) -> Execution:
        """How ``config``'s traces run: here, or on NDIF (:meth:`remote_settings`); the config's
        ``max_tokens`` where it has that option; this context's request budgets and journal; a progress
        bar when ``progress``."""
        return Execution(
            remote=self.remote_settings(config) or False,
            max_tokens=getattr(config, "max_tokens", DEFAULT_MAX_TOKENS),
            progress=progress,
            traces_per_request=self.traces_per_request,
            request_bytes=self.request_bytes,
            request_seconds=self.request_seconds,
            journal=self.journal,
        )
