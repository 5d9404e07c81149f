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
    assert sorted(files) == ["circuit_graph.json", "circuit_k.json", "circuit_q.json", "circuit_results.json",
                             "circuit_total.json", "circuit_v.json"]
    saved = parse_strict(files["circuit_results.json"])
    assert len(saved["targets"]) == 2 and all(t["layer"] == 1 for t in saved["targets"])
    assert len(saved["edges"]) == 2 * 4 * 4  # 2 targets x 4 earlier heads x 4 paths
    edge = saved["edges"][0]
    assert set(edge) == {"source", "target", "path", "effect", "loss_effect"} and edge["path"] in "kqv total"
    assert set(saved["composition"][0]) == {"source", "target", "path", "score", "baseline"}
    assert len(saved["composition"]) == 2 * 4 * 3
    heat = json.loads(files["circuit_k.json"])
    assert heat["data"][0]["type"] == "heatmap" and len(heat["data"][0]["y"]) == 4
    graph = json.loads(files["circuit_graph.json"])
    assert {t["name"] for t in graph["data"]} >= {"k path", "other"}
    for target in saved["targets"]:
        assert target["head"] in results["summary"]


@pytest.mark.parametrize("change, message", [
    ({"targets": "L0H1"}, "layer-0"), ({"paths": ("k", "x")}, "--paths"), ({"method": "resample"}, "--method"),
    ({"seq_len": 1}, "--seq-len"), ({"targets": "nonsense"}, "--targets"),
])
def test_config_refuses_bad_settings(change, message):
    with pytest.raises(InductionError, match=message):
        CircuitConfig(**change).validate()


def test_parser_defaults():
    args = build_parser().parse_args(["circuit", "--targets", "L18H6", "--paths", "k,v"])
    assert (args.batch, args.seq_len, args.top, args.paths, args.method) == (2, 20, 5, ("k", "v"), "zero")
