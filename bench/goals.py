"""The issue-15 goals read off a benchmark's results: markdown tables with the target beside each figure.

1. Every head kind in one pass within 1.2x the plain forward pass of the same attention implementation.
2. Peak memory of the scan and the heads pass within 1.3x the plain forward pass's.
4. The induction score at least 3x, every kind at least 2x, the throughput of TransformerLens' ``detect_head``.
5. Memory figures that can be trusted: one ``[batch, head, T, T]`` float32 pattern is a floor for every
   contender that materialises one.
"""

from __future__ import annotations

from .results_index import index

SAME_ATTENTION = {
    "scan-eager": "forward-eager",
    "scan-sdpa": "forward-sdpa",
    "heads-eager": "forward-eager",
    "heads-sdpa": "forward-sdpa",
    "induction-eager": "forward-eager",
    "kinds-eager": "forward-eager",
}
"""Each of our contenders and the plain forward pass of its attention implementation."""

MATERIALISES_PATTERN = (
    "forward-eager",
    "nnsight-forward-eager",
    "body-eager",
    "scan-eager",
    "heads-eager",
    "induction-eager",
    "kinds-eager",
    "tutorial-eager",
    "tl-run-with-cache",
    "tl-detect-head",
)
"""Contenders whose call holds at least one layer's whole ``[batch, head, T, T]`` pattern (eager attention)."""

TIME_TARGET = 1.2
"""Goal 1: the heads pass's time at most this many times the plain forward pass of the same attention."""


def _table(shapes: list[tuple[int, int]], rows: dict[str, list[str]], n_tokens: dict) -> list[str]:
    head = "| | " + " | ".join(f"B={b}, {n_tokens.get((b, t), 2 * t + 1)} tok" for b, t in shapes) + " |"
    lines = [head, "| --- |" + " ---: |" * len(shapes)]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    return lines + [""]


def _cell(value: float | None, target: float, at_most: bool, cpu: float | None = None) -> str:
    """``1.10x``, with `` (miss)`` off target and ``, CPU 1.05x`` when the CPU-time ratio is known."""
    if value is None:
        return "—"
    ok = value <= target if at_most else value >= target
    return f"{value:.2f}x" + ("" if ok else " (miss)") + ("" if cpu is None else f", CPU {cpu:.2f}x")


def _shapes(results: dict, shapes: dict) -> list[tuple[int, int]]:
    s = results["settings"]
    wanted = [(b, s["batch_seq_len"]) for b in s["batches"]]
    return [shape for shape in wanted if shape in shapes]


def _ratio(shapes: dict, shape, name: str, base: str, key: str) -> float | None:
    own, ref = shapes[shape].get(name, {}).get(key), shapes[shape].get(base, {}).get(key)
    return None if own is None or not ref else own / ref


def _against_detect_head(shapes: dict, wanted: list, name: str, target: float) -> list[str]:
    """Goal 4's cells of one contender: ``detect_head``'s time over its time at each shape."""
    return [
        _cell(
            _ratio(shapes, s, "tl-detect-head", name, "median_s"),
            target,
            False,
            _ratio(shapes, s, "tl-detect-head", name, "median_cpu_s"),
        )
        for s in wanted
    ]


def goal_tables(results: dict) -> str:
    """Markdown: one table per goal and model over the batch sweep; "(miss)" marks a wall-time figure off its
    target, and the CPU-time ratio of the same calls follows it (the steadier one on a shared machine)."""
    out = []
    for model, shapes in index(results).items():
        wanted = _shapes(results, shapes)
        if not wanted:
            continue
        n_tokens = {
            shape: next((e.get("n_tokens") for e in shapes[shape].values() if e.get("n_tokens")), None)
            for shape in wanted
        }
        n_tokens = {k: v for k, v in n_tokens.items() if v}
        ours = [n for n in SAME_ATTENTION if any(n in shapes[s] for s in wanted)]
        time_rows = {
            f"{n} / {SAME_ATTENTION[n]}": [
                _cell(
                    _ratio(shapes, s, n, SAME_ATTENTION[n], "median_s"),
                    TIME_TARGET,
                    True,
                    _ratio(shapes, s, n, SAME_ATTENTION[n], "median_cpu_s"),
                )
                for s in wanted
            ]
            for n in ours
            if n.startswith("heads")
        }
        memory_rows = {
            f"{n} / {SAME_ATTENTION[n]}": [
                _cell(_ratio(shapes, s, n, SAME_ATTENTION[n], "peak_delta_bytes"), 1.3, True) for s in wanted
            ]
            for n in ours
            if n.startswith(("scan", "heads"))
        }
        speed_rows = {
            f"tl-detect-head / {n}": _against_detect_head(
                shapes, wanted, n, 2.0 if n.startswith(("heads", "kinds")) else 3.0
            )
            for n in ours
        }
        if any("body-eager" in shapes[s] for s in wanted):
            # what a pass costing the blocks alone would reach (ours stops after the last layer's attention)
            speed_rows["tl-detect-head / body-eager (the blocks alone)"] = _against_detect_head(
                shapes, wanted, "body-eager", 3.0
            )
        out += [f"### {model}", ""]
        if any(time_rows.values()):
            out += [
                "Goal 1, every head kind in one pass: wall time / the plain forward pass of the same "
                "attention (target at most 1.2x):",
                "",
            ] + _table(wanted, time_rows, n_tokens)
        if any(c != "—" for cells in memory_rows.values() for c in cells):
            out += [
                "Goal 2, peak memory / the plain forward pass's of the same attention (target at most 1.3x):",
                "",
            ] + _table(wanted, memory_rows, n_tokens)
        if any(c != "—" for cells in speed_rows.values() for c in cells):
            out += [
                "Goal 4, throughput against TransformerLens' `detect_head` on the same rows (its time / ours; "
                "target at least 3x for the induction score and the scan, 2x for every kind):",
                "",
            ]
            out += _table(wanted, speed_rows, n_tokens)
        out += pattern_floor(results, model, shapes)
    return "\n".join(out)


def floor_sizes(results: dict, model: str, shapes: dict) -> dict | None:
    """Goal 5's sizes at the largest shape whose memory was measured: ``{batch, seq_len, n_tokens,
    pattern_bytes, logits_bytes}`` (one float32 ``[batch, head, T, T]`` pattern, the float32 logits);
    None without the model's facts or a memory figure."""
    facts = results["models"][model].get("time", {}).get("facts")
    measured = [s for s in shapes if any("peak_delta_bytes" in e for e in shapes[s].values())]
    if not facts or not measured:
        return None
    batch, seq_len = max(measured, key=lambda s: s[0] * (2 * s[1] + 1))
    entries = shapes[(batch, seq_len)]
    n = next((e.get("n_tokens") for e in entries.values() if e.get("n_tokens")), 2 * seq_len + 1)
    return {
        "batch": batch,
        "seq_len": seq_len,
        "n_tokens": n,
        "pattern_bytes": 4 * batch * facts["n_heads"] * n * n,
        "logits_bytes": 4 * batch * n * facts["vocab_size"],
    }


def pattern_floor(results: dict, model: str, shapes: dict) -> list[str]:
    """Goal 5's check by hand: at the largest shape, one float32 pattern's size against each measured peak."""
    sizes = floor_sizes(results, model, shapes)
    if sizes is None:
        return []
    facts = results["models"][model]["time"]["facts"]
    batch, n, pattern, logits = (sizes[k] for k in ("batch", "n_tokens", "pattern_bytes", "logits_bytes"))
    entries = shapes[(batch, sizes["seq_len"])]
    lines = [
        f"Goal 5, a check by hand at batch {batch}, {n} tokens: one `[{batch}, {facts['n_heads']}, {n}, {n}]` "
        f"float32 pattern is {pattern / 2**20:.1f} MiB (the `[{batch}, {n}, {facts['vocab_size']}]` float32 "
        f"logits {logits / 2**20:.1f} MiB); every contender that materialises a pattern must show at least "
        "the pattern:",
        "",
        "| contender | peak (MiB) | materialises a pattern | at least one pattern |",
        "| --- | ---: | --- | --- |",
    ]
    for name, e in entries.items():
        peak = e.get("peak_delta_bytes")
        if peak is None:
            continue
        held = name in MATERIALISES_PATTERN
        floor = pattern // batch if name == "tl-detect-head" else pattern  # detect_head runs one row at a time
        verdict = ("yes" if peak >= floor else "**no**") if held else "—"
        what = ("one row's" if name == "tl-detect-head" else "yes") if held else "no (sdpa, or by chunks)"
        lines.append(f"| {name} | {peak / 2**20:,.1f} | {what} | {verdict} |")
    return lines + [""]
