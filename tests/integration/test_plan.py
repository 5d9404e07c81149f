"""``--plan``: the plan of a job equals what the job sends when it runs (counted independently).

The real runs here are dry runs of the remote path (``remote="local"``) on the tiny models with
weights: their requests, serialized bytes and saved values are counted by wrapping the dry run,
their rows and tokens by a forward hook on the real model. The plans run on the same
architectures with no weights (meta device).
"""

import json
import math

import pytest
import torch

from induction_nnsight import Execution, repeated_tokens, scan
from induction_nnsight.app import jobs
from induction_nnsight.app.cli import main
from induction_nnsight.app.jobs import ScanConfig
from induction_nnsight.app.plan_job import plan_job
from induction_nnsight.causal.ablation.sweep import ablation_sweep, repeated_half_metric
from induction_nnsight.causal.cost import BACKWARD_FORWARDS, sweep_cost
from induction_nnsight.models.weightless import weightless_model
from induction_nnsight.ndif import dry_run
from induction_nnsight.ndif.meta_run import meta_reads_as_stand_ins
from induction_nnsight.ndif.plan import BACKWARD_FLOPS, JobPlan
from induction_nnsight.ndif.settings import RemoteSettings
from tests.cli_args import tiny_cli
from tests.conftest import TINY_ARCHS, TINY_BOS
from tests.sent_requests import count_requests

BYTES_UP_TOLERANCE = 0.02
"""Relative difference allowed between a plan's bytes up and the dry run's: the same request
serialized from a meta model and from a loaded one (the compressed pickles may differ slightly)."""

SAVE_ALIGNMENT = 64
"""Bytes ``torch.save`` aligns each tensor's record to."""


def record_dry_run(monkeypatch):
    """Wrap the dry run: per request, its bytes up and the ``torch.save`` size (uncompressed) of what it sent back."""
    sent, saved = [], []
    call, save = dry_run.DryRunBackend.__call__, torch.save

    def counted(self, tracer):
        sizes = []

        def measured(obj, f, *args, **kwargs):
            save(obj, f, *args, **kwargs)
            sizes.append(f.getbuffer().nbytes if hasattr(f, "getbuffer") else None)

        monkeypatch.setattr(torch, "save", measured)
        try:
            call(self, tracer)
        finally:
            monkeypatch.setattr(torch, "save", save)
        sent.append(self.transfer.sent_bytes)
        saved.append(sizes[-1])  # the last save is the result's (the request's pickle saves too)

    monkeypatch.setattr(dry_run.DryRunBackend, "__call__", counted)
    return sent, saved


def count_rows(model):
    """A forward hook on ``model``'s module: ``[rows, tokens]`` it ran, and its handle."""
    seen = [0, 0]

    def hook(module, args, kwargs, output):
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen[0] += ids.shape[0]
        seen[1] += ids.numel()

    return seen, model._module.register_forward_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_scan_plan_equals_the_dry_run(tiny_dir, tiny_model, monkeypatch, arch):
    config = ScanConfig(model=str(tiny_dir(arch)), batch=3, seq_len=8, low=1, high=128)
    plan = plan_job("scan", config).as_dict()

    model = tiny_model(arch, "sdpa")  # NDIF's attention, as the plan's model
    sent, saved = record_dry_run(monkeypatch)
    seen, handle = count_rows(model)
    try:  # run_scan's one trace, as a dry run
        scan(model, jobs.scan_tokens(model, config), config.seq_len, execution=Execution(remote="local"))
    finally:
        handle.remove()
    assert plan["requests"] == len(sent) == 1
    assert plan["forward_passes"] == seen[0] == 3 and plan["backward_passes"] == 0
    assert plan["tokens"] == seen[1] == 3 * 17
    assert math.isclose(plan["bytes_up"], sum(sent), rel_tol=BYTES_UP_TOLERANCE)
    # the same shapes and dtypes, stand-ins instead of values; torch.save pads each tensor's record to
    # 64 bytes, so the order the saved values are collected in moves the total by up to 64 per tensor
    assert abs(plan["bytes_down"] - sum(saved)) <= SAVE_ALIGNMENT * 2
    assert plan["bytes_down"] > (16 + 8) * 4  # the loss by position [16] and the scores [1, 2, 4], float32


def test_sweep_plan_equals_run_chunks_and_cost(tiny_dir, tiny_model, monkeypatch):
    """The per-head sweep: the requests run_chunks sends at the same budgets, the passes of sweep_cost."""
    seq, batch = 6, 3
    tokens = repeated_tokens(batch, seq, seed=0, low=1, high=128, bos_token_id=TINY_BOS)
    budgets = Execution(progress=False, max_tokens=2 * batch * (2 * seq + 1), traces_per_request=3)
    metric = repeated_half_metric(seq, True)

    sent = count_requests(monkeypatch)
    ablation_sweep(tiny_model("llama", "sdpa"), tokens, metric, execution=budgets)  # runs here, with weights
    real = [len(group) for group in sent]
    sent.clear()

    plan = JobPlan()
    model = weightless_model(str(tiny_dir("llama")))
    with meta_reads_as_stand_ins():
        ablation_sweep(model, tokens, metric, execution=budgets.replace(remote=RemoteSettings(plan=plan)))
    found = plan.as_dict()
    # 9 variants (baseline + 8 heads), 2 per trace: 5 traces; a timing request of 1, then 3 per request
    assert [len(group) for group in sent] == real == [1, 3, 1]
    assert found["requests"] == len(real)
    expected = sweep_cost(2, 4, batch, 2 * seq + 1)
    assert found["forward_passes"] == expected.forward_passes == 27
    assert found["tokens"] == expected.tokens
    assert found["backward_passes"] == 0

    # a FLOP rate that makes one trace take 1 s, and 2.5 s per request: 2 traces per request after the first
    sent.clear()
    per_trace = found["flops"] / 5
    slow = JobPlan(flop_rate=per_trace)
    with meta_reads_as_stand_ins():
        ablation_sweep(
            model, tokens, metric, execution=budgets.replace(remote=RemoteSettings(plan=slow), request_seconds=2.5)
        )
    assert [len(group) for group in sent] == [1, 2, 2]
    assert slow.as_dict()["server_seconds"] == pytest.approx(5.0, rel=1e-9)


def test_backward_costs_twice_the_forward_as_in_cost():
    assert BACKWARD_FLOPS == BACKWARD_FORWARDS


def test_cli_plan_writes_only_plan_json(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    model = str(tiny_dir("gpt2"))
    args = ["--model", model, "--batch", "2", "--seq-len", "6", "--low", "1", "--high", "128", "--plan"]
    assert main(["ablate", *args, "--layers", "1", "--draws", "1", "--top-k", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "plan of ablate" in printed and "nothing sent" in printed
    assert [p.name for p in out.iterdir()] == ["plan.json"]
    plan = json.loads((out / "plan.json").read_text())
    for key in ("requests", "bytes_up", "bytes_down", "forward_passes", "backward_passes", "tokens"):
        assert plan[key] > 0, key  # the default attribution estimate runs backward passes
    assert plan["server_seconds"] >= 0
    # without --out nothing is written
    assert main(["scan", *args]) == 0
    assert [p.name for p in out.iterdir()] == ["plan.json"]


def test_unknown_model_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["scan", "--model", "nobody/no-such-model", "--plan", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--model" in err and "config.json" in err
    assert not (tmp_path / "o").exists()


def test_local_config_directory_plans(tmp_path, capsys):
    """A directory holding only a config.json (no weights, no tokenizer) plans."""
    import transformers as tf

    tf.GPT2Config(n_embd=16, n_layer=3, n_head=2, n_positions=64, vocab_size=100, bos_token_id=0).save_pretrained(
        tmp_path
    )
    assert (
        main(
            [
                "scan",
                "--model",
                str(tmp_path),
                "--batch",
                "2",
                "--seq-len",
                "5",
                "--low",
                "1",
                "--high",
                "100",
                "--plan",
            ]
        )
        == 0
    )
    assert "forward passes   2.0 rows" in capsys.readouterr().out


def test_llama_70b_plans_without_weights():
    """The shipped Llama-3.1-70B config plans a default scan; its parameters never get storage."""
    config = ScanConfig(model="meta-llama/Llama-3.1-70B")
    plan = plan_job("scan", config).as_dict()
    assert plan["requests"] == 1 and plan["tokens"] == 10 * 101
    model = weightless_model("meta-llama/Llama-3.1-70B")
    assert {p.device.type for p in model._module.parameters()} == {"meta"}
    assert 70e9 < sum(p.numel() for p in model._module.parameters()) < 71e9


def test_request_options_bundle_the_traces(tiny_dir, tmp_path):
    """``--traces-per-request`` (not a setting) reaches the session loop: one trace per request sends more."""
    args = [*tiny_cli("ablate", tiny_dir("gpt2")), "--layers", "1", "--draws", "1", "--top-k", "1", "--plan"]
    requests = {}
    for per in ("1", "16"):
        out = tmp_path / per
        assert main([*args, "--max-tokens", "26", "--traces-per-request", per, "--out", str(out)]) == 0
        requests[per] = json.loads((out / "plan.json").read_text())["requests"]
    assert requests["1"] > requests["16"] >= 1, requests


def test_a_trace_over_the_size_budget_is_where_the_plan_says_the_job_stops(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = [*tiny_cli("ablate", tiny_dir("gpt2"), out), "--layers", "1", "--draws", "1", "--top-k", "1", "--plan"]
    assert main([*args, "--request-bytes", "1000"]) == 0  # every request is a few kB: one trace is too large
    plan = json.loads((out / "plan.json").read_text())
    assert "over the 1,000-byte budget" in plan["stopped"]
    assert "the job would stop" in capsys.readouterr().out
    assert main(args) == 0  # the default budget: no stop, and the sweep's requests come after the first
    whole = json.loads((out / "plan.json").read_text())
    assert whole["stopped"] is None and whole["requests"] > plan["requests"]


def test_circuit_search_is_planned_for_its_first_round(tiny_dir, tmp_path):
    """Further rounds of ``--verify-fraction`` are chosen from values a plan only has stand-ins for: the plan of
    the default search sends the requests of one round (``--verify-fraction none``). (Which sources a round
    verifies, and so how many blocks their runs cover, follows the stand-ins too: the forward passes differ.)"""
    model = str(tiny_dir("llama"))
    args = ["circuit", "--model", model, "--batch", "2", "--seq-len", "6", "--low", "1", "--high", "128"]
    args += ["--targets", "L1H0", "--no-composition", "--search", "estimate", "--verify", "1", "--plan"]
    plans = {}
    fractions = {"default": [], "one": ["--verify-fraction", "none"], "tiny": ["--verify-fraction", "1e-6"]}
    for name, extra in fractions.items():
        assert main([*args, *extra, "--out", str(tmp_path / name)]) == 0
        plans[name] = json.loads((tmp_path / name / "plan.json").read_text())
    for key in ("requests", "backward_passes"):
        assert plans["default"][key] == plans["one"][key] == plans["tiny"][key], key
    assert plans["one"]["requests"] > 1 and plans["one"]["forward_passes"] > 0
