"""Where a scan's time goes beyond the forward pass: a cProfile of one call.

    python bench/overhead.py --model gpt2-small --batch 2 --seq-len 50 --threads 1

Prints the median wall time of the plain forward pass and of the scan, then the
top functions of a cProfile of one scan call, so the
nnsight instrumentation (trace compilation, hooks) can be told apart from the
tensor work (the forward pass, the in-trace reductions).
"""

from __future__ import annotations

import argparse
import cProfile
import contextlib
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _median(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    import torch

    from bench.models import load_hf, load_nnsight, model_dir, token_range
    from induction_nnsight.scores.scan import scan
    from induction_nnsight.probes.tokens import repeated_tokens

    parser = argparse.ArgumentParser(prog="python bench/overhead.py")
    parser.add_argument("--model", default="gpt2-small")
    parser.add_argument("--attn", default="eager")
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

    def scan_once():
        scan(nn, tokens, args.seq_len)

    rows = {name: _median(fn, args.repeats) for name, fn in (("forward (no_grad)", forward), ("scan", scan_once))}
    base = rows["forward (no_grad)"]
    for name, t in rows.items():
        print(f"{name:32s} {t * 1000:9.1f} ms  {t / base:5.2f}x")
    profile = cProfile.Profile()
    with contextlib.redirect_stderr(sys.stdout):
        profile.enable()
        scan_once()
        profile.disable()
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
