"""The circuit job on a tiny model: its files, their strict JSON, the config's checks and the parser."""

import json

import pytest

from induction_nnsight.app.arguments import build_parser
from induction_nnsight.app.circuit_job import CircuitConfig, run_circuit
from induction_nnsight.app.outputs import parse_strict
from induction_nnsight.errors import InductionError


def test_job_writes_results_heatmaps_and_graph(tiny_model, tiny_dir):
    config = CircuitConfig(model=str(tiny_dir("gpt2")), batch=2, seq_len=6, top=2, low=1, high=128)
    results, files = run_circuit(config, tiny_model("gpt2"), progress=False)
    assert sorted(files) == [
        "circuit_graph.json",
        "circuit_k.json",
        "circuit_q.json",
        "circuit_results.json",
        "circuit_total.json",
        "circuit_v.json",
    ]
    saved = parse_strict(files["circuit_results.json"])
    assert len(saved["targets"]) == 2 and all(t["layer"] == 1 for t in saved["targets"])
    assert len(saved["edges"]) == 2 * 4 * 4  # 2 targets x 4 earlier heads x 4 paths
    edge = saved["edges"][0]
    assert (
        set(edge)
        == {
            "source",
            "target",
            "path",
            "effect",
            "ci_low",
            "ci_high",
            "q",
            "loss_effect",
            "loss_ci_low",
            "loss_ci_high",
            "loss_q",
        }
        | {"loss_exact", "verified"}
        and edge["path"] in "kqv total"
    )
    # every exact edge carries its intervals, around its value; settings say how they were made
    for e in saved["edges"]:
        assert e["ci_low"] - 1e-6 <= e["effect"] <= e["ci_high"] + 1e-6
        assert e["loss_ci_low"] - 1e-6 <= e["loss_effect"] <= e["loss_ci_high"] + 1e-6
    assert saved["settings"]["batch"] == 2 and saved["settings"]["seeds"] == 1
    assert saved["settings"]["interval"].startswith("t interval on the row mean")
    assert saved["settings"]["correction"].startswith("Benjamini-Hochberg")
    # the default: 8 exact loss effects per target and path, more than this model has sources
    assert saved["settings"]["exact_losses"] == 8 and saved["loss_effects"].startswith("exact for the 8 edges")
    assert all(e["loss_exact"] for e in saved["edges"])
    assert set(saved["composition"][0]) == {"source", "target", "path", "score", "baseline"}
    assert len(saved["composition"]) == 2 * 4 * 3
    heat = json.loads(files["circuit_k.json"])
    assert heat["data"][0]["type"] == "heatmap" and len(heat["data"][0]["y"]) == 4
    graph = json.loads(files["circuit_graph.json"])
    assert {t["name"] for t in graph["data"]} >= {"k path", "other"}
    for target in saved["targets"]:
        assert target["head"] in results["summary"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"targets": "L0H1"}, "layer-0"),
        ({"paths": ("k", "x")}, "--paths"),
        ({"method": "median"}, "--method"),
        ({"keep_bos": True, "bos": False}, "--keep-bos"),
        ({"seq_len": 1}, "--seq-len"),
        ({"targets": "nonsense"}, "--targets"),
        ({"exact_losses": -1}, "--exact-losses"),
    ],
)
def test_config_refuses_bad_settings(change, message):
    with pytest.raises(InductionError, match=message):
        CircuitConfig(**change).validate()


def test_parser_defaults():
    args = build_parser().parse_args(["circuit", "--targets", "L18H6", "--paths", "k,v"])
    assert (args.batch, args.seq_len, args.top, args.paths, args.method) == (4, 20, 5, ("k", "v"), "zero")
    assert args.exact_losses == 8
    assert build_parser().parse_args(["circuit", "--exact-losses", "3"]).exact_losses == 3
    assert build_parser().parse_args(["circuit", "--exact-losses", "all"]).exact_losses is None


def test_estimated_losses_keep_scores_and_totals(tiny_model, tiny_dir):
    """``exact_losses=1``: every score and every total edge as in the exact run; per target and path
    the strongest edges exact, the rest flagged as estimates."""
    base = dict(model=str(tiny_dir("llama")), batch=2, seq_len=6, top=1, low=1, high=128, composition=False)
    exact = parse_strict(
        run_circuit(CircuitConfig(**base, exact_losses=None), tiny_model("llama"), progress=False)[1][
            "circuit_results.json"
        ]
    )
    fast = parse_strict(
        run_circuit(CircuitConfig(**base, exact_losses=1), tiny_model("llama"), progress=False)[1][
            "circuit_results.json"
        ]
    )
    assert fast["settings"]["exact_losses"] == 1 and fast["loss_effects"].startswith("exact for the 1 edges")
    for a, b in zip(exact["edges"], fast["edges"]):
        assert (a["source"], a["path"]) == (b["source"], b["path"]) and abs(a["effect"] - b["effect"]) < 1e-5
        if b["loss_exact"]:
            assert abs(a["loss_effect"] - b["loss_effect"]) < 1e-5
    flags = [(e["path"], e["loss_exact"]) for e in fast["edges"]]
    for path in ("k", "q", "v", "total"):  # 4 sources: at most 1 by loss and 1 by score exact, the rest estimated
        assert 1 <= sum(exact for p, exact in flags if p == path) <= 2 and (path, False) in flags
    # an estimated edge still has its exact score's interval, and no loss interval
    estimated = [e for e in fast["edges"] if not e["loss_exact"]]
    assert all(e["ci_low"] - 1e-6 <= e["effect"] <= e["ci_high"] + 1e-6 for e in estimated)
    assert all(e["loss_ci_low"] is None for e in estimated)
