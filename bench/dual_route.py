"""Time and peak memory of the default ``dual-route`` run on SmolLM2, beside the ``heads`` pass's.

    python bench/dual_route.py        # writes bench/dual_route.json and bench/dual_route_results.json

One process: the model is loaded and made resident, then the peak resident size is reset
(``/proc/self/clear_refs``) before each job, and read (``VmHWM``) after it, minus the resident size
before it. Wall-clock and CPU seconds of each job are recorded with the machine's load average:
on a shared machine the wall-clock time is long by the share the other processes take.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def measure(job, keep: list | None = None) -> dict:
    """Wall and CPU seconds of ``job()``, and the peak resident memory it added, in MiB (``keep`` gets what
    ``job`` returned)."""
    from bench.worker import _proc_status, _reset_peak

    before = _proc_status("VmRSS")
    _reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    returned = job()
    if keep is not None:
        keep.append(returned)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _proc_status("VmHWM")
    return {
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "peak_added_mib": round((peak - before) / 2**20, 1),
        "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> int:
    import torch

    from induction_nnsight import DEFAULT_MODEL, load_model
    from induction_nnsight.app.dual_route_job import DualRouteConfig, run_dual_route
    from induction_nnsight.app.heads_job import HeadsConfig, run_heads

    model = load_model(DEFAULT_MODEL)
    run_heads(HeadsConfig(model=DEFAULT_MODEL), model)  # warm: first-trace costs out of both rows
    rows = {
        "heads": measure(lambda: run_heads(HeadsConfig(model=DEFAULT_MODEL), model)),
        "dual_route": measure(
            lambda: run_dual_route(DualRouteConfig(model=DEFAULT_MODEL), model, progress=False), kept := []
        ),
    }
    # the default run's results, at the default sizes (the committed charts may come from a smaller run)
    (ROOT / "bench" / "dual_route_results.json").write_text(kept[0][1]["dual_route_results.json"])
    settings = asdict(DualRouteConfig(model=DEFAULT_MODEL))  # the defaults measured
    result = {
        "model": DEFAULT_MODEL,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "dual_route_settings": settings,
        "rows": rows,
    }
    (ROOT / "bench" / "dual_route.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
