"""Benchmark the induction scan side by side with a plain forward pass, the
tutorial approach (save every attention pattern) and TransformerLens.

One command::

    python bench/run.py                # SmolLM2 and a GPT-2-small-shaped model, full sweep
    python bench/run.py --quick        # a tiny random model, seconds; checks the harness only

Writes ``bench/results.json`` (raw), ``bench/results.md`` (tables) and
``charts/bench_*.json`` (Plotly). Each model is timed in one fresh process
(contenders alternated, warm-up first, median of ``--repeats``); memory is
measured in a fresh process per contender and shape, whose measured call is its
first (no warm-up). TransformerLens rows
run when ``transformer_lens`` imports in the worker's Python (by default
``.venv-tl/bin/python`` when that exists); otherwise they are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/run.py` puts bench/ first, not the repository root
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.contenders import CONTENDERS  # noqa: E402
from bench.models import MODELS  # noqa: E402

FULL = dict(
    models="smollm2,gpt2-small",
    lengths="25,50,100,250,500",
    length_batch=1,
    batches="1,2,5,10,20",
    batch_seq_len=50,
    headline="10,50",
    repeats=5,
    warmup=1,
)
QUICK = dict(
    models="tiny-gpt2",
    lengths="4,8",
    length_batch=1,
    batches="1,2",
    batch_seq_len=8,
    headline="2,8",
    repeats=2,
    warmup=1,
)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny model, tiny shapes, 2 repeats: checks the harness, measures nothing useful",
    )
    parser.add_argument("--models", help=f"comma-separated, from {', '.join(MODELS)} (default smollm2,gpt2-small)")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"comma-separated, from {', '.join(CONTENDERS)} (default all)",
    )
    parser.add_argument("--lengths", help="seq_len values of the length sweep (rows are BOS + 2 * seq_len tokens)")
    parser.add_argument("--length-batch", type=int, help="batch of the length sweep")
    parser.add_argument("--batches", help="batch values of the batch sweep")
    parser.add_argument("--batch-seq-len", type=int, help="seq_len of the batch sweep")
    parser.add_argument("--headline", help="BATCH,SEQ_LEN of the headline table (added to the shapes)")
    parser.add_argument("--repeats", type=int, help="timed rounds per shape (median reported; default 5)")
    parser.add_argument("--warmup", type=int, help="untimed rounds first (default 1)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all CPUs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the per-contender memory processes")
    parser.add_argument("--memory-contenders", help="measure memory for these only (default: every contender)")
    parser.add_argument(
        "--memory-batches",
        help="measure memory at the batch sweep's shapes with these batches only (default: every shape)",
    )
    parser.add_argument(
        "--no-time", action="store_true", help="memory only (e.g. beside a timing run, then merge with bench/merge.py)"
    )
    parser.add_argument("--python", help="interpreter for the workers (default .venv-tl/bin/python if present)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where results.json and results.md go")
    parser.add_argument("--charts", type=Path, default=ROOT / "charts", help="where bench_*.json charts go")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    unknown = [c for c in args.contenders.split(",") if c not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    bad = [m for m in args.models.split(",") if m not in MODELS]
    if bad:
        parser.error(f"unknown model(s) {', '.join(bad)}; choose from {', '.join(MODELS)}")
    return args


def _worker_python(args) -> str:
    if args.python:
        return args.python
    venv = ROOT / ".venv-tl" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


MMAP_THRESHOLD = 128 * 1024
"""glibc's mmap threshold in the memory processes, fixed (not raised as blocks are freed): every block
of 128 KiB or more is mapped when allocated and unmapped when freed, so RSS follows what is alive."""


def _run_worker(python: str, spec: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            TOKENIZERS_PARALLELISM="false",
            OMP_NUM_THREADS=str(spec["threads"]),
        )
        if spec["mode"] == "memory":
            env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
        process = subprocess.Popen(
            [python, "-m", "bench.worker", str(spec_path), str(out_path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        tail: list[str] = []
        try:
            for line in process.stderr:  # progress lines as they come, the rest kept for an error message
                if line.startswith("[bench]"):
                    print(line.rstrip(), file=sys.stderr, flush=True)
                tail = (tail + [line.rstrip()])[-15:]
        finally:
            if process.poll() is None and sys.exc_info()[0] is not None:
                process.kill()  # interrupted: never leave a worker behind
        if process.wait() != 0 or not out_path.exists():
            text = "\n".join(tail)
            raise RuntimeError(f"worker failed ({spec['mode']} {spec['model']} {spec['contenders']}):\n{text}")
        return json.loads(out_path.read_text())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _load() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def shapes_of(args) -> list[list[int]]:
    headline = _ints(args.headline)
    shapes = [(args.length_batch, t) for t in _ints(args.lengths)] + [
        (b, args.batch_seq_len) for b in _ints(args.batches)
    ]
    shapes.append(tuple(headline))
    unique = sorted(set(shapes), key=lambda s: (s[0] * (2 * s[1] + 1), s))  # smallest work first
    return [list(s) for s in unique]


def run(args) -> dict:
    python = _worker_python(args)
    contenders = args.contenders.split(",")
    shapes = shapes_of(args)
    base = dict(shapes=shapes, warmup=args.warmup, repeats=args.repeats, seed=args.seed, threads=args.threads)
    results = {
        "settings": dict(
            models=args.models.split(","),
            contenders=contenders,
            shapes=shapes,
            lengths=_ints(args.lengths),
            length_batch=args.length_batch,
            batches=_ints(args.batches),
            batch_seq_len=args.batch_seq_len,
            headline=_ints(args.headline),
            repeats=args.repeats,
            warmup=args.warmup,
            seed=args.seed,
            quick=args.quick,
            argv=args.argv,
            descriptions={n: CONTENDERS[n].description for n in contenders},
        ),
        "machine": dict(
            started=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            cpu_count=os.cpu_count(),
            cpu_model=_cpu_model(),
            mem_total_gib=_mem_total_gib(),
            load_before=_load(),
            worker_python=python,
        ),
        "models": {},
    }
    memory_shapes = shapes
    if args.memory_batches:
        memory_shapes = [[b, args.batch_seq_len] for b in _ints(args.memory_batches)]
    for model in args.models.split(","):
        timed = {}
        if not args.no_time:
            print(f"[bench] {model}: timing {len(contenders)} contenders on {len(shapes)} shapes", file=sys.stderr)
            timed = _run_worker(python, dict(base, mode="time", model=model, contenders=contenders))
        per_model = {"time": timed, "memory": {}} if timed else {"memory": {}}
        if not args.no_memory:
            for name in (args.memory_contenders or args.contenders).split(","):
                if name in timed.get("skipped", {}):
                    continue
                measured = [
                    _run_worker(python, dict(base, mode="memory", model=model, contenders=[name], shapes=[shape]))
                    for shape in memory_shapes
                ]
                if measured[0].get("skipped"):
                    continue
                per_model["memory"][name] = dict(measured[0], rows=[row for m in measured for row in m["rows"]])
                last = measured[-1]
                results["machine"].update(
                    torch_threads=last["torch_threads"],
                    torch_interop_threads=last["torch_interop_threads"],
                    versions=last["versions"],
                )
        results["models"][model] = per_model
        if timed:
            results["machine"].update(
                torch_threads=timed["torch_threads"],
                torch_interop_threads=timed["torch_interop_threads"],
                versions=timed["versions"],
            )
    results["machine"]["load_after"] = _load()
    return results


def write_outputs(results: dict, out: Path, charts: Path) -> list[Path]:
    """results.json, results.md and the charts; each file written whole, then renamed into place."""
    from bench.charts import ratio_figure, sweep_figure

    out.mkdir(parents=True, exist_ok=True)
    charts.mkdir(parents=True, exist_ok=True)
    results = {**results, "summary": report.summary(results)}  # the figures the docs quote, from the rows
    files = {out / "results.json": json.dumps(results, indent=1), out / "results.md": report.markdown(results)}
    models, s, m = ", ".join(results["models"]), results["settings"], results["machine"]
    machine = f"median of {s['repeats']} rounds on {m['cpu_count']} CPUs, {m.get('torch_threads', '?')} torch threads"
    batch, seq_len = s["headline"]
    files[charts / "bench_time_ratio.json"] = ratio_figure(
        report.headline_ratios(results),
        title=f"Wall time / plain eager forward pass — {models}",
        subtitle=f"batch {batch} x 2 x {seq_len} repeated tokens; {machine}",
    ).to_json()
    for metric, name, y_title, title in (
        (
            "ratio",
            "bench_time_scaling",
            "wall time / forward-eager",
            "Wall time relative to a plain eager forward pass",
        ),
        ("memory", "bench_memory", "peak memory above the model (MiB)", "Peak memory during one call"),
        ("bytes", "bench_saved_bytes", "bytes saved", "Bytes saved out of the forward pass"),
    ):
        panels, x_titles = report.chart_panels(results, metric)
        if panels:
            files[charts / f"{name}.json"] = sweep_figure(
                panels, x_titles=x_titles, y_title=y_title, title=f"{title} — {models}", subtitle=machine, log_x=True
            ).to_json()
    for path, text in files.items():
        tmp = path.with_name(f".{path.name}.partial")
        tmp.write_text(text)
        os.replace(tmp, path)
    return list(files)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except RuntimeError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    for path in write_outputs(results, args.out, args.charts):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
