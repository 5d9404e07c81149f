"""``--plan`` by shape: tracing one trace of each shape and multiplying gives the totals of tracing
every request, for every command that plans (on a tiny model, with budgets small enough that each
sweep sends several requests of several traces)."""

import pytest

from induction_nnsight.app.arguments import COMMANDS, build_parser, checked_run
from induction_nnsight.app.plan_job import PLANNED, plan_job

BUDGETS = ["--traces-per-request", "3"]
"""Three traces per request (and, where a command sweeps, ``--max-tokens 52``: two rows of 13 tokens
per trace): many requests, few traces each."""

TOKENS = ["--low", "1", "--high", "128"]
EXTRA = {
    "scan": [*TOKENS, "--batch", "2", "--seq-len", "6"],
    "heads": [*TOKENS, "--batch", "2", "--seq-len", "6"],
    "report": [*TOKENS, "--batch", "2", "--seq-len", "6"],
    "attention": ["--prompt", "t1 t2 t3 t4", "--layer", "1", "--head", "0"],
    "ablate": [*TOKENS, "--batch", "2", "--seq-len", "6", "--draws", "2", "--top-k", "2", "--max-tokens", "52"],
    "patch": [*TOKENS, "--batch", "2", "--seq-len", "6", "--max-tokens", "52"],
    "circuit": [
        *TOKENS,
        "--batch",
        "2",
        "--seq-len",
        "6",
        "--targets",
        "L1H0",
        "--no-composition",
        "--max-tokens",
        "52",
    ],
    "dual-route": [*TOKENS, "--prompts", "4", "--copying-prompts", "4", "--dissociation-prompts", "2", "--max-k", "2"],
    "icl": ["--text", "TEXT", "--windows", "3", "--length", "32", "--early", "4", "--late", "20"],
    "explain": [
        *TOKENS,
        *("--batch", "2", "--seq-len", "6", "--top-k", "2", "--draws", "2", "--verify", "2", "--circuit-top", "1"),
        *("--icl-windows", "2", "--icl-length", "32", "--icl-early", "4", "--icl-late", "20", "--prompt", "t1 t2"),
    ],
}
"""Per command, its settings on a tiny model (``TEXT``: a text file of the tiny vocabulary's words)."""

BYTES_UP_TOLERANCE = 1e-3
"""Relative difference allowed in the bytes up: nnsight numbers every trace it builds, and the traces a
plan runs alone to measure their shapes move later numbers, which can change a compressed request by a
byte or two. Every other total must be equal."""

EQUAL = ("requests", "bytes_down", "forward_passes", "backward_passes", "tokens", "flops", "requests_refused_for_size")


def planned(command: str, model_dir, text, by_shape: bool) -> dict:
    extra = [str(text) if a == "TEXT" else a for a in EXTRA[command]]
    args = build_parser().parse_args([command, "--model", str(model_dir), *extra, *BUDGETS, "--plan"])
    config, context = checked_run(COMMANDS[command].config, args)
    return plan_job(command, config, context, by_shape=by_shape).as_dict()


def test_every_planned_command_is_covered():
    assert set(PLANNED) - {"dynamics"} == set(EXTRA)  # dynamics: one request per checkpoint, test_dynamics.py


@pytest.mark.parametrize("command", list(EXTRA))
def test_plan_by_shape_equals_tracing_every_request(tiny_dir, tmp_path, command):
    model_dir, text = tiny_dir("llama"), tmp_path / "words.txt"
    text.write_text(" ".join(f"t{i % 100 + 1}" for i in range(400)), encoding="utf-8")
    fast, slow = planned(command, model_dir, text, True), planned(command, model_dir, text, False)
    assert fast["requests"] >= 1 and fast["stopped"] is None, fast
    for key in EQUAL:
        assert fast[key] == slow[key], (key, fast[key], slow[key])
    assert fast["bytes_up"] == pytest.approx(slow["bytes_up"], rel=BYTES_UP_TOLERANCE)
    assert fast["server_seconds"] == pytest.approx(slow["server_seconds"], rel=1e-12)


@pytest.mark.parametrize("command", ["heads", "report"])
def test_plan_reduces_one_group_of_each_shape(tiny_dir, tmp_path, monkeypatch, command):
    """On the meta device the heads pass reduces the first group of layers of each shape and gives the
    others its result shapes: the plan equals one that reduces every group, and fewer groups ran."""
    from induction_nnsight.scores import chunked, heads

    monkeypatch.setattr(heads, "can_join", lambda group, attention, budget: False)  # a group per layer
    reduce = chunked._reduce_group
    calls = []
    monkeypatch.setattr(chunked, "_reduce_group", lambda group, plan: calls.append(1) or reduce(group, plan))
    model_dir = tiny_dir("llama")
    once = planned(command, model_dir, tmp_path / "unused.txt", True)
    reduced_once = len(calls)
    monkeypatch.setattr(chunked, "_meta_shape", lambda group: None)
    every = planned(command, model_dir, tmp_path / "unused.txt", True)
    assert (reduced_once, len(calls) - reduced_once) == (1, 2), (reduced_once, len(calls))  # 2 layers: 1, then 2
    for key in EQUAL:
        assert once[key] == every[key], (key, once[key], every[key])
    assert once["bytes_up"] == pytest.approx(every["bytes_up"], rel=1e-2)  # the request ships the test's stand-in
