"""attention_view on tiny random models: its weights equal plain transformers' (eager attention,
``output_attentions=True``), the page embeds them, and ``attention --html/--heads`` writes the view
with the per-head files, or refuses bad heads with one line and no file."""

import json
import re

import pytest
import torch
import transformers

from induction_nnsight import AttentionView, Execution, attention_view, repeated_probe
from induction_nnsight.app.cli import main

HEADS = [(1, 3), (0, 2), (1, 0)]  # out of layer order, two in one layer


def reference_patterns(directory, tokens: torch.Tensor) -> torch.Tensor:
    """``[n_layers, head, query, key]`` of row 0 from transformers alone (eager attention)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(tokens, output_attentions=True)
    return torch.stack([a[0] for a in out.attentions])


def embedded_weights(page: str) -> torch.Tensor:
    block = re.search(r'class="inv-attn-data">(.*?)</script>', page, re.S).group(1)
    return torch.tensor(json.loads(block)["weights"])


@pytest.mark.parametrize("arch, implementation", [("llama", "sdpa"), ("gpt2", "eager")])
def test_weights_equal_plain_transformers(tiny_dir, tiny_model, arch, implementation):
    model = tiny_model(arch, implementation)
    probe = repeated_probe(2, 6, bos_token_id=0, low=1, high=128, seed=3)
    view = attention_view(model, probe, HEADS)
    reference = reference_patterns(tiny_dir(arch), probe.tokens[:1])
    expected = torch.stack([reference[layer, head] for layer, head in HEADS])
    assert isinstance(view, AttentionView) and view.weights.shape == (3, 13, 13)
    assert torch.allclose(view.weights, expected, atol=1e-5, rtol=0)
    assert torch.allclose(embedded_weights(view.html), expected, atol=1e-4, rtol=0)
    assert view.labels == ["L1H3", "L0H2", "L1H0"] and view.tokens[:2] == ["<bos>", view.tokens[7]]
    assert view.targets["induction target"][8] == [3]  # query 8 repeats position 2: the token after it is at 3
    assert view._repr_html_().startswith('<div class="inv-attn"')


def test_text_and_head_strings(tiny_model, tmp_path):
    model = tiny_model("gpt2")
    view = attention_view(model, "t5 t6 t7", "L1H3,L0H1", repeat=2)
    assert view.tokens == ["<bos>", "t5", "t6", "t7", "t5", "t6", "t7"] and view.heads == [(1, 3), (0, 1)]
    assert torch.allclose(view.weights.sum(-1), torch.ones(2, 7), atol=1e-5)
    saved = view.save(tmp_path / "view.html")
    assert saved.read_text(encoding="utf-8") == view.html
    assert attention_view(model, torch.tensor([5, 6, 5]), (0, 0)).weights.shape == (1, 3, 3)


@pytest.mark.parametrize(
    "heads, fix",
    [
        ("L2H0", "outside the model"),
        ("L0H4", "outside the model"),
        ("L1", "cannot read head"),
        ([(0, 1, 2)], "cannot read heads"),
    ],
)
def test_bad_heads_are_refused(tiny_model, heads, fix):
    from induction_nnsight import InductionError

    with pytest.raises(InductionError, match=fix):
        attention_view(tiny_model("gpt2"), "t5 t6", heads)


def test_cli_writes_the_view_beside_the_per_head_files(tiny_dir, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "attention",
                "--model",
                str(tiny_dir("gpt2")),
                "--heads",
                "L1H3,L0H1",
                "--prompt",
                "t5 t6 t7",
                "--html",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "attention_L0H1.json",
        "attention_L0H1_results.json",
        "attention_L1H3.json",
        "attention_L1H3_results.json",
        "attention_view.html",
    ]
    page = (out / "attention_view.html").read_text(encoding="utf-8")
    weights = embedded_weights(page)
    for i, name in enumerate(["L1H3", "L0H1"]):
        pattern = torch.tensor(json.loads((out / f"attention_{name}_results.json").read_text())["pattern"])
        assert torch.allclose(weights[i], pattern, atol=1e-4, rtol=0)
    expected = attention_view(tiny_model("gpt2"), "t5 t6 t7", "L1H3,L0H1", repeat=2).weights
    assert torch.allclose(weights, expected, atol=1e-4, rtol=0)
    assert "L1H3" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, fix",
    [
        (["--heads", "L7H0"], "--heads"),
        (["--heads", "18.x"], "--heads"),
        (["--heads", "L0H0", "--layer", "0"], "--heads"),
        ([], "--layer and --head"),
        (["--layer", "0"], "--layer and --head"),
    ],
    ids=["outside", "malformed", "both", "none", "no-head"],
)
def test_cli_bad_heads_one_line_exit_2_no_file(tiny_dir, tmp_path, capfd, args, fix):
    out = tmp_path / "out"
    argv = ["attention", "--model", str(tiny_dir("gpt2")), "--prompt", "t5 t6", "--html", "--out", str(out), *args]
    capfd.readouterr()
    assert main(argv) == 2
    captured = capfd.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and fix in lines[0] and "Traceback" not in captured.err, captured.err
    assert captured.out == ""
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_heads_attention_survives_the_remote_round_trip(tiny_model, implementation):
    """``remote="local"``: the trace serialized as for NDIF, rebuilt without induction_nnsight, run."""
    from induction_nnsight.scores.scan import heads_attention

    model = tiny_model("llama", implementation)
    tokens = repeated_probe(1, 5, bos_token_id=0, low=1, high=128).tokens
    local = heads_attention(model, tokens, HEADS)
    assert torch.allclose(heads_attention(model, tokens, HEADS, execution=Execution(remote="local")), local, atol=1e-6)
