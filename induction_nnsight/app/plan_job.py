"""``--plan``: a job's cost on NDIF before the run, with nothing sent and nothing written but ``plan.json``.

:func:`plan_job` runs a command's own job function under a
:class:`~induction_nnsight.app.run_context.RunContext` with a ``plan``: the job's model is its weightless
architecture (:func:`~induction_nnsight.models.weightless.weightless_model`) and every request
goes to a :class:`~induction_nnsight.ndif.plan.PlanBackend`, which measures it instead of sending
it. The job's results are discarded; :func:`plan_table` is what the command prints and
``plan.json`` (with ``--out``) what it writes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..ndif.execution import DEFAULT_REQUEST_BYTES, DEFAULT_REQUEST_SECONDS
from ..ndif.meta_run import meta_reads_as_stand_ins, reset_noise
from ..ndif.plan import DEFAULT_FLOP_RATE, NDIF_JOB_SECONDS, JobPlan
from ..ndif.transfers import RequestTooLarge
from .run_context import RunContext

__all__ = ["PLANNED", "plan_job", "plan_table"]


def _runner(module: str, function: str) -> Callable[[object, RunContext], object]:
    def run(config, context: RunContext):
        from importlib import import_module

        return getattr(import_module(f"{__package__}.{module}"), function)(config, context=context)

    return run


PLANNED: dict[str, Callable[[object, RunContext], object]] = {
    "scan": _runner("scan_job", "run_scan"),
    "heads": _runner("heads_job", "run_heads"),
    "report": _runner("heads_job", "run_heads"),
    "attention": _runner("attention_job", "run_attention"),
    "ablate": _runner("ablate_job", "run_ablate"),
    "patch": _runner("patch_job", "run_patch"),
    "circuit": _runner("circuit_job", "run_circuit"),
    "dual-route": _runner("dual_route_job", "run_dual_route"),
    "icl": _runner("icl_job", "run_icl"),
    "dynamics": _runner("dynamics_job", "run_dynamics"),
    "explain": _runner("explain_job", "run_explain"),
}
"""Commands that take ``--plan``, with the job function each one plans."""


def plan_job(
    command: str,
    config,
    context: RunContext | None = None,
    flop_rate: float = DEFAULT_FLOP_RATE,
    by_shape: bool = True,
) -> JobPlan:
    """Plan ``command``'s job under ``config``: its requests, measured on the weightless model.

    Args:
        command: A key of :data:`PLANNED`.
        config: The command's config (checked by the job as in a real run).
        context: How the job would run (its request budgets; None: ``RunContext()``); its ``plan`` is
            replaced by the one this call fills.
        flop_rate: FLOP/s of the server-time estimate.
        by_shape: Trace one request of each shape on the meta device and reuse its measures for
            the others (the totals are the same; False traces every request, which takes minutes
            for a large model's sweeps).

    Returns:
        The filled :class:`~induction_nnsight.ndif.plan.JobPlan`.

    Raises:
        InductionError: Bad settings, or no config for the model (one line, as in a real run).
    """
    plan = JobPlan(flop_rate=flop_rate, by_shape=by_shape)
    context = (context or RunContext()).replace(plan=plan)
    reset_noise()
    try:
        with meta_reads_as_stand_ins():  # what the job reads from the weights here reads as stand-ins too
            PLANNED[command](config, context)
    except RequestTooLarge as error:  # the real run would stop here, with this line: the plan says so
        plan.stopped = str(error)
    return plan


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,} B"


def plan_table(plan: dict, command: str, model: str) -> str:
    """The plan as the command prints it: a short table, then a line per thing that would not fit."""
    rows = [
        ("requests", f"{plan['requests']:,}"),
        ("bytes up", f"{_bytes(plan['bytes_up'])} (largest request {_bytes(plan['largest_request_bytes'])})"),
        ("bytes down", _bytes(plan["bytes_down"])),
        ("forward passes", f"{plan['forward_passes']:,.1f} rows"),
        ("backward passes", f"{plan['backward_passes']:,.1f} rows"),
        ("tokens", f"{plan['tokens']:,}"),
        (
            "server time",
            f"{plan['server_seconds']:,.1f} s at {plan['flop_rate'] / 1e12:,.0f} TFLOP/s "
            f"(longest request {plan['longest_request_seconds']:,.1f} s)",
        ),
    ]
    lines = [f"plan of {command} on {model} (nothing sent):"]
    lines += [f"  {name:<16} {value}" for name, value in rows]
    if plan.get("stopped"):
        lines.append(f"  the job would stop after these requests: {plan['stopped']}")
    if plan["requests_refused_for_size"]:
        lines.append(
            f"  {plan['requests_refused_for_size']} request(s) over the {_bytes(DEFAULT_REQUEST_BYTES)} budget "
            "were split in halves before sending"
        )
    if plan["requests_over_time_out"]:
        lines.append(
            f"  {plan['requests_over_time_out']} request(s) estimated past NDIF's {NDIF_JOB_SECONDS:,.0f} s "
            "time-out: one trace cannot be split; pass fewer rows (--batch) or tokens (--max-tokens)"
        )
    elif plan["longest_request_seconds"] > DEFAULT_REQUEST_SECONDS:
        lines.append(f"  the longest request is past the {DEFAULT_REQUEST_SECONDS:,.0f} s budget of one request")
    return "\n".join(lines)


def out_given(argv: list[str]) -> bool:
    """Whether ``--out`` was typed (``plan.json`` is written only then)."""
    return any(arg == "--out" or arg.startswith("--out=") for arg in argv)


def plan_command(args: argparse.Namespace, argv: list[str]) -> int:
    """``<command> --plan``: plan the job, print the table, write ``plan.json`` when ``--out`` was given."""
    import sys

    from .arguments import COMMANDS, checked_run
    from .outputs import prepare_out_dir, to_json, write_files

    config, context = checked_run(COMMANDS[args.command].config, args)
    plan = plan_job(args.command, config, context).as_dict()
    print(plan_table(plan, args.command, config.model))
    if out_given(argv):
        for path in write_files(prepare_out_dir(args.out), {"plan.json": to_json(plan)}):
            print(f"wrote {path}", file=sys.stderr)
    return 0
