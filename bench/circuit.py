"""The circuit's benchmark row: the default ``induction-nnsight circuit`` run, timed.

    python bench/circuit.py                     # the default: top 5 targets, the 8 strongest loss effects exact
    python bench/circuit.py --exact-losses all  # every loss effect exact
    python bench/circuit.py --top 2 --threads 2 --json /tmp/circuit_bench.json
    python bench/circuit.py --against charts/circuit_results.json --json results/circuit_accuracy.json

Loads the model (not timed), then times one :func:`~induction_nnsight.app.circuit_job.run_circuit`
call with the default settings (8 exact loss effects per target and path, 4 rows of 20 repeated
tokens, zero ablation, paths k, q, v and total, composition scores and the heads pass included).
Prints one Markdown row: variants (edges), distinct runs, the circuit's own seconds (path
patching and composition), the whole job's seconds, seconds per variant, the process's CPU
seconds and the load average before and after.
On a shared machine the wall time depends on the load: compare rows taken at a similar load, and
read the CPU seconds alongside (with 2 threads, busy-waiting threads inflate them under load).

``--against FILE`` runs the targets of a committed circuit whose every loss effect is exact (the
charts' ``circuit_results.json``, same rows) and adds, per path, how the run's edges agree with it:
how many loss effects were exact, the Pearson correlation of the loss effects, how many of the
reference's 10 largest loss effects (absolute) the run made exact, and the largest score difference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HEADER = (
    "| run | variants | runs | circuit (s) | job (s) | per variant (s) | CPU (s) | load before / after |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
)


def distinct_runs(edges: list[dict]) -> int:
    """Interventions actually run: one per k/q/v edge, one per source for every target's total edge."""
    return len({(e["source"], e["path"], None if e["path"] == "total" else e["target"]) for e in edges})


def accuracy(edges: list[dict], reference: list[dict]) -> dict:
    """Per path: the run's edges against the same edges of an all-exact run (see the module docstring)."""
    import torch

    exact = {(e["source"], e["target"], e["path"]): e for e in reference}
    out = {}
    for path in dict.fromkeys(e["path"] for e in edges):
        mine = [e for e in edges if e["path"] == path]
        theirs = [exact[(e["source"], e["target"], path)] for e in mine]
        loss = torch.tensor([[e["loss_effect"] for e in mine], [e["loss_effect"] for e in theirs]])
        flags = [e["loss_exact"] for e in mine]
        top = torch.argsort(loss[1].abs(), descending=True, stable=True)[:10].tolist()
        out[path] = {
            "edges": len(mine),
            "exact_losses": sum(flags),
            "loss_pearson": round(float(torch.corrcoef(loss)[0, 1]), 4),
            "top10_made_exact": sum(flags[i] for i in top),
            "max_score_difference": max(abs(a["effect"] - b["effect"]) for a, b in zip(mine, theirs)),
        }
    return out


def main(argv=None) -> int:
    from induction_nnsight.app.arguments import exact_losses_arg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--exact-losses", type=exact_losses_arg, default=8, help="N or all (default 8, as the command)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the row's numbers here")
    parser.add_argument("--against", type=Path, help="an all-exact circuit_results.json to compare with (its targets)")
    args = parser.parse_args(argv)

    import torch

    from induction_nnsight import load_model
    from induction_nnsight.app.circuit_job import CircuitConfig, run_circuit

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    reference = json.loads(args.against.read_text()) if args.against else None
    targets = reference["settings"]["targets"] if reference else None
    config = CircuitConfig(model=args.model, top=args.top, targets=targets, exact_losses=args.exact_losses)
    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    results, _ = run_circuit(config, model, progress=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    load_after = os.getloadavg()
    edges = results["edges"]
    row = {
        "run": (f"--targets {targets}" if targets else f"--top {args.top}")
        + f" --exact-losses {'all' if args.exact_losses is None else args.exact_losses}",
        "variants": len(edges),
        "runs": distinct_runs(edges),
        "circuit_seconds": results["seconds"],
        "job_seconds": round(wall, 1),
        "per_variant_seconds": round(results["seconds"] / len(edges), 4),
        "cpu_seconds": round(cpu, 1),
        "threads": args.threads,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }
    if reference:
        row["against"] = str(args.against)
        row["accuracy"] = accuracy(edges, reference["edges"])
        row["max_score_difference"] = max(a["max_score_difference"] for a in row["accuracy"].values())
        print(json.dumps(row["accuracy"], indent=1))
    print(HEADER)
    print(
        f"| `{row['run']}` | {row['variants']} | {row['runs']} | {row['circuit_seconds']:.1f} "
        f"| {row['job_seconds']:.1f} "
        f"| {row['per_variant_seconds']:.3f} | {row['cpu_seconds']:.0f} | {load_before[0]:.1f} / {load_after[0]:.1f} |"
    )
    if args.json:
        args.json.write_text(json.dumps(row, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
