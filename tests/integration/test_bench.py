"""The benchmark runs end to end on a tiny model and writes well-formed outputs.

No timing is asserted (timings belong to the benchmark, not the suite); the
cross-checks it records are: the tutorial route (every pattern saved, reduced
afterwards) must give the scan's scores and losses.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import plotly.io as pio
import pytest

# slow tier: the harness starts a worker process per contender group (seconds each, tens in all)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONTENDERS = ["forward-eager", "scan-eager", "scan-sdpa", "tutorial-eager", "tl-detect-head"]
MEMORY = ["scan-eager"]  # a fresh process per contender and shape (seconds each): one checks the harness


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, INDUCTION_BENCH_CACHE=str(out / "models"))
    command = [
        sys.executable,
        "bench/run.py",
        "--quick",
        "--models",
        "tiny-llama",
        "--contenders",
        ",".join(CONTENDERS),
        "--memory-contenders",
        ",".join(MEMORY),
        "--memory-batches",
        "1",
        "--python",
        sys.executable,
        "--threads",
        "1",
        "--out",
        str(out),
        "--charts",
        str(out / "charts"),
    ]
    # its own process group, so a timeout ends the workers too
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=1500)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, stderr[-3000:]
    return out, subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_writes_every_output(quick_run):
    out, done = quick_run
    written = {Path(line).name for line in done.stdout.split()}
    assert {
        "results.json",
        "results.md",
        "bench_time_ratio.json",
        "bench_time_scaling.json",
        "bench_memory.json",
        "bench_saved_bytes.json",
    } <= written
    for chart in (out / "charts").glob("bench_*.json"):
        assert pio.from_json(chart.read_text()).data, chart.name
    assert not list(out.rglob(".*.partial"))


def test_results_structure(quick_run):
    out, _ = quick_run
    results = json.loads((out / "results.json").read_text())
    assert results["machine"]["torch_threads"] == 1
    timed = results["models"]["tiny-llama"]["time"]
    ran = [name for name in CONTENDERS if name not in timed["skipped"]]
    assert set(ran) >= {"forward-eager", "scan-eager", "scan-sdpa", "tutorial-eager"}
    shapes = {tuple(s) for s in results["settings"]["shapes"]}
    assert {(row["batch"], row["seq_len"]) for row in timed["rows"]} == shapes
    for row in timed["rows"]:
        assert set(row["contenders"]) == set(ran)
        for _name, entry in row["contenders"].items():
            assert len(entry["times_s"]) == results["settings"]["repeats"]
            assert min(entry["times_s"]) > 0 and entry["median_s"] == statistics.median(entry["times_s"])
        n_layers, n_heads = 2, 4
        scan = row["contenders"]["scan-eager"]
        # the scan keeps a [pos - 1] float loss and a [layers, heads] float score table, whatever the batch
        assert scan["saved_bytes"] == 4 * (row["n_tokens"] - 1 + n_layers * n_heads)
        tutorial = row["contenders"]["tutorial-eager"]
        assert tutorial["saved_bytes"] > 4 * n_layers * n_heads * row["batch"] * row["n_tokens"] ** 2
        assert tutorial["checks"]["scores_max_abs_diff_vs_scan"] < 1e-5
        assert tutorial["checks"]["loss_max_abs_diff_vs_scan"] < 1e-4
        assert row["contenders"]["scan-sdpa"]["checks"]["scores_max_abs_diff_vs_scan"] < 1e-4
        assert scan["checks"]["loss_max_abs_diff_vs_forward"] < 1e-4
    memory = results["models"]["tiny-llama"]["memory"]
    assert set(memory) == set(MEMORY)
    for _name, mem in memory.items():
        batch_seq_len = results["settings"]["batch_seq_len"]
        assert [(r["batch"], r["seq_len"]) for r in mem["rows"]] == [(1, batch_seq_len)]  # --memory-batches 1
        assert all(r["peak_delta_bytes"] >= 0 for r in mem["rows"])


def test_transformerlens_runs_or_is_skipped_with_a_note(quick_run):
    out, _ = quick_run
    results = json.loads((out / "results.json").read_text())
    timed = results["models"]["tiny-llama"]["time"]
    if "tl-detect-head" in timed["skipped"]:
        assert "transformer_lens" in timed["skipped"]["tl-detect-head"]
        assert "## Skipped" in (out / "results.md").read_text()
    else:
        assert "tl-detect-head" in timed["rows"][0]["contenders"]


def test_markdown_has_the_headline_table(quick_run):
    out, _ = quick_run
    text = (out / "results.md").read_text()
    assert text.startswith("# Benchmark results")
    assert "| contender | median time (s) | / forward-eager |" in text
    assert "torch threads 1" in text


def test_unknown_contender_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--contenders", "nope"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "unknown contender(s) nope" in done.stderr
