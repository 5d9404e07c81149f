"""Where a scan's (or the heads pass's) time goes beyond the forward pass: a cProfile of one call.

    python bench/overhead.py --model gpt2-small --batch 2 --seq-len 50 --threads 1
    python bench/overhead.py --model smollm2 --job heads --batch 1

Prints the median wall and CPU time of the plain forward pass and of the job, then the
top functions of a cProfile of one call, so the
nnsight instrumentation (trace compilation, hooks) can be told apart from the
tensor work (the forward pass, the in-trace reductions).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _median(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeats`` calls after one warm-up call."""
    fn()
    times, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return statistics.median(times), statistics.median(cpu)


def main(argv=None) -> int:
    import torch

    from bench.models import load_hf, load_nnsight, model_dir, token_range
    from induction_nnsight.probes.tokens import Probe, repeated_tokens
    from induction_nnsight.scores.heads import head_scores
    from induction_nnsight.scores.scan import induction_scores, scan

    parser = argparse.ArgumentParser(prog="python bench/overhead.py")
    parser.add_argument("--model", default="gpt2-small")
    parser.add_argument("--attn", default="eager")
    parser.add_argument(
        "--job",
        choices=("scan", "induction", "heads", "kinds"),
        default="scan",
        help="scan (loss + induction), induction (no loss), heads (every kind + loss), kinds (no loss)",
    )
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = model_dir(args.model)
    hf, nn = load_hf(path, args.attn), load_nnsight(path, args.attn)
    config = hf.config
    span = token_range(args.model, config.vocab_size, config.bos_token_id or 0)
    tokens = repeated_tokens(args.batch, args.seq_len, low=span.low, high=span.high, bos_token_id=span.bos)

    def forward():
        with torch.no_grad():
            hf(tokens)

    probe = Probe("repeated", tokens, args.seq_len, 1, 1 + args.seq_len)
    scan_once = {
        "scan": lambda: scan(nn, tokens, args.seq_len),
        "induction": lambda: induction_scores(nn, tokens, args.seq_len),
        "heads": lambda: head_scores(nn, probe),
        "kinds": lambda: head_scores(nn, probe, loss=False),
    }[args.job]

    rows = {name: _median(fn, args.repeats) for name, fn in (("forward (no_grad)", forward), (args.job, scan_once))}
    base, base_cpu = rows["forward (no_grad)"]
    for name, (t, cpu) in rows.items():
        print(f"{name:32s} {t * 1000:9.1f} ms  {t / base:5.2f}x   CPU {cpu * 1000:9.1f} ms  {cpu / base_cpu:5.2f}x")
    profile = cProfile.Profile()
    with contextlib.redirect_stderr(sys.stdout):
        profile.enable()
        scan_once()
        profile.disable()
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
