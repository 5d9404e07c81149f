"""Merge benchmark runs made side by side (e.g. timing in one process tree, memory in another,
or one model each) into one ``results.json`` / ``results.md`` and its charts.

    python bench/merge.py OUT_DIR CHARTS_DIR RUN_DIR[:LABEL] [RUN_DIR[:LABEL] ...]

Each run's ``models`` entries are merged per model (``time`` from the run that timed it,
``memory`` per contender from whichever measured it); settings and machine come from the
first run that timed anything, with every run's command line and load averages kept. A
``:LABEL`` keeps that run's models apart, as ``MODEL (LABEL)``, so a second timing of one
model (other contenders, another time) gets its own tables rather than mixing ratios
across runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import write_outputs  # noqa: E402


def merge(runs: list[dict], labels: list[str | None] | None = None) -> dict:
    timed = [r for r in runs if any("time" in m for m in r["models"].values())] or runs
    merged = json.loads(json.dumps(timed[0]))
    merged["models"] = {}
    merged["settings"]["merged_argv"] = [r["settings"]["argv"] for r in runs]
    merged["machine"]["merged_loads"] = [[r["machine"]["load_before"], r["machine"]["load_after"]] for r in runs]
    for run, label in zip(runs, labels or [None] * len(runs)):
        for model, per_model in run["models"].items():
            into = merged["models"].setdefault(f"{model} ({label})" if label else model, {"memory": {}})
            if "time" in per_model:
                into["time"] = per_model["time"]
            into["memory"].update(per_model.get("memory", {}))
    merged["settings"]["models"] = list(merged["models"])
    return merged


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out, charts, *dirs = (Path(a) for a in argv)
    pairs = [str(d).partition(":")[::2] for d in dirs]
    runs = [json.loads((Path(d) / "results.json").read_text()) for d, _ in pairs]
    for path in write_outputs(merge(runs, [label or None for _, label in pairs]), out, charts):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
