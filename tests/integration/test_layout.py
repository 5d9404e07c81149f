"""ModelLayout: detected once per model, overridable field by field, and checked with one forward pass.

Every supported family is renamed (blocks, attention, its value and output projections, the
pre-attention norm under other names, the attention module of another class), told its layout,
and must then score exactly as the model with its own names; a wrong field must be named in one line.
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
