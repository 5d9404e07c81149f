"""ModelLayout: detected once per model, overridable field by field, and checked with one forward pass.

Every supported family is renamed (blocks, attention, its value and output projections, the
pre-attention norm under other names, the attention module of another class), told its layout,
and must then score exactly as the model with its own names; a wrong field must be named in one line.
Projections under names no table knows (nested deeper, fused, renamed) are found by what they compute;
every layout is checked when the model loads, so a name that misleads fails there, in one line.
"""

import pytest
import torch

from induction_nnsight import InductionError, load_model
from induction_nnsight.models.layout import LAYOUT_KEYS, model_layout
from induction_nnsight.models.validation import set_layout
from induction_nnsight.probes.tokens import repeated_probe
from induction_nnsight.scores.heads import head_scores
from tests.conftest import ALL_ARCHS, SDPA_ARCHS, TINY_BOS

ROUTES = [(arch, "eager") for arch in ALL_ARCHS] + [(arch, "sdpa") for arch in SDPA_ARCHS]


def probe():
    return repeated_probe(3, 10, seed=0, low=1, high=128, bos_token_id=TINY_BOS)


def _rename(module: torch.nn.Module, old: str, new: str) -> None:
    """Re-register child ``old`` as ``new``; ``old`` stays readable (as a property) so forward still runs."""
    module._modules[new] = module._modules.pop(old)
    module.__class__ = type(
        f"Renamed{type(module).__name__}", (type(module),), {old: property(lambda self: self._modules[new])}
    )


def renamed(tiny_dir, arch: str, attn_implementation: str):
    """The tiny ``arch`` with its parts renamed, and the ``set_layout`` keys that say where they went."""
    from nnsight import TransformersModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_dir(arch)
    own = model_layout(load_model(str(path), attn_implementation=attn_implementation, progress=False))
    torch_model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn_implementation).eval()
    parent, name = own.layers.rsplit(".", 1)
    _rename(torch_model.get_submodule(parent), name, "blocks")
    attention, value, output, norm = (
        own.attention[0].rsplit(".", 1)[1],
        own.v_proj[0].rsplit(".", 1)[1],
        own.o_proj[0].rsplit(".", 1)[1],
        own.pre_attention_norm[0].rsplit(".", 1)[1],
    )
    for block in torch_model.get_submodule(f"{parent}.blocks"):
        _rename(block, attention, "mixer")
        _rename(block, norm, "pre_norm")
        _rename(block.mixer, value, "values")
        _rename(block.mixer, output, "out")
        block.mixer.__class__.__name__ = "Mixer"  # not an "...Attention" class either
    keys = dict(
        layers=f"{parent}.blocks",
        attention="mixer",
        pre_attention_norm="pre_norm",
        v_proj="values",
        o_proj="out",
        value_layout=own.value_layout,
    )
    return TransformersModel(torch_model, tokenizer=AutoTokenizer.from_pretrained(path)), keys


def test_layout_is_found_once_and_cached(tiny_model):
    model = tiny_model("llama")
    layout = model_layout(model)
    assert model_layout(model) is layout
    assert layout.layers == "model.layers" and layout.o_proj[1] == "model.layers.1.self_attn.o_proj"
    assert layout.value_layout == "separate" and layout.facts.n_kv_heads == 2
    assert layout.final_norm == "model.norm" and layout.unembed == "lm_head"
    assert (layout.norm, layout.norm_offset, layout.conv1d, layout.post_norm) == ("rmsnorm", False, False, False)
    assert layout.attention_call == "attention_interface"
    gpt2 = model_layout(tiny_model("gpt2"))
    assert gpt2.value_layout == "stacked_qkv" and gpt2.v_proj[0] == "transformer.h.0.attn.c_attn"
    assert gpt2.q_proj == (None, None) and gpt2.pre_attention_norm[0] == "transformer.h.0.ln_1"
    assert (gpt2.norm, gpt2.conv1d) == ("layernorm", True)
    gemma2 = model_layout(tiny_model("gemma2"))
    assert (gemma2.norm, gemma2.norm_offset, gemma2.post_norm) == ("rmsnorm", True, True)
    assert model_layout(tiny_model("neox")).value_layout == "interleaved_qkv"


@pytest.mark.parametrize("arch, attn", ROUTES)
def test_renamed_models_score_as_their_own_once_told_their_layout(tiny_dir, tiny_model, arch, attn):
    model, keys = renamed(tiny_dir, arch, attn)
    with pytest.raises(InductionError, match=r"attention in .*blocks\.0 .*mixer.*set_layout\(model, attention=") as e:
        head_scores(model, probe())
    assert len(str(e.value).splitlines()) == 1
    layout = set_layout(model, **keys)
    mixer = f"{keys['layers']}.0.mixer"
    assert layout.o_proj[0] == f"{mixer}.out" and layout.v_proj[0] == f"{mixer}.values"
    got = head_scores(model, probe())
    expected = head_scores(tiny_model(arch, attn), probe())
    assert got.kinds == expected.kinds
    for kind in expected.kinds:
        assert torch.allclose(got.mean(kind), expected.mean(kind), atol=1e-5, equal_nan=True), kind
    assert torch.allclose(got.loss_by_position, expected.loss_by_position, atol=1e-5)


WRONG = [
    ("gpt2", "eager", {"value_layout": "interleaved_qkv"}, "value_layout"),
    ("gpt2", "sdpa", {"conv1d": False}, "conv1d"),
    ("gpt2", "eager", {"norm": "rmsnorm"}, "norm"),
    ("neox", "sdpa", {"value_layout": "stacked_qkv"}, "value_layout"),
    ("llama", "sdpa", {"n_kv_heads": 4}, "n_kv_heads"),
    ("llama", "eager", {"n_kv_heads": 4}, "n_kv_heads"),
    ("llama", "sdpa", {"attn_implementation": "eager"}, "attn_implementation"),
    ("llama", "eager", {"attention_call": "no_such_kernel"}, "attention_call"),
    ("qwen2", "sdpa", {"norm": "layernorm"}, "norm"),
    ("mistral", "sdpa", {"d_head": 4, "n_heads": 8}, "n_heads"),
    ("gemma2", "eager", {"norm_offset": False}, "norm_offset"),
    ("gemma3", "sdpa", {"norm_offset": False}, "norm_offset"),
]


@pytest.mark.parametrize("arch, attn, wrong, field", WRONG, ids=[f"{a}-{t}-{f}" for a, t, _, f in WRONG])
def test_a_wrong_field_is_named_in_one_line(tiny_dir, arch, attn, wrong, field):
    model = load_model(str(tiny_dir(arch)), attn_implementation=attn, progress=False)
    before = model_layout(model)
    with pytest.raises(InductionError, match=rf"{field}.*set_layout\(model, .*{field}=") as error:
        set_layout(model, **wrong)
    assert len(str(error.value).splitlines()) == 1, str(error.value)
    assert model_layout(model) is before  # a layout that does not fit is not kept


def test_load_model_takes_and_checks_a_layout(tiny_dir):
    model = load_model(str(tiny_dir("llama")), progress=False, layout={"final_norm": "model.norm", "n_heads": 4})
    assert model_layout(model).overrides == {"final_norm": "model.norm", "n_heads": 4}
    with pytest.raises(InductionError, match=r"norm_offset=True does not fit") as error:
        load_model(str(tiny_dir("llama")), progress=False, layout={"norm_offset": True})
    assert len(str(error.value).splitlines()) == 1


def test_bad_overrides_are_one_line(tiny_model):
    model = tiny_model("gpt2")
    with pytest.raises(InductionError, match="unknown layout key"):
        set_layout(model, heads="x")
    with pytest.raises(InductionError, match="o_proj"):
        set_layout(model, o_proj="nonexistent")
    with pytest.raises(InductionError, match="layers='transformer.wte' is not a list of 2 blocks"):
        set_layout(model, layers="transformer.wte")
    with pytest.raises(InductionError, match="norm='batchnorm': pass set_layout"):
        set_layout(model, norm="batchnorm")
    assert "value_layout" in LAYOUT_KEYS and "post_norm" in LAYOUT_KEYS
    assert model_layout(set_layout(model) and model).o_proj[0] == "transformer.h.0.attn.c_proj"


UNFAMILIAR = {  # tests/conftest.py's Llamas: what detection by computation must find in layer 1
    "llama-nested": ("inner.query", "inner.key", "inner.value", "inner.out", "separate"),
    "llama-wqkv": (None, None, "Wqkv", "wo", "grouped_qkv"),
}


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("arch", list(UNFAMILIAR))
def test_unfamiliar_projections_are_found_by_what_they_compute(tiny_model, arch, attn):
    layout = model_layout(tiny_model(arch, attn))
    *paths, value_layout = UNFAMILIAR[arch]
    attention = "model.layers.1.self_attn"
    found = (layout.q_proj[1], layout.k_proj[1], layout.v_proj[1], layout.o_proj[1])
    assert found == tuple(None if p is None else f"{attention}.{p}" for p in paths)
    assert (layout.value_layout, layout.conv1d, layout.attention_call) == (value_layout, False, "attention_interface")


def test_renamed_gpt2_projections_are_found_by_what_they_compute(tiny_dir, tiny_model):
    """GPT-2 with ``c_attn`` and ``c_proj`` renamed: its fused ``Conv1D`` is found stacked, and it scores as
    its own."""
    from nnsight import TransformersModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_dir("gpt2")
    torch_model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    for block in torch_model.transformer.h:
        _rename(block.attn, "c_attn", "fused")
        _rename(block.attn, "c_proj", "proj")
    model = TransformersModel(torch_model, tokenizer=AutoTokenizer.from_pretrained(path))
    layout = model_layout(model)
    assert (layout.v_proj[0], layout.o_proj[0]) == ("transformer.h.0.attn.fused", "transformer.h.0.attn.proj")
    assert (layout.value_layout, layout.conv1d, layout.q_proj[0]) == ("stacked_qkv", True, None)
    got, expected = head_scores(model, probe()), head_scores(tiny_model("gpt2"), probe())
    for kind in expected.kinds:
        assert torch.allclose(got.mean(kind), expected.mean(kind), atol=1e-5, equal_nan=True), kind


def test_a_misleading_name_fails_at_load_in_one_line(tiny_dir, tiny_model):
    """``llama-misnamed`` calls its grouped q/k/v projection ``qkv_proj``, Phi-3's name for ``[q; k; v]``: the
    check at load refuses what the name says, and the value layout it names fixes it."""
    path = str(tiny_dir("llama-misnamed"))
    with pytest.raises(InductionError, match=r"value_layout='stacked_qkv'.*set_layout\(model, value_layout=") as e:
        load_model(path, progress=False)
    assert len(str(e.value).splitlines()) == 1 and "load_model(..., layout=" in str(e.value)
    model = load_model(path, progress=False, layout={"value_layout": "grouped_qkv"})
    expected = head_scores(tiny_model("llama-wqkv", "sdpa"), probe())  # the same weights, under other names
    got = head_scores(model, probe())
    assert torch.allclose(got.mean("induction"), expected.mean("induction"), atol=1e-5)


def test_unfamiliar_names_without_weights_are_one_line_and_take_nested_paths(tiny_dir):
    """On meta weights (NDIF, ``--plan``) nothing can be computed: names the tables do not know are refused in
    one line, and paths one level deeper say where the projections are."""
    from induction_nnsight.models.weightless import weightless_model

    model = weightless_model(str(tiny_dir("llama-nested")))
    with pytest.raises(
        InductionError, match=r"o_proj .* in model\.layers\.0\.self_attn \(children: inner\).*meta.*set_layout"
    ) as e:
        model_layout(model)
    assert len(str(e.value).splitlines()) == 1
    names = dict(q_proj="inner.query", k_proj="inner.key", v_proj="inner.value", o_proj="inner.out")
    layout = set_layout(model, **names)
    assert layout.o_proj[1] == "model.layers.1.self_attn.inner.out" and layout.value_layout == "separate"


def test_an_attention_of_its_own_is_not_computed_through(tiny_dir):
    """BLOOM computes its pattern with a softmax of its own, which takes no query, key and value: with its
    fused projection renamed, that is said in one line naming the keys to pass."""
    from nnsight import TransformersModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_dir("bloom")
    torch_model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    for block in torch_model.transformer.h:
        _rename(block.self_attention, "query_key_value", "fused")
    model = TransformersModel(torch_model, tokenizer=AutoTokenizer.from_pretrained(path))
    with pytest.raises(InductionError, match=r"softmax\(\.\.\.\) call takes no .*set_layout\(model, q_proj=") as e:
        model_layout(model)
    assert len(str(e.value).splitlines()) == 1
