"""``ablate --search estimate``, ``--attribution`` and ``circuit --search estimate`` on tiny models:
what the JSON records (verified flags, costs, correlations), checked against the exhaustive run."""

import json

import numpy as np
import pytest

from induction_nnsight.app.cli import main
from induction_nnsight.causal.cost import exact_scores_circuit_cost, pruned_circuit_cost, sweep_cost
from tests.forward_passes import forward_passes
from tests.integration.test_causal_cli import tiny


def test_ablate_reports_the_estimate_beside_the_sweep_and_the_cost(tiny_dir, tmp_path, capsys):
    assert main(tiny(tiny_dir, "ablate", tmp_path, "--top-k", "2", "--draws", "2", "--attribution", "graddrop")) == 0
    results = json.loads((tmp_path / "ablation_results.json").read_text())
    entry = results["attribution"]
    assert entry["estimator"] == "graddrop" and len(entry["estimate"]) == 2 and len(entry["estimate"][0]) == 4
    estimate = np.array(entry["estimate"], dtype=float).ravel()
    delta = np.array(results["sweep"]["delta"], dtype=float).ravel()
    assert entry["pearson_with_sweep"] == pytest.approx(np.corrcoef(estimate, delta)[0, 1], abs=1e-4)
    assert 0 <= entry["recall_top10"] <= 1 and entry["cost"]["backward_passes"] == 2 * 2  # 2 rows x 2 layers
    sweep = sweep_cost(2, 4, rows=2, tokens_per_row=13)
    assert results["sweep"]["cost"]["forward_passes"] == sweep.forward_passes
    assert results["cost"]["forward_passes"] > sweep.forward_passes
    out = capsys.readouterr().out
    assert "Spearman" in out and "cost: forward passes" in out


def test_ablate_search_estimate_verifies_only_the_strongest(tiny_dir, tmp_path):
    full, pruned = tmp_path / "full", tmp_path / "pruned"
    assert main(tiny(tiny_dir, "ablate", full, "--top-k", "2", "--draws", "2", "--attribution", "plain")) == 0
    extra = ("--top-k", "2", "--draws", "2", "--attribution", "plain", "--search", "estimate", "--verify", "3")
    assert main(tiny(tiny_dir, "ablate", pruned, *extra)) == 0
    exact = json.loads((full / "ablation_results.json").read_text())
    found = json.loads((pruned / "ablation_results.json").read_text())
    verified = np.array(found["sweep"]["verified"], dtype=bool)
    assert verified.sum() == 3 and not (pruned / "ablation_attribution.json").exists()
    estimate = np.abs(np.array(found["attribution"]["estimate"], dtype=float)).ravel()
    assert set(np.flatnonzero(verified.ravel())) == set(np.argsort(-estimate, kind="stable")[:3])
    delta = np.array(found["sweep"]["delta"], dtype=float)
    assert np.allclose(delta[verified], np.array(exact["sweep"]["delta"], dtype=float)[verified], atol=1e-5)
    assert all(v is None for row, mask in zip(found["sweep"]["delta"], verified) for v, m in zip(row, mask) if not m)
    assert found["sweep"]["cost"]["forward_passes"] == 2 * 4  # the baseline and 3 heads, 2 rows each
    rows = found["sweep"]["rows"]  # the verified heads only, each with its interval and corrected q
    assert len(rows) == 3 and all({"ci_low", "ci_high", "q", "distinguishable_from_zero"} <= set(r) for r in rows)
    assert found["cost"]["forward_passes"] < exact["cost"]["forward_passes"]


@pytest.mark.parametrize("bad", [["--verify-fraction", "2"], ["--attribution", "exact"], ["--steps", "0"]])
def test_bad_estimate_options_exit_2_with_one_line(tiny_dir, tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as stop:
        main(tiny(tiny_dir, "ablate", tmp_path / "out", *bad))
    assert stop.value.code == 2
    assert not (tmp_path / "out").exists()
    assert len(capsys.readouterr().err.strip().splitlines()) <= 3  # argparse: usage + the one line


def test_circuit_search_estimate_flags_every_edge(tiny_dir, tmp_path, capsys):
    extra = ("--targets", "L1H0", "--no-composition", "--search", "estimate", "--verify", "2", "--verify-largest", "1")
    extra += ("--verify-fraction", "none")  # one round: what the planner prices below
    assert main(tiny(tiny_dir, "circuit", tmp_path, *extra)) == 0
    results = json.loads((tmp_path / "circuit_results.json").read_text())
    flags = {(e["path"], e["verified"]) for e in results["edges"]}
    assert all(isinstance(e["verified"], bool) for e in results["edges"])
    for path in ("k", "q", "v", "total"):  # total: the 2 strongest estimates and the 1 largest removal
        assert sum(e["verified"] for e in results["edges"] if e["path"] == path) in ({2} if path != "total" else {2, 3})
        assert (path, False) in flags
    cost = results["cost"]
    assert set(cost) >= {"forward_passes", "backward_passes", "tokens", "exhaustive"} and cost["backward_passes"] > 0
    # the planner's price of the same job: the backward passes exactly, the forward ones an upper bound
    priced = pruned_circuit_cost(2, 4, rows=2, tokens_per_row=13, target_layers=[1], verify=2, largest=1)
    assert cost["backward_passes"] == pytest.approx(priced.backward_passes)
    assert cost["forward_passes"] <= priced.forward_passes + 1e-9
    heat = json.loads((tmp_path / "circuit_k.json").read_text())
    assert any(t.get("name", "").startswith("verified") for t in heat["data"])
    graph = json.loads((tmp_path / "circuit_graph.json").read_text())
    assert any(t.get("line", {}).get("dash") == "dot" for t in graph["data"])
    assert "~est" in capsys.readouterr().out


def test_the_default_circuit_costs_what_the_planner_prices(tiny_dir, tmp_path):
    """The default circuit (every score exact, the strongest losses exact) against
    ``exact_scores_circuit_cost``: the backward passes exactly, the forward ones an upper bound."""
    extra = ("--targets", "L1H0", "--no-composition", "--exact-losses", "1")
    assert main(tiny(tiny_dir, "circuit", tmp_path, *extra)) == 0
    cost = json.loads((tmp_path / "circuit_results.json").read_text())["cost"]
    priced = exact_scores_circuit_cost(2, 4, rows=2, tokens_per_row=13, target_layers=[1], exact_losses=1)
    assert cost["backward_passes"] == pytest.approx(priced.backward_passes)
    assert cost["forward_passes"] <= priced.forward_passes + 1e-9


def test_patch_job_records_the_passes_it_ran(tiny_model, tiny_dir, tmp_path, capsys):
    """The patch job's top-level cost equals the rows a forward hook on the torch model counts (every site's
    grid, the clean rows in each trace, the estimate), and the estimate's backward passes."""
    from induction_nnsight.app.patch_job import PatchConfig, run_patch

    model = tiny_model("llama")
    config = PatchConfig(model="tiny", pair="repeated", batch=2, seq_len=5, low=1, high=100, max_tokens=40)
    with forward_passes(model) as (rows, tokens):
        results, _ = run_patch(config, model, progress=False)
    cost = results["cost"]
    backward = results["attribution"]["cost"]["backward_passes"]
    assert cost["forward_passes"] == sum(rows) and backward == 2  # one backward pass over 2 rows
    assert cost["tokens"] == sum(tokens) + backward * 11
    assert len(rows) > 3  # several traces: the clean rows counted once per trace
    assert sum(results[s]["cost"]["forward_passes"] for s in ("heads", "residual", "qkv")) < cost["forward_passes"]
    assert main(tiny(tiny_dir, "patch", tmp_path, "--pair", "repeated")) == 0
    printed = capsys.readouterr().out
    written = json.loads((tmp_path / "patching_results.json").read_text())["cost"]
    assert f"cost: forward passes {written['forward_passes']:,}" in printed


def test_circuit_verify_fraction_goes_on_in_rounds(tiny_dir, tmp_path):
    """``--verify-fraction``: with a fraction near zero the search verifies round after round on the paths whose
    estimates are first order (total, v) until no candidate with an estimated drop is left (more than
    ``--verify``; k and q, whose estimated scores are exact, stay at ``--verify``), at more cost, and those edges
    equal the exhaustive run's; ``none`` stops after one round; a bad fraction is one line, exit 2, nothing
    written."""
    base = ("--targets", "L1H0", "--no-composition", "--search", "estimate", "--verify", "1")
    few, many, full = tmp_path / "few", tmp_path / "many", tmp_path / "full"
    assert main(tiny(tiny_dir, "circuit", few, *base, "--verify-fraction", "none")) == 0
    assert main(tiny(tiny_dir, "circuit", many, *base, "--verify-fraction", "0.000001")) == 0
    exact_args = ("--targets", "L1H0", "--no-composition", "--exact-losses", "all")
    assert main(tiny(tiny_dir, "circuit", full, *exact_args)) == 0
    load = lambda d: json.loads((d / "circuit_results.json").read_text())
    one, rounds, exhaustive = load(few), load(many), load(full)
    assert sum(e["verified"] for e in one["edges"]) == 4  # one per path
    per_path = {p: sum(e["verified"] for e in rounds["edges"] if e["path"] == p) for p in ("k", "q", "v", "total")}
    assert per_path["k"] == per_path["q"] == 1 and per_path["v"] + per_path["total"] > 2, per_path
    assert rounds["cost"]["forward_passes"] > one["cost"]["forward_passes"]
    exact = {(e["source"], e["path"]): e for e in exhaustive["edges"]}
    for e in rounds["edges"]:
        if e["verified"]:
            assert e["effect"] == pytest.approx(exact[(e["source"], e["path"])]["effect"], abs=1e-6)
    with pytest.raises(SystemExit) as stop:
        main(tiny(tiny_dir, "circuit", tmp_path / "bad", *base, "--verify-fraction", "0"))
    assert stop.value.code == 2 and not (tmp_path / "bad").exists()
