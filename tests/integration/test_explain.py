"""``induction-nnsight explain`` end to end on tiny random models and on the hand-built circuit model.

The report must name the hand-built model's induction head and the previous-token head that feeds it,
say "not resolved" for the head that does nothing, and state no number that is not in
``explain_results.json``.
"""

from __future__ import annotations

import html
import json
import re

import pytest

from induction_nnsight.app.cli import main
from induction_nnsight.figures.explain_html import CLAIM_CLASS
from induction_nnsight.strict_json import parse_strict
from tests.families import FAMILIES

SMALL = [
    *("--batch", "4", "--seq-len", "8", "--top-k", "2", "--draws", "2", "--verify", "4"),
    *("--icl-windows", "3", "--icl-length", "40", "--icl-early", "5", "--icl-late", "30"),
    *("--prompt", "t1 t2 t3 t4 t5"),
]
TINY = ["--low", "1", "--high", "128", *SMALL]
HANDBUILT = [
    *("--attn-implementation", "eager", "--low", "1", "--high", "12", "--batch", "8", "--seq-len", "10"),
    *("--top-k", "1", "--draws", "3", "--circuit-top", "1", "--prompt", "t1 t2 t3 t4 t5 t6"),
    *("--icl-windows", "3", "--icl-length", "32", "--icl-early", "4", "--icl-late", "20"),
]
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?")


def claims(page: str) -> list[str]:
    """The text of every generated sentence of the page (``li.claim``)."""
    found = re.findall(rf'<li class="{CLAIM_CLASS}[^"]*">(.*?)</li>', page, flags=re.S)
    return [html.unescape(text) for text in found]


def json_numbers(value, skip=("sentences",)) -> list[float]:
    """Every number of a JSON value, and every number written inside its strings (a path, a source)."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, str):
        return [float(m) for m in NUMBER.findall(value)]
    items = value.items() if isinstance(value, dict) else enumerate(value)
    return [n for key, v in items if key not in skip for n in json_numbers(v, skip)]


def unmatched(sentences: list[str], results: dict) -> list[str]:
    """The numbers of ``sentences`` that no number of ``results`` gives at their precision."""
    known = json_numbers(results)
    missing = []
    for sentence in sentences:
        for word in NUMBER.findall(sentence.replace(results["model"], "")):
            text = word.lstrip("+")
            decimals = len(text.split(".")[1]) if "." in text else 0
            if not any(f"{v:.{decimals}f}" == text for v in known):
                missing.append(f"{word} in {sentence!r}")
    return missing


def explain(model_dir, tmp_path, extra) -> tuple[dict, str, list[str]]:
    out = tmp_path / "out"
    assert main(["explain", "--model", str(model_dir), *extra, "--out", str(out)]) == 0
    results = parse_strict((out / "explain_results.json").read_text())
    page = (out / "explain.html").read_text(encoding="utf-8")
    return results, page, claims(page)


@pytest.mark.parametrize("arch", [config for config, _, _ in FAMILIES.values()])  # every family of the matrix
def test_explain_runs_on_tiny_models(tiny_dir, tmp_path, capsys, arch):
    results, page, sentences = explain(tiny_dir(arch), tmp_path, TINY)
    ran = {"heads", "ablate", "circuit", "attention"} | ({"icl"} if results["icl"]["ran"] else set())
    assert set(results["cost"]["stages"]) == ran
    if not results["icl"]["ran"]:  # a tiny tokenizer that reads the text into too few tokens: said, not failed
        assert "windows" in results["icl"]["reason"] and "ICL score was not measured" in page
    assert results["dual_route"] == {"ran": False, "reason": results["dual_route"]["reason"]}
    assert "2 layers" in results["dual_route"]["reason"]
    assert results["settings"]["correction"].startswith("Benjamini-Hochberg")
    assert sentences and sentences == [s for section in results["sentences"].values() for s in section]
    assert not unmatched(sentences, results)
    assert "<script src" not in page and "<link" not in page and "Plotly.newPlot" in page  # self-contained
    assert 'class="view"' in page and "inv-attn" in page  # the attention view, inlined in its iframe
    assert "Token versus concept induction was not measured" in capsys.readouterr().out
    json.dumps(results, allow_nan=False)


@pytest.fixture(scope="module")
def handbuilt_dir(tmp_path_factory):
    from tests.integration.test_circuit_handbuilt import build

    path = tmp_path_factory.mktemp("handbuilt-explain")
    build(path)
    return path


def test_explain_names_the_handbuilt_circuit(handbuilt_dir, tmp_path):
    results, _, sentences = explain(handbuilt_dir, tmp_path, HANDBUILT)
    text = "\n".join(sentences)
    assert re.search(r"^L1H0 is an induction head: induction score \d", text, flags=re.M), text
    assert re.search(r"^L0H0 is a previous-token head", text, flags=re.M), text
    assert re.search(r"^L1H0 reads its keys from L0H0, a previous-token head .*: removing that path", text, re.M)
    [empty] = [s for s in sentences if s.startswith("Ablating L1H1 alone")]  # L1H1 has no weights
    assert "not resolved" in empty
    assert not any(s.startswith("L1H1 is") for s in sentences)
    assert not unmatched(sentences, results)
    key = ("L0H0", "L1H0", "k")
    edge = next(e for e in results["circuit"]["edges"] if (e["source"], e["target"], e["path"]) == key)
    assert edge["ci_high"] < 0 and edge["q"] <= 0.05
    row = next(r for r in results["ablation"]["sweep"] if r["name"] == "L1H1")
    assert not row["distinguishable_from_zero"]


def test_a_number_not_in_the_results_is_caught():
    assert unmatched(["L1H0 scores 0.913 [0.880, 0.920]."], {"model": "m", "a": [0.88, 0.92, 0.9131]}) == []
    assert unmatched(["L1H0 scores 0.914."], {"model": "m", "a": 0.9131}) == ["0.914 in 'L1H0 scores 0.914.'"]


@pytest.mark.parametrize(
    "extra, fix",
    [
        (["--icl-early", "50", "--icl-late", "40"], "--icl-early"),
        (["--icl-length", "500", "--icl-late", "300"], "--icl-length"),
        (["--dual-route", "on"], "--dual-route"),
        (["--dual-route", "maybe"], "--dual-route"),
        (["--top-k", "9"], "--top-k"),
        (["--prompt", "  "], "--prompt"),
    ],
)
def test_explain_refuses_bad_input_in_one_line(tiny_dir, tmp_path, capsys, extra, fix):
    out = tmp_path / "out"
    try:
        status = main(["explain", "--model", str(tiny_dir("gpt2")), *TINY, *extra, "--out", str(out)])
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert status == 2 and not captured.out
    assert len(err) == 1 and err[0].startswith("induction-nnsight") and fix in err[0], err
    assert not out.exists()


def test_explain_plan_prices_every_stage(tiny_dir, capsys):
    assert main(["explain", "--model", str(tiny_dir("llama")), *TINY, "--plan"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("plan of explain on ")
    for stage in ("heads", "ablate", "circuit", "attention", "icl"):
        assert re.search(rf"\] {stage}: planned \d+ request\(s\)", captured.err), stage


def test_every_stage_runs_where_explain_is_told():
    """``--remote``, ``--ndif-host``, ``--timeout`` and the model reach every stage's config; so do the shared rows."""
    from induction_nnsight.app.explain_job import ExplainConfig

    config = ExplainConfig(model="m", remote=True, ndif_host="http://127.0.0.1:1", timeout=7.0, batch=3, seed=5)
    stages = [
        config.heads_config(),
        config.ablate_config(),
        config.circuit_config(),
        config.attention_config("L1H0"),
        config.icl_config(),
        config.dual_route_config(),
    ]
    for stage in stages:
        assert (stage.model, stage.remote, stage.ndif_host, stage.timeout) == ("m", True, "http://127.0.0.1:1", 7.0)
    for stage in stages[:3]:
        assert (stage.batch, stage.seq_len, stage.seed) == (3, config.seq_len, 5)
    assert stages[1].search == stages[2].search == "estimate"


def test_dual_route_is_skipped_for_a_tokenizer_that_cannot_split_entities(tiny_model, monkeypatch):
    """Past the layer count, a word-level tokenizer that maps every entity name to unknown tokens is refused."""
    from induction_nnsight.app import explain_job

    model = tiny_model("gpt2")
    assert "2 layers" in explain_job.dual_route_skip(model)
    monkeypatch.setattr(explain_job, "MIN_LAYERS", 2)
    reason = explain_job.dual_route_skip(model)
    assert reason.startswith("its tokenizer splits 0 of ") and "known tokens" in reason
