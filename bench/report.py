"""Turn the workers' raw results into tables (markdown) and chart data."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .goals import SAME_ATTENTION, TIME_TARGET, _ratio, floor_sizes, goal_tables
from .results_index import index

BASELINE = "forward-eager"
MIB = 2**20
HEADS = ("heads-eager", "heads-sdpa")
OURS = ("scan-eager", "scan-sdpa", "heads-eager", "heads-sdpa")
"""Our passes whose memory goal 2 bounds (the scan and the heads pass)."""
CHECKS = ("scores_max_abs_diff_vs_scan", "loss_max_abs_diff_vs_scan")
"""The cross-checks against the scan whose largest difference the summary keeps."""


def _mib(n: float | None) -> str:
    return "—" if n is None else f"{n / 2**20:,.0f}"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} B"


def ratio(entries: dict[str, dict], name: str) -> float | None:
    base = entries.get(BASELINE, {}).get("median_s")
    own = entries.get(name, {}).get("median_s")
    return None if not base or own is None else own / base


def _check_text(checks: dict[str, Any]) -> str:
    parts = []
    if "scores_max_abs_diff_vs_scan" in checks:
        parts.append(f"scores Δ {checks['scores_max_abs_diff_vs_scan']:.1e}")
    if "loss_max_abs_diff_vs_scan" in checks:
        parts.append(f"loss Δ {checks['loss_max_abs_diff_vs_scan']:.1e}")
    if "loss_max_abs_diff_vs_forward" in checks:
        parts.append(f"loss Δ vs forward {checks['loss_max_abs_diff_vs_forward']:.1e}")
    if "pearson_vs_scan" in checks:
        parts.append(f"r = {checks['pearson_vs_scan']:.3f}, top-5 shared {checks['top5_overlap_vs_scan']}/5")
    return "; ".join(parts) or "—"


def headline_table(results: dict) -> str:
    """Markdown: every model at the headline shape, one row per contender."""
    batch, seq_len = results["settings"]["headline"]
    lines = []
    for model, shapes in index(results).items():
        entries = shapes.get((batch, seq_len), {})
        if not entries:
            continue
        n_tokens = next((e.get("n_tokens") for e in entries.values() if e.get("n_tokens")), None)
        lines += [
            f"**{model}**, batch {batch}, {n_tokens} tokens per row (seq_len {seq_len}, repeated, after BOS):",
            "",
            "| contender | median time (s) | / forward-eager | peak memory (MiB above the loaded model) "
            "| saved bytes | cross-check against scan-eager |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for name, e in entries.items():
            r = ratio(entries, name)
            lines.append(
                f"| {name} | {e['median_s']:.3f} | {r:.2f}x | {_mib(e.get('peak_delta_bytes'))} "
                f"| {human_bytes(e.get('saved_bytes'))} | {_check_text(e.get('checks', {}))} |"
                if "median_s" in e
                else f"| {name} | — | — | {_mib(e.get('peak_delta_bytes'))} | {human_bytes(e.get('saved_bytes'))} | — |"
            )
        lines.append("")
    return "\n".join(lines)


def sweep_shapes(results: dict) -> dict[str, list[tuple[int, int]]]:
    """The length sweep (fixed batch) and the batch sweep (fixed seq_len)."""
    s = results["settings"]
    return {
        "length": [(s["length_batch"], t) for t in s["lengths"]],
        "batch": [(b, s["batch_seq_len"]) for b in s["batches"]],
    }


def sweep_table(results: dict, model: str, sweep: str, metric: str) -> str:
    """Markdown: contenders x shapes of one sweep, one metric (``ratio``, ``memory`` or ``bytes``)."""
    shapes = index(results)[model]
    wanted = [shape for shape in sweep_shapes(results)[sweep] if shape in shapes]
    if not wanted:
        return ""
    names: list[str] = []
    for shape in wanted:
        names += [n for n in shapes[shape] if n not in names]

    def header(shape):
        entries = shapes[shape]
        n = next((e.get("n_tokens") for e in entries.values() if e.get("n_tokens")), 2 * shape[1] + 1)
        return f"B={shape[0]}, {n} tok"

    def cell(shape, name):
        e = shapes[shape].get(name, {})
        if metric == "ratio":
            r = ratio(shapes[shape], name)
            return "—" if r is None else f"{r:.2f}x"
        if metric == "memory":
            return _mib(e.get("peak_delta_bytes"))
        return human_bytes(e.get("saved_bytes"))

    lines = ["| contender | " + " | ".join(header(s) for s in wanted) + " |", "| --- |" + " ---: |" * len(wanted)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(cell(s, name) for s in wanted) + " |")
    return "\n".join(lines)


def chart_panels(results: dict, metric: str) -> tuple[dict, dict]:
    """Data for :func:`bench.charts.sweep_figure`: ``(panels, x_titles)``."""
    panels, x_titles = {}, {}
    table = index(results)
    for model, shapes in table.items():
        for sweep, wanted in sweep_shapes(results).items():
            present = [s for s in wanted if s in shapes]
            if len(present) < 2:
                continue
            title = f"{model}: " + (
                "sequence length, batch " + str(present[0][0])
                if sweep == "length"
                else f"batch, {present[0][1]} repeated tokens"
            )
            x_titles[title] = "tokens per row" if sweep == "length" else "batch"
            series = {}
            names: list[str] = []
            for shape in present:
                names += [n for n in shapes[shape] if n not in names]
            for name in names:
                xs, ys = [], []
                for shape in present:
                    e = shapes[shape].get(name, {})
                    xs.append(e.get("n_tokens", 2 * shape[1] + 1) if sweep == "length" else shape[0])
                    if metric == "seconds":
                        ys.append(e.get("median_s"))
                    elif metric == "ratio":
                        ys.append(ratio(shapes[shape], name))
                    elif metric == "memory":
                        v = e.get("peak_delta_bytes")
                        ys.append(None if v is None else v / 2**20)
                    else:
                        ys.append(e.get("saved_bytes"))
                series[name] = (xs, ys)
            panels[title] = series
    return panels, x_titles


def headline_ratios(results: dict) -> dict[str, dict[str, float]]:
    batch, seq_len = results["settings"]["headline"]
    out = {}
    for model, shapes in index(results).items():
        entries = shapes.get((batch, seq_len), {})
        ratios = {name: ratio(entries, name) for name in entries}
        out[model] = {k: v for k, v in ratios.items() if v is not None}
    return out


def markdown(results: dict) -> str:
    """The whole ``results.md``: settings, headline table, sweep tables, skipped contenders."""
    s = results["settings"]
    m = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `python bench/run.py {' '.join(s['argv'])}`".rstrip() + f" on {m['started']}.",
        "",
        *(
            [
                f"Merged by `bench/merge.py` from {len(s['merged_argv'])} runs made side by side: "
                + "; ".join(f"`python bench/run.py {' '.join(a)}`" for a in s["merged_argv"])
                + f" (load averages before/after each: {', '.join(' -> '.join(x) for x in m['merged_loads'])}).",
                "",
            ]
            if s.get("merged_argv")
            else []
        ),
        f"- Machine: {m['cpu_count']} CPUs ({m['cpu_model']}), {m['mem_total_gib']:.0f} GiB RAM; "
        f"torch threads {m['torch_threads']} (interop {m['torch_interop_threads']}); load average "
        f"{m['load_before']} before, {m['load_after']} after.",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}.",
        f"- Timing: {s['warmup']} warm-up round(s), then the median of {s['repeats']} rounds; every round calls "
        "every contender once, in an order rotated each round. The heads pass's weight-only score (OV copying) "
        "is computed by its first call (a warm-up) and cached against the weights' version, so the timed calls "
        "reuse it; the memory figures below include it.",
        "- Memory: a fresh process per contender and shape whose measured call is its first (no warm-up call, so "
        "no pages freed by an earlier call are reused unseen), glibc's mmap threshold fixed at 128 KiB "
        "(`MALLOC_MMAP_THRESHOLD_`: every large block mapped on allocation and unmapped on free); the kernel's "
        "peak RSS (`VmHWM`, reset through `/proc/self/clear_refs`) during the call minus the RSS just before "
        "it. The first call also pays one-time costs (lazy initialisation, nnsight's first trace), a few MiB. "
        "Saved bytes: the tensors the call keeps out of the forward pass (what a remote run downloads).",
        "",
        "## At the headline shape",
        "",
        headline_table(results),
    ]
    goals = goal_tables(results)
    if goals:
        lines += ["## Goals of issue 15", "", goals]
    for model in index(results):
        for sweep, label in (("length", "sequence length"), ("batch", "batch")):
            parts = []
            for metric, what in (
                ("ratio", "wall time / forward-eager"),
                ("memory", "peak memory, MiB"),
                ("bytes", "saved bytes"),
            ):
                t = sweep_table(results, model, sweep, metric)
                if t:
                    parts += [f"{what}:", "", t, ""]
            if parts:
                lines += [f"## {model}: scaling with {label}", ""] + parts
    skipped = {
        (model, name): why
        for model, per in results["models"].items()
        for name, why in per.get("time", {}).get("skipped", {}).items()
    }
    if skipped:
        lines += ["## Skipped", ""] + [f"- {model} {name}: {why}" for (model, name), why in skipped.items()] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _span(values) -> dict[str, float]:
    """``{min, max}`` of the values that are not None (empty when none are)."""
    values = [v for v in values if v is not None]
    return {"min": min(values), "max": max(values)} if values else {}


def _cells(per_model: list[dict], table: str, names=None) -> list[float]:
    """Every cell of ``table`` (``{contender: {batch: value}}``) of these models, for ``names`` (all: None)."""
    return [
        v for m in per_model for name, row in m[table].items() if names is None or name in names for v in row.values()
    ]


def _spans(per_model: list[dict]) -> dict[str, Any]:
    """Ranges over the cells of one model or one run's models: per contender, and for the groups the goals name."""
    tables = ("time", "memory_mib", "memory", "detect_head")
    names = {name for m in per_model for table in tables for name in m[table]}
    over = [v for v in _cells(per_model, "time", HEADS) if v > TIME_TARGET]
    checks = [c for m in per_model for c in m["checks"]]
    spans = {table: {name: _span(_cells(per_model, table, {name})) for name in sorted(names)} for table in tables}
    spans = {table: {k: v for k, v in per.items() if v} for table, per in spans.items()}
    return {
        **spans,
        "heads_time": _span(_cells(per_model, "time", HEADS)),
        "heads_time_over_target": {"target": TIME_TARGET, "count": len(over), **_span(over)},
        "heads_memory": _span(_cells(per_model, "memory", HEADS)),
        "ours_memory": _span(_cells(per_model, "memory", OURS)),
        **{key: max((c[key] for c in checks if key in c), default=None) for key in CHECKS},
    }


def _model_summary(results: dict, model: str, shapes: dict) -> dict[str, Any]:
    """One model's batch sweep as ratios (by contender, then batch): wall time and peak memory over the plain
    forward pass of the same attention (``forward-eager`` for a contender with no such pass), peak memory in
    MiB, and ``detect_head``'s time over each contender's (its throughput over theirs)."""
    wanted = [s for s in sweep_shapes(results)["batch"] if s in shapes]
    out: dict[str, Any] = {"time": {}, "memory_mib": {}, "memory": {}, "detect_head": {}, "checks": []}
    for shape in wanted:
        batch = str(shape[0])
        for name, entry in shapes[shape].items():
            base = SAME_ATTENTION.get(name, BASELINE)
            cells = {
                "time": None if name == base else _ratio(shapes, shape, name, base, "median_s"),
                "memory": None if name == base else _ratio(shapes, shape, name, base, "peak_delta_bytes"),
                "memory_mib": None if entry.get("peak_delta_bytes") is None else entry["peak_delta_bytes"] / MIB,
                "detect_head": None
                if name == "tl-detect-head"
                else _ratio(shapes, shape, "tl-detect-head", name, "median_s"),
            }
            for table, value in cells.items():
                if value is not None:
                    out[table].setdefault(name, {})[batch] = value
            if name != "tl-detect-head" and entry.get("checks"):  # detect_head's normalisation differs
                out["checks"].append(entry["checks"])
    times = [e["times_s"] for s in wanted for e in shapes[s].values() if e.get("times_s")]
    out["rounds"] = len(times[0]) if times else None
    sizes = floor_sizes(results, model, shapes)
    if sizes is not None:
        out["pattern_floor"] = {
            "batch": sizes["batch"],
            "n_tokens": sizes["n_tokens"],
            "pattern_mib": sizes["pattern_bytes"] / MIB,
            "logits_mib": sizes["logits_bytes"] / MIB,
        }
    return out


def summary(results: dict) -> dict[str, Any]:
    """The figures the docs quote, derived from the rows (nothing here is measured): per model, the batch
    sweep's ratios and peak memory (:func:`_model_summary`) with their ranges (``span``); per run (``main``:
    the models with no label, else the label of ``bench/merge.py``), the ranges over that run's models."""
    models = {model: _model_summary(results, model, shapes) for model, shapes in index(results).items()}
    runs: dict[str, list[dict]] = {}
    for model, per in models.items():
        runs.setdefault(model.partition(" (")[2].rstrip(")") or "main", []).append(per)
    out = {
        "about": "derived from the rows by bench/report.py summary(); rewrite with python -m bench.report",
        "models": {model: {**per, "span": _spans([per])} for model, per in models.items()},
        "runs": {run: _spans(per_models) for run, per_models in runs.items()},
    }
    for per in out["models"].values():
        del per["checks"]
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.report [RESULTS]``: rewrite the ``summary`` of a results file (``bench/results.json``)
    from its rows, measuring nothing."""
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0] if argv else Path(__file__).resolve().parent / "results.json")
    results = json.loads(path.read_text())
    results["summary"] = summary(results)
    path.write_text(json.dumps(results, indent=1, allow_nan=False))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
