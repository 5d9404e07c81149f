"""Long context: time and peak memory against sequence length, each contender under a memory cap.

One command (about 15 minutes on 2 cores; ``--lengths`` and ``--contenders`` narrow it)::

    python bench/long_context.py

SmolLM2, batch 1, rows ``[bos] r r`` of ``L - 1`` tokens (halves of ``L / 2 - 1`` random
tokens) for ``L`` = 128 ... 8192. Each contender runs in its own fresh process (the
TransformerLens one in ``.venv-tl``'s Python, skipped when that has no ``transformer_lens``),
which loads the model, warms up on 127 tokens, then caps its own address space with
``resource.setrlimit(RLIMIT_AS)`` at its size after the warm-up plus ``--cap-gib``, and
walks the lengths upwards: an allocation past the cap fails there (an out-of-memory
point), and the longer lengths are not tried. Time is one call (the median of 3 up to
255 tokens; CPU time beside it); peak memory is the resident peak of the timed calls
(``VmHWM`` after ``/proc/self/clear_refs``) minus the resident size before them.

Writes ``bench/long_context.json`` (every measurement, the machine's load) and the Plotly
chart ``charts/bench_long_context.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/long_context.py` puts bench/ first, not the repository root
    sys.path.insert(0, str(ROOT))

LENGTHS = (128, 256, 512, 1024, 2048, 4096, 8192)
CONTENDERS = ("forward-sdpa", "scan-sdpa", "heads-sdpa", "forward-eager", "tutorial-eager", "tl-run-with-cache")
LABELS = {
    "forward-sdpa": "plain forward, sdpa",
    "forward-eager": "plain forward, eager",
    "scan-sdpa": "our scan, sdpa (chunked patterns)",
    "tutorial-eager": "tutorial: save every pattern (eager)",
    "tl-run-with-cache": "TransformerLens run_with_cache",
}
TL_PYTHON = ROOT / ".venv-tl" / "bin" / "python"
GIB = 2**30
MIB = 2**20
LONG = 2048
"""The lengths the targets are read at, from this one up (the scan within 1.5x the sdpa forward pass's
peak memory and 2x its time)."""


def _say(message: str) -> None:
    print(f"[long-context] {message}", file=sys.stderr, flush=True)


def _out_of_memory(error: BaseException) -> bool:
    seen = error
    while seen is not None:
        text = str(seen).lower()
        if (
            isinstance(seen, MemoryError)
            or "allocate" in text
            or "out of memory" in text
            or "not enough memory" in text
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def child(name: str, lengths: list[int], cap: int, out: Path, seed: int) -> None:
    """Run one contender over the lengths in this process, writing each point to ``out`` as it comes."""
    import torch

    from bench.contenders import CONTENDERS as REGISTRY
    from bench.contenders import Context
    from bench.models import SMOLLM2, model_dir
    from bench.worker import _proc_status as _status
    from bench.worker import _tokens

    torch.manual_seed(0)
    ctx = Context(SMOLLM2, model_dir(SMOLLM2))
    ctx.model(REGISTRY[name].needs)
    ctx.set_batch(_tokens(ctx, 1, 63, seed), 63)
    REGISTRY[name].make(ctx)()  # warm-up: thread pools, allocator arenas, nnsight's compiled sources
    gc.collect()
    limit = _status("VmSize") + cap
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    result = {
        "contender": name,
        "cap_bytes": cap,
        "address_space_limit_bytes": limit,
        "rss_after_warmup_bytes": _status("VmRSS"),
        "threads": torch.get_num_threads(),
        "points": [],
    }
    for length in lengths:
        half = length // 2 - 1
        point: dict = {"length": length, "n_tokens": 1 + 2 * half}
        try:
            ctx.set_batch(_tokens(ctx, 1, half, seed), half)
            run = REGISTRY[name].make(ctx)
            repeats = 3 if length <= 256 else 1  # the 127-token warm-up came first, in this process
            gc.collect()
            before = _status("VmRSS")
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            times, cpu = [], []
            for _ in range(repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                outcome = run()
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            point.update(
                status="ok",
                time_s=statistics.median(times),
                times_s=times,
                cpu_s=statistics.median(cpu),
                peak_delta_bytes=max(0, _status("VmHWM") - before),
                peak_rss_bytes=_status("VmHWM"),
                scores=None if outcome.scores is None else outcome.scores.float().tolist(),
            )
            del outcome, run
        except Exception as error:
            point.update(
                status="out_of_memory" if _out_of_memory(error) else "error",
                error=f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}",
            )
        gc.collect()
        result["points"].append(point)
        out.write_text(json.dumps(result))
        shown = (
            f"{point['time_s']:.2f} s, peak +{point['peak_delta_bytes'] / 2**20:.0f} MiB"
            if point["status"] == "ok"
            else point["status"]
        )
        _say(f"{name} {point['n_tokens']} tokens: {shown}")
        if point["status"] != "ok":
            break


def _python_for(name: str) -> str | None:
    if not name.startswith("tl-"):
        return sys.executable
    if not TL_PYTHON.exists():
        return None
    check = subprocess.run([str(TL_PYTHON), "-c", "import transformer_lens"], capture_output=True)
    return str(TL_PYTHON) if check.returncode == 0 else None


def run_contender(
    name: str, lengths: list[int], cap: int, seed: int, timeout: float, mmap_threshold: int | None = None
) -> dict:
    """One fresh process for ``name``; what it wrote, with its exit status and the machine's load."""
    python = _python_for(name)
    if python is None:
        return {"contender": name, "skipped": f"no transformer_lens in {TL_PYTHON}", "points": []}
    load_before = os.getloadavg()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        command = [
            python,
            str(Path(__file__).resolve()),
            "--child",
            name,
            "--lengths",
            ",".join(map(str, lengths)),
            "--cap-gib",
            str(cap / GIB),
            "--seed",
            str(seed),
            "--child-out",
            str(out),
        ]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
        if mmap_threshold:  # glibc then maps every larger block afresh and unmaps it when freed (no reuse)
            env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
        try:
            code = subprocess.run(command, cwd=ROOT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        result = json.loads(out.read_text()) if out.exists() else {"contender": name, "points": []}
    done = {p["length"] for p in result["points"]}
    if code != 0 and len(done) < len(lengths):  # killed mid-length (the cap hit outside Python, or the timeout)
        first = next(length for length in lengths if length not in done)
        result["points"].append(
            {
                "length": first,
                "n_tokens": first - 1,
                "status": "timeout" if code == "timeout" else "out_of_memory",
                "error": f"process ended with {code}",
            }
        )
    result.update(
        exit=code, wall_s=time.perf_counter() - start, loadavg_before=load_before, loadavg_after=os.getloadavg()
    )
    return result


def score_checks(results: list[dict]) -> list[dict]:
    """Largest score difference of every contender's induction scores against the scan's, per length."""
    import torch

    scan = {p["length"]: p.get("scores") for r in results if r["contender"] == "scan-sdpa" for p in r["points"]}
    checks = []
    for r in results:
        for p in r["points"]:
            if r["contender"] != "scan-sdpa" and p.get("scores") and scan.get(p["length"]):
                diff = (torch.tensor(p["scores"]) - torch.tensor(scan[p["length"]])).abs().max()
                checks.append({"contender": r["contender"], "length": p["length"], "max_abs_diff": float(diff)})
    return checks


def _span(values) -> dict[str, float]:
    values = list(values)
    return {"min": min(values), "max": max(values)} if values else {}


def _over(point: dict, ref: dict | None) -> dict[str, float] | None:
    """``point``'s wall time, CPU time and peak memory over ``ref``'s (both measured), else None."""
    if not ref or ref["status"] != "ok" or not all(ref[k] for k in ("time_s", "cpu_s", "peak_delta_bytes")):
        return None
    return {
        "wall": point["time_s"] / ref["time_s"],
        "cpu": point["cpu_s"] / ref["cpu_s"],
        "peak": point["peak_delta_bytes"] / ref["peak_delta_bytes"],
    }


def summary(record: dict) -> dict:
    """The figures the docs quote, derived from the points (nothing here is measured). By contender:
    ``peak_mib`` (peak above the loaded model, MiB) and ``over_forward`` (wall, CPU and peak over the
    sdpa forward pass's) keyed by token count; ``span``, their ranges from ``LONG`` tokens up; and
    ``contenders``: the longest length that ran, the one that ran out of memory, the allocation that
    failed there (MiB, from the error) and the largest score difference from the scan."""
    points = {r["contender"]: list(r["points"]) for r in record["results"]}
    forward = {p["length"]: p for p in points.get("forward-sdpa", [])}
    out: dict = {
        "about": "derived from the points by bench/long_context.py summary(); rewrite with --summarize",
        "cap_gib": record["cap_bytes"] / GIB,
        "peak_mib": {},
        "over_forward": {},
        "span": {},
        "contenders": {},
    }
    for name, pts in points.items():
        ok = [p for p in pts if p["status"] == "ok"]
        out["peak_mib"][name] = {str(p["n_tokens"]): p["peak_delta_bytes"] / MIB for p in ok}
        over = {} if name == "forward-sdpa" else {p["length"]: _over(p, forward.get(p["length"])) for p in ok}
        over = {length: r for length, r in over.items() if r}
        out["over_forward"][name] = {str(forward[length]["n_tokens"]): r for length, r in over.items()}
        long = {length: r for length, r in over.items() if length >= LONG}
        if long:
            out["span"][name] = {
                "from_tokens": forward[min(long)]["n_tokens"],
                **{k: _span(r[k] for r in long.values()) for k in ("wall", "cpu", "peak")},
            }
        failed = next((p for p in pts if p["status"] != "ok"), None)
        allocation = re.search(r"tried to allocate (\d+) bytes", (failed or {}).get("error", ""))
        diffs = [c["max_abs_diff"] for c in record.get("score_checks", []) if c["contender"] == name]
        out["contenders"][name] = {
            "largest_ok_tokens": max((p["n_tokens"] for p in ok), default=None),
            "out_of_memory_tokens": failed["n_tokens"] if failed and failed["status"] == "out_of_memory" else None,
            "failed_allocation_mib": int(allocation[1]) / MIB if allocation else None,
            "max_score_diff_vs_scan": max(diffs, default=None),
        }
    return out


def figure(results: list[dict], cap: int):
    """Time and peak memory against length, one line per contender, out-of-memory points marked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Wall time of one call", "Peak memory above the loaded model"),
        horizontal_spacing=0.1,
    )
    colours = ["#1f77b4", "#d62728", "#7f7f7f", "#ff7f0e", "#2ca02c"]
    for i, r in enumerate(r for r in results if r["points"]):
        ok = [p for p in r["points"] if p["status"] == "ok"]
        label = LABELS.get(r["contender"], r["contender"])
        style = dict(color=colours[i % len(colours)])
        x = [p["n_tokens"] for p in ok]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[p["time_s"] for p in ok],
                name=label,
                legendgroup=label,
                mode="lines+markers",
                line=style,
                hovertemplate="%{x} tokens: %{y:.2f} s<extra>" + label + "</extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[p["peak_delta_bytes"] / GIB for p in ok],
                name=label,
                legendgroup=label,
                mode="lines+markers",
                line=style,
                showlegend=False,
                hovertemplate="%{x} tokens: %{y:.2f} GiB<extra>" + label + "</extra>",
            ),
            row=1,
            col=2,
        )
        failed = [p for p in r["points"] if p["status"] != "ok"]
        if failed:
            p = failed[0]
            fig.add_trace(
                go.Scatter(
                    x=[p["n_tokens"]],
                    y=[cap / GIB],
                    mode="markers",
                    legendgroup=label,
                    marker=dict(symbol="x", size=12, **style),
                    showlegend=False,
                    hovertemplate=f"%{{x}} tokens: {p['status'].replace('_', ' ')}<extra>{label}</extra>",
                ),
                row=1,
                col=2,
            )
    fig.add_hline(
        y=cap / GIB,
        line_dash="dash",
        line_color="black",
        row=1,
        col=2,
        annotation_text=f"cap {cap / GIB:g} GiB (x: ran out)",
        annotation_position="bottom right",
    )
    for col in (1, 2):
        fig.update_xaxes(
            type="log", title_text="tokens (batch 1)", tickvals=[127, 255, 511, 1023, 2047, 4095, 8191], row=1, col=col
        )
    fig.update_yaxes(type="log", title_text="seconds", row=1, col=1)
    fig.update_yaxes(type="log", title_text="GiB", row=1, col=2)
    fig.update_layout(
        title="SmolLM2-135M at long context: time and memory against length",
        template="plotly_white",
        height=460,
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--cap-gib", type=float, default=4.0, help="address space allowed above the warmed-up process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=720.0, help="seconds per contender process")
    parser.add_argument(
        "--mmap-threshold",
        type=int,
        default=None,
        help="set glibc's MALLOC_MMAP_THRESHOLD_ in the contender processes (bytes)",
    )
    parser.add_argument("--results", default=str(ROOT / "bench" / "long_context.json"))
    parser.add_argument("--chart", default=str(ROOT / "charts" / "bench_long_context.json"))
    parser.add_argument(
        "--summarize",
        action="store_true",
        help="measure nothing: rewrite the summary of --results from its points",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    lengths = sorted(int(x) for x in args.lengths.split(","))
    cap = int(args.cap_gib * GIB)
    if args.child:
        child(args.child, lengths, cap, Path(args.child_out), args.seed)
        return 0
    if args.summarize:
        record = json.loads(Path(args.results).read_text())
        record["summary"] = summary(record)
        Path(args.results).write_text(json.dumps(record, indent=1, allow_nan=False))
        _say(f"rewrote the summary of {args.results}")
        return 0
    import platform

    start = time.perf_counter()
    results = []
    for name in args.contenders.split(","):
        _say(f"{name}: lengths {lengths}, cap {args.cap_gib:g} GiB")
        results.append(run_contender(name, lengths, cap, args.seed, args.timeout, args.mmap_threshold))
    record = {
        "model": "smollm2",
        "batch": 1,
        "cap_bytes": cap,
        "cap_method": "resource.setrlimit(RLIMIT_AS) at the "
        "process's address-space size after loading and a 127-token warm-up, plus the cap",
        "malloc_mmap_threshold": args.mmap_threshold,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "total_wall_s": time.perf_counter() - start,
        "results": results,
        "score_checks": score_checks(results),
    }
    record["summary"] = summary(record)
    Path(args.results).write_text(json.dumps(record, indent=1, allow_nan=False))
    chart = json.loads(figure(results, cap).to_json())
    Path(args.chart).write_text(json.dumps(chart, allow_nan=False))
    _say(f"wrote {args.results} and {args.chart} in {record['total_wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
