"""``induction-nnsight``: the command line. It parses, wires jobs together and prints.

Bad input ends with one line on stderr naming the fix and exit status 2; Ctrl-C ends
with one line, ``interrupted``, and exit status 130, leaving no partial file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from functools import partial

from ..errors import InductionError
from ..names import head_name
from .arguments import EXIT_BAD_INPUT, build_parser, checked_config, checked_run
from .attention_job import AttentionConfig, run_attention
from .heads_job import HeadsConfig, run_heads
from .interrupts import EXIT_INTERRUPTED, INTERRUPTED_LINE
from .jobs import ScanConfig, open_journal
from .outputs import cost_line, default_out, first_missing, prepare_out_dir, remove_created, write_files
from .report import dynamics_summary, effect_with_interval, heads_table
from .run_context import RunContext
from .scan_job import run_scan


def scan_config(args: argparse.Namespace) -> ScanConfig:
    """The :class:`ScanConfig` that parsed model and token arguments describe (checked)."""
    return checked_config(ScanConfig, args)


def guarded(job: Callable[[], int | None]) -> int:
    """Run ``job``; bad input becomes one line on stderr and exit status 2, Ctrl-C one line and 130."""
    try:
        return job() or 0
    except InductionError as error:
        print(f"induction-nnsight: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(INTERRUPTED_LINE, file=sys.stderr)
        return EXIT_INTERRUPTED


def _write(out, files: dict[str, str]) -> None:
    for path in write_files(out, files):
        print(f"wrote {path}", file=sys.stderr)


def _run_journaled(command: str, config, context: RunContext, out, run):
    """``run(config, context=...)`` with the job's journal open in ``out`` (resumed unless ``--no-resume``)
    and in its context; the journal is removed once the result files are written."""
    journal = open_journal(config, out, command)
    results, files = run(config, context=context.replace(journal=journal))
    _write(out, files)
    journal.remove()
    return results, files


def _scan_command(args: argparse.Namespace) -> int:
    config, context = checked_run(ScanConfig, args)
    out = prepare_out_dir(args.out)
    result, files = run_scan(config, context=context)
    _write(out, files)
    print(
        f"model {config.model}: mean loss {result.mean_loss_first_half:.2f} nats on the first half, "
        f"{result.mean_loss_repeated_half:.2f} on the repeated half"
    )
    print(heads_table(result.top_heads))
    return 0


def _heads_command(args: argparse.Namespace) -> int:
    config, context = checked_run(HeadsConfig, args)
    out = prepare_out_dir(args.out)
    _, files, report = run_heads(config, context=context)
    _write(out, files)
    print(report)
    return 0


def _report_command(args: argparse.Namespace) -> int:
    config, context = checked_run(HeadsConfig, args)
    out = prepare_out_dir(args.out)
    _, _, report = run_heads(config, context=context)
    _write(out, {"report.txt": report + "\n"})
    print(report)
    return 0


def _attention_command(args: argparse.Namespace) -> int:
    config, context = checked_run(AttentionConfig, args)
    out = prepare_out_dir(args.out)
    _, files, ascii_view = run_attention(config, context=context)
    _write(out, files)
    print(ascii_view)
    return 0


def _ablate_command(args: argparse.Namespace) -> int:
    from .ablate_job import AblateConfig, run_ablate

    config, context = checked_run(AblateConfig, args)
    out = prepare_out_dir(args.out)
    result, _ = _run_journaled("ablate", config, context, out, run_ablate)
    base, vs = result.baseline, result.top_vs_random
    print(
        f"model {config.model}: repeated-half loss {base.repeated_half_loss:.3f} nats, ICL score {base.icl_score:.3f}"
    )
    top, random = (
        effect_with_interval(vs.top, *vs.top_ci),
        effect_with_interval(vs.random_mean, *vs.random_mean_ci),
    )
    print(
        f"{config.method}-ablating the top {vs.k} induction heads: {top}; {vs.k} random heads: {random} "
        f"(sd {vs.random_std:.3f} over {config.draws} draws)"
    )
    if result.ablated is not None:
        change = result.ablated["repeated_half_loss_change"]
        print(
            f"ablating {args.heads}: repeated-half loss {result.ablated['repeated_half_loss']:.3f} "
            f"(change {effect_with_interval(change['value'], change['ci_low'], change['ci_high'], sign=True)})"
        )
    if result.sweep is not None:
        rows = result.sweep["rows"][:5]
        print(
            "largest single-head effects (95% CI over rows where swept): "
            + "; ".join(
                f"{head_name(r['layer'], r['head'])} "
                + (
                    effect_with_interval(r["delta"], r["ci_low"], r["ci_high"], sign=True, q=r.get("q"))
                    if "ci_low" in r
                    else f"{r['delta']:+.3f}"
                )
                for r in rows
            )
        )
        attribution = result.attribution
        if "pearson_with_sweep" in attribution:
            print(
                f"attribution ({attribution['estimator']}) vs sweep: Pearson r = {attribution['pearson_with_sweep']}, "
                f"Spearman {attribution['spearman_with_sweep']}, top-10 recall {attribution['recall_top10']}, "
                f"top-10 signs right {attribution['sign_agreement_top10']}"
            )
        else:
            verified = sum(v for row in result.sweep["verified"] for v in row)
            print(
                f"--search estimate: {verified:.0f} heads verified exactly, "
                f"the rest estimated ({attribution['estimator']})"
            )
    _print_cost(result.cost)
    return 0


def _print_cost(cost: dict | None) -> None:
    """A job's ``cost`` (passes counted once per row), when it has one."""
    if cost is not None:
        print(cost_line(cost))


def _patch_command(args: argparse.Namespace) -> int:
    from .patch_job import PatchConfig, run_patch

    config, context = checked_run(PatchConfig, args)
    out = prepare_out_dir(args.out)
    result, _ = _run_journaled("patch", config, context, out, run_patch)
    print(f"model {config.model}, pair {result.pair}, metric {result.metric}")
    for site, grid in (("heads", result.heads), ("residual", result.residual), ("qkv", result.qkv)):
        if grid is not None:
            print(f"{site}: clean {grid['clean']:.4f}, corrupted {grid['corrupted']:.4f}")
    if result.heads is not None:
        grid = result.heads
        layer, head = grid["best"]
        recovery = effect_with_interval(
            grid["recovery"][layer][head], grid["recovery_ci_low"][layer][head], grid["recovery_ci_high"][layer][head]
        )
        print(
            f"best head to patch: {head_name(layer, head)} (recovery {recovery}); "
            f"attribution vs exhaustive: Pearson r = {result.attribution['pearson_with_exhaustive']}"
        )
    _print_cost(result.cost)
    return 0


def _cache_command(args: argparse.Namespace) -> int:
    from ..models.cache import cache_dir, cache_entries, clear_cache

    root = cache_dir()
    entries = clear_cache(root) if args.clear else cache_entries(root)
    print(f"model cache {root} ($INDUCTION_NNSIGHT_CACHE): {len(entries)} item(s)" + (" removed" if args.clear else ""))
    for entry in entries:
        print(f"  {entry.name:<40} {entry.size_bytes / 2**20:>9.1f} MiB  {entry.status}")
    print(f"total {sum(e.size_bytes for e in entries) / 2**20:.1f} MiB")
    return 0


def _circuit_command(args: argparse.Namespace) -> int:
    from .circuit_job import CircuitConfig, run_circuit

    config, context = checked_run(CircuitConfig, args)
    out = prepare_out_dir(args.out)
    result, _ = _run_journaled("circuit", config, context, out, run_circuit)
    print(
        f"model {config.model}: repeated-half loss {result.clean_repeated_half_loss:.3f} nats; "
        f"{len(result.edges)} edges in {result.seconds:.1f} s"
    )
    print(result.summary)
    return 0


def _train_command(args: argparse.Namespace) -> int:
    from .train_job import TrainConfig, run_train

    config = checked_config(TrainConfig, args)
    out = prepare_out_dir(config.out)
    results, files = run_train(config)
    _write(out, files)
    loss = {k: float("nan") if v is None else v for k, v in results["last_loss"].items()}  # null: no copied tokens
    print(
        f"{len(results['checkpoints'])} checkpoints in {out} (step {results['checkpoints'][0]['step']} to "
        f"{results['checkpoints'][-1]['step']}); last loss {loss.get('loss', float('nan')):.3f} nats "
        f"(fresh tokens {loss.get('loss_fresh', float('nan')):.3f}, "
        f"copied {loss.get('loss_copied', float('nan')):.3f}); "
        f"{results['seconds']:.0f} s"
    )
    return 0


def _dynamics_command(args: argparse.Namespace) -> int:
    from .dynamics_job import DynamicsConfig, run_dynamics

    config, context = checked_run(DynamicsConfig, args)
    out = prepare_out_dir(config.out)
    results, files = run_dynamics(config, context=context)
    _write(out, files)
    print(dynamics_summary(results))
    return 0


def _dual_route_command(args: argparse.Namespace) -> int:
    from .dual_route_job import DualRouteConfig, dual_route_summary, run_dual_route

    out = prepare_out_dir(args.out)
    config, context = checked_run(DualRouteConfig, args)
    results, _ = _run_journaled("dual-route", config, context, out, run_dual_route)
    print(dual_route_summary(results))
    return 0


def _icl_command(args: argparse.Namespace) -> int:
    from .icl_job import IclConfig, icl_summary, run_icl

    out = prepare_out_dir(args.out)
    config, context = checked_run(IclConfig, args)
    results, files = run_icl(config, context=context)
    _write(out, files)
    print(icl_summary(results))
    return 0


def _explain_command(args: argparse.Namespace) -> int:
    from .explain_job import ExplainConfig, run_explain
    from .explain_journal import JOURNAL_DIR, ExplainJournal
    from .explain_text import summary

    config, context = checked_run(ExplainConfig, args)
    out = prepare_out_dir(args.out)
    explanation, files = run_explain(config, context=context, out=out)  # resumes from out's explain_journal/
    _write(out, files)
    ExplainJournal(out / JOURNAL_DIR, {}).remove()
    print(summary(explanation))
    return 0


_COMMANDS = {
    "scan": _scan_command,
    "heads": _heads_command,
    "report": _report_command,
    "attention": _attention_command,
    "ablate": _ablate_command,
    "patch": _patch_command,
    "cache": _cache_command,
    "circuit": _circuit_command,
    "train": _train_command,
    "dynamics": _dynamics_command,
    "dual-route": _dual_route_command,
    "icl": _icl_command,
    "explain": _explain_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``induction-nnsight``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if hasattr(args, "out") and args.out is None:
        args.out = default_out(args.command)
    if getattr(args, "plan", False):  # the cost before the run: nothing sent (app/plan_job.py)
        from .plan_job import plan_command

        job = partial(plan_command, args, argv)
    else:
        job = partial(_COMMANDS[args.command], args)
    created = first_missing(args.out) if hasattr(args, "out") else None
    status = EXIT_BAD_INPUT
    try:
        status = guarded(job)
    finally:
        if status != 0:  # a failed or interrupted run leaves no (empty) directory it made
            remove_created(args.out, created)
    return status


if __name__ == "__main__":
    sys.exit(main())
