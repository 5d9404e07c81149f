"""One benchmark process: times contenders side by side, or measures one contender's memory.

Run by :mod:`bench.run` as ``python -m bench.worker SPEC.json OUT.json``; every
process starts fresh, so one contender's memory never leaks into another's.

``time`` mode loads every contender of one model, then for each batch shape runs
``warmup`` rounds and ``repeats`` timed rounds; each round calls every contender
once, in an order rotated from round to round, so slow drifts of the machine
(other jobs, thermal) fall on all of them alike. Each call's wall time and this
process's CPU time are recorded: on a shared machine with one torch thread the
CPU time is the steadier of the two (other processes' load does not enter it).

``memory`` mode measures one contender at one shape: it loads the model, reads every
weight once (so weights mapped from the file are resident before the call), resets the
kernel's peak-RSS mark (``/proc/self/clear_refs``), makes the first and only call
and reads the peak (``VmHWM``) minus the resident size just before the call. No
warm-up call comes first, so the call cannot reuse pages an earlier call freed;
:mod:`bench.run` also fixes glibc's mmap threshold (``MALLOC_MMAP_THRESHOLD_``) for
these processes, so every large block is mapped on allocation and unmapped on
free, and pages freed while loading the model are not reused unseen either.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import torch


def _proc_status(field: str) -> int:
    """A ``kB`` field of /proc/self/status, in bytes (0 when unavailable)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class _Sampler:
    """Fallback peak-RSS meter: a thread reading RSS every millisecond."""

    def __init__(self):
        import psutil

        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.001)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _tokens(ctx, batch: int, seq_len: int, seed: int) -> torch.Tensor:
    from induction_nnsight.probes.tokens import repeated_tokens

    from .models import token_range

    config = _config_of(ctx)
    bos = config.bos_token_id if config.bos_token_id is not None else 0
    span = token_range(ctx.model_name, config.vocab_size, bos)
    return repeated_tokens(batch, seq_len, seed=seed, low=span.low, high=span.high, bos_token_id=span.bos)


def _config_of(ctx):
    from transformers import AutoConfig

    if not hasattr(ctx, "_config"):
        ctx._config = AutoConfig.from_pretrained(str(ctx.path))
    return ctx._config


def _max_diff(a: torch.Tensor | None, b: torch.Tensor | None) -> float | None:
    if a is None or b is None or a.shape != b.shape:
        return None
    return float((a.float() - b.float()).abs().max())


def _cross_checks(outcomes: dict, tokens: torch.Tensor) -> dict:
    """Each contender's scores and loss against the eager scan (and the forward pass's logits)."""
    from induction_nnsight.scores.losses import per_position_loss

    ref = outcomes.get("scan-eager")
    checks: dict[str, dict] = {}
    forward = outcomes.get("forward-eager")
    for name, outcome in outcomes.items():
        entry: dict = {}
        if ref is not None and name != "scan-eager":
            if outcome.scores is not None and ref.scores is not None:
                if name == "tl-detect-head":
                    a, b = outcome.scores.flatten().float(), ref.scores.flatten().float()
                    entry["pearson_vs_scan"] = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
                    k = min(5, a.numel())
                    entry["top5_overlap_vs_scan"] = len(
                        set(a.topk(k).indices.tolist()) & set(b.topk(k).indices.tolist())
                    )
                else:
                    entry["scores_max_abs_diff_vs_scan"] = _max_diff(outcome.scores, ref.scores)
            entry["loss_max_abs_diff_vs_scan"] = _max_diff(outcome.loss, ref.loss)
        if name == "scan-eager" and forward is not None and outcome.loss is not None:
            entry["loss_max_abs_diff_vs_forward"] = _max_diff(
                outcome.loss, per_position_loss(forward.saved["logits"], tokens)
            )
        checks[name] = {k: v for k, v in entry.items() if v is not None}
    return checks


def time_mode(spec: dict) -> dict:
    from .contenders import CONTENDERS, Context, available
    from .models import model_dir

    ctx = Context(spec["model"], model_dir(spec["model"]))
    names, skipped = [], {}
    for name in spec["contenders"]:
        why = available(name)
        if why:
            skipped[name] = why
        else:
            names.append(name)
    runs = {}
    t0 = time.perf_counter()
    for name in names:  # load every model before timing anything
        ctx.model(CONTENDERS[name].needs)
    load_s = time.perf_counter() - t0
    results = []
    for batch, seq_len in spec["shapes"]:
        ctx.set_batch(_tokens(ctx, batch, seq_len, spec["seed"]), seq_len)
        runs = {name: CONTENDERS[name].make(ctx) for name in names}
        times: dict[str, list[float]] = {name: [] for name in names}
        warmup: dict[str, list[float]] = {name: [] for name in names}
        cpu_times: dict[str, list[float]] = {name: [] for name in names}  # CPU seconds of this process
        outcomes = {}
        n_rounds = spec["warmup"] + spec["repeats"]
        for r in range(n_rounds):
            shift = r % len(names)
            order = names[shift:] + names[:shift]
            for name in order:
                gc.collect()
                start, cpu_start = time.perf_counter(), time.process_time()
                outcome = runs[name]()
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                (times if r >= spec["warmup"] else warmup)[name].append(elapsed)
                if r >= spec["warmup"]:
                    cpu_times[name].append(cpu)
                if r == n_rounds - 1:
                    outcomes[name] = outcome
                del outcome
        checks = _cross_checks(outcomes, ctx.tokens)
        row = {"batch": batch, "seq_len": seq_len, "n_tokens": int(ctx.tokens.shape[1]), "contenders": {}}
        for name in names:
            row["contenders"][name] = {
                "times_s": times[name],
                "median_s": statistics.median(times[name]),
                "warmup_s": warmup[name],
                "cpu_s": cpu_times[name],
                "median_cpu_s": statistics.median(cpu_times[name]),
                "saved_bytes": outcomes[name].saved_bytes(),
                "checks": checks.get(name, {}),
                "note": outcomes[name].note,
            }
        summary = ", ".join(f"{n} {row['contenders'][n]['median_s']:.3f}s" for n in names)
        _say(f"{spec['model']} batch {batch} seq_len {seq_len}: {summary}")
        results.append(row)
        outcomes.clear()
        runs.clear()
    config = _config_of(ctx)
    facts = {
        key: next((getattr(config, f) for f in fields if getattr(config, f, None) is not None), None)
        for key, fields in (
            ("n_layers", ("num_hidden_layers", "n_layer")),
            ("n_heads", ("num_attention_heads", "n_head")),
            ("vocab_size", ("vocab_size",)),
        )
    }
    return {
        "mode": "time",
        "model": spec["model"],
        "load_s": load_s,
        "skipped": skipped,
        "facts": facts,
        "rows": results,
    }


def _make_resident(model) -> None:
    """Read every parameter and buffer once: weights loaded from safetensors may be mapped from the file and
    paged in by the first call that reads them, which would add the model's size to that call's peak."""
    module = getattr(model, "_module", model)
    if isinstance(module, torch.nn.Module):
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                tensor.sum()


def memory_mode(spec: dict) -> dict:
    from .contenders import CONTENDERS, Context, available
    from .models import model_dir

    name = spec["contenders"][0]
    why = available(name)
    if why:
        return {"mode": "memory", "model": spec["model"], "contender": name, "skipped": why, "rows": []}
    ctx = Context(spec["model"], model_dir(spec["model"]))
    rss_before_load = _proc_status("VmRSS")
    _make_resident(ctx.model(CONTENDERS[name].needs))
    rss_loaded = _proc_status("VmRSS")
    rows = []
    method = "VmHWM after clear_refs" if _reset_peak() else "psutil RSS sampling, 1 ms"
    ((batch, seq_len),) = spec["shapes"]  # one shape per process: the call below is its first
    ctx.set_batch(_tokens(ctx, batch, seq_len, spec["seed"]), seq_len)
    run = CONTENDERS[name].make(ctx)
    gc.collect()
    baseline = _proc_status("VmRSS")
    start = time.perf_counter()
    if method.startswith("VmHWM"):
        _reset_peak()
        outcome = run()
        peak = _proc_status("VmHWM")
    else:
        with _Sampler() as sampler:
            outcome = run()
        peak = sampler.peak
    first_call_s = time.perf_counter() - start
    rows.append(
        {
            "batch": batch,
            "seq_len": seq_len,
            "peak_delta_bytes": max(0, peak - baseline),
            "peak_rss_bytes": peak,
            "saved_bytes": outcome.saved_bytes(),
            "first_call_s": first_call_s,
        }
    )
    _say(
        f"{spec['model']} {name} batch {batch} seq_len {seq_len}: peak +{(peak - baseline) / 2**20:.0f} MiB "
        f"(first call {first_call_s:.2f} s)"
    )
    return {
        "mode": "memory",
        "model": spec["model"],
        "contender": name,
        "method": method,
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "model_rss_bytes": rss_loaded - rss_before_load,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    out = time_mode(spec) if spec["mode"] == "time" else memory_mode(spec)
    out["torch_threads"] = torch.get_num_threads()
    out["torch_interop_threads"] = torch.get_num_interop_threads()
    out["python"] = sys.executable
    out["versions"] = _versions()
    Path(argv[1]).write_text(json.dumps(out))
    return 0


def _versions() -> dict:
    import importlib.metadata as md

    found = {}
    for package in ("torch", "transformers", "nnsight", "transformer-lens"):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            found[package] = None
    return found


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
