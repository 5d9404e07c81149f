"""Sequences per second of the causal sweep (every SmolLM2 head ablated alone), and its peak memory.

    python bench/sweep_rate.py                       # token budgets 1024 and 4096 (the default)
    python bench/sweep_rate.py --layers 16,17,18     # a part of the sweep: the rate, sooner

The sweep of ``induction-nnsight ablate`` (4 rows of 30 repeated tokens after BOS, zero
ablation, 270 heads and the baseline: 271 variants) runs in chunks of variants: each trace
holds as many variants as fit ``max_tokens`` (at most 64 rows), so memory is bounded by the
budget (mostly the ``[rows, pos, vocab]`` logits of one trace), not by the sweep's size.
Each budget runs in a fresh process; the peak is ``VmHWM`` after ``/proc/self/clear_refs``
minus the resident size before the sweep. Writes ``bench/sweep_rate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def child(max_tokens: int, layers: list[int] | None, out: Path) -> None:
    """One sweep at ``max_tokens``, measured."""
    import torch

    from bench.worker import _proc_status as _status
    from induction_nnsight import Execution, load_model
    from induction_nnsight.causal.ablation.sweep import ablate_heads, ablation_sweep, repeated_half_metric
    from induction_nnsight.causal.variants import variants_per_trace
    from induction_nnsight.models.layout import model_facts
    from induction_nnsight.probes.tokens import repeated_tokens

    model = load_model("smollm2-135m", progress=False)
    facts = model_facts(model)
    batch, seq_len = 4, 30
    tokens = repeated_tokens(batch, seq_len, seed=0, bos_token_id=facts.bos_token_id)
    metric = repeated_half_metric(seq_len, bos=True)
    ablate_heads(model, tokens, [(0, 0)])  # warm-up: one trace
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    start, start_cpu = time.perf_counter(), time.process_time()
    execution = Execution(max_tokens=max_tokens)
    sweep = ablation_sweep(model, tokens, metric, layers=layers, execution=execution)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    n_variants = (facts.n_layers if layers is None else len(layers)) * facts.n_heads + 1
    per_trace = variants_per_trace(batch, 0, tokens.shape[1], execution)
    out.write_text(
        json.dumps(
            {
                "max_tokens": max_tokens,
                "layers": layers,
                "n_variants": n_variants,
                "rows_per_variant": batch,
                "n_pos": tokens.shape[1],
                "variants_per_trace": per_trace,
                "traces": -(-n_variants // per_trace),
                "wall_s": wall,
                "cpu_s": cpu,
                "sequences_per_s": n_variants * batch / wall,
                "variants_per_s": n_variants / wall,
                "tokens_per_s": n_variants * batch * tokens.shape[1] / wall,
                "peak_delta_bytes": max(0, _status("VmHWM") - before),
                "torch_threads": torch.get_num_threads(),
                "baseline": sweep.baseline,
                "largest_delta": float(sweep.delta.nan_to_num(float("-inf")).max()),
            }
        )
    )


def summary(rows: list[dict]) -> dict:
    """The figures the docs quote, derived from the rows (nothing here is measured): each budget's peak in
    MiB, the peak per token of the largest budget, the smallest budget's peak and wall time over the
    largest's, and the sweep's sequences (variants times rows)."""
    if not rows:
        return {}
    small, large = min(rows, key=lambda r: r["max_tokens"]), max(rows, key=lambda r: r["max_tokens"])
    return {
        "about": "derived from the rows by bench/sweep_rate.py summary(); rewrite with --summarize",
        "sequences": large["n_variants"] * large["rows_per_variant"],
        "peak_mib": {str(r["max_tokens"]): r["peak_delta_bytes"] / 2**20 for r in rows},
        "peak_mib_per_budget_token": large["peak_delta_bytes"] / 2**20 / large["max_tokens"],
        "smallest_over_largest": {
            "budget": small["max_tokens"] / large["max_tokens"],
            "peak": small["peak_delta_bytes"] / large["peak_delta_bytes"],
            "wall": small["wall_s"] / large["wall_s"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", default="1024,4096")
    parser.add_argument("--layers", help="sweep only these layers (comma-separated); all when omitted")
    parser.add_argument("--results", default=str(ROOT / "bench" / "sweep_rate.json"))
    parser.add_argument(
        "--summarize",
        action="store_true",
        help="measure nothing: rewrite the summary of --results from its rows",
    )
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.summarize:
        record = json.loads(Path(args.results).read_text())
        record["summary"] = summary(record["rows"])
        Path(args.results).write_text(json.dumps(record, indent=1, allow_nan=False))
        return 0
    budgets = [int(x) for x in args.max_tokens.split(",")]
    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    if args.child_out:
        child(budgets[0], layers, Path(args.child_out))
        return 0
    rows = []
    for budget in budgets:
        load = os.getloadavg()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.json"
            subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--max-tokens",
                    str(budget),
                    "--child-out",
                    str(out),
                    *(["--layers", args.layers] if args.layers else []),
                ],
                cwd=ROOT,
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"},
            )
            row = json.loads(out.read_text())
        row.update(loadavg_before=load, loadavg_after=os.getloadavg())
        print(
            f"[sweep] max_tokens {budget}: {row['sequences_per_s']:.1f} sequences/s, {row['wall_s']:.0f} s, "
            f"peak +{row['peak_delta_bytes'] / 2**20:.0f} MiB",
            file=sys.stderr,
            flush=True,
        )
        rows.append(row)
    record = {"model": "smollm2", "rows": rows, "summary": summary(rows)}
    Path(args.results).write_text(json.dumps(record, indent=1, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
