"""The long-context benchmark's bookkeeping: out-of-memory detection, score checks and its strict chart."""

import json

from bench.long_context import GIB, _out_of_memory, figure, score_checks


def results():
    ok = lambda n, t, mem, scores=None: {
        "length": n + 1,
        "n_tokens": n,
        "status": "ok",
        "time_s": t,
        "cpu_s": t,
        "peak_delta_bytes": mem,
        "peak_rss_bytes": mem,
        "scores": scores,
    }
    return [
        {"contender": "scan-sdpa", "points": [ok(127, 1.0, GIB, [[0.5, 0.25]]), ok(255, 2.0, GIB, [[0.5, 0.5]])]},
        {
            "contender": "tutorial-eager",
            "points": [
                ok(127, 1.5, 2 * GIB, [[0.5, 0.0]]),
                {"length": 256, "n_tokens": 255, "status": "out_of_memory", "error": "RuntimeError: ..."},
            ],
        },
        {"contender": "tl-run-with-cache", "skipped": "no transformer_lens", "points": []},
    ]


def test_out_of_memory_is_told_from_other_errors():
    alloc = RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")
    assert _out_of_memory(alloc) and _out_of_memory(MemoryError())
    wrapped = ValueError("trace failed")
    wrapped.__cause__ = alloc
    assert _out_of_memory(wrapped)
    assert not _out_of_memory(ValueError("shape mismatch"))


def test_score_checks_compare_with_the_scan_at_the_same_length():
    assert score_checks(results()) == [{"contender": "tutorial-eager", "length": 128, "max_abs_diff": 0.25}]


def test_the_chart_is_strict_json_with_the_out_of_memory_point_at_the_cap():
    cap = 4 * GIB
    chart = json.loads(json.dumps(json.loads(figure(results(), cap).to_json()), allow_nan=False))
    crosses = [t for t in chart["data"] if t.get("marker", {}).get("symbol") == "x"]
    assert [(c["x"], c["y"]) for c in crosses] == [([255], [4.0])]
    lines = [t for t in chart["data"] if t.get("mode") == "lines+markers"]
    assert len(lines) == 4  # time and memory of the two contenders that ran; the skipped one draws nothing
