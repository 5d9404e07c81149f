"""ModelLayout: found once per model, and overridable for a model whose modules carry unusual names."""

import pytest
import torch

from induction_nnsight import InductionError
from induction_nnsight.models.layout import LAYOUT_KEYS, model_layout, set_layout
from induction_nnsight.probes.tokens import repeated_probe
from induction_nnsight.scores.heads import head_scores
from tests.conftest import TINY_BOS


def probe():
    return repeated_probe(3, 10, seed=0, low=1, high=128, bos_token_id=TINY_BOS)


def _rename(module: torch.nn.Module, old: str, new: str) -> None:
    """Re-register child ``old`` as ``new``; ``old`` stays readable (as a property) so forward still runs."""
    module._modules[new] = module._modules.pop(old)
    module.__class__ = type(
        f"Renamed{type(module).__name__}", (type(module),), {old: property(lambda self: self._modules[new])}
    )


def renamed_llama(tiny_dir, attn_implementation):
    """The tiny Llama with its blocks under ``model.blocks``, attention ``mixer`` and output projection ``out``."""
    from nnsight import TransformersModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_dir("llama")
    torch_model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn_implementation).eval()
    _rename(torch_model.model, "layers", "blocks")
    for block in torch_model.model.blocks:
        _rename(block, "self_attn", "mixer")
        _rename(block.mixer, "o_proj", "out")
        block.mixer.__class__.__name__ = "Mixer"  # not an "...Attention" class either
    return TransformersModel(torch_model, tokenizer=AutoTokenizer.from_pretrained(path))


def test_layout_is_found_once_and_cached(tiny_model):
    model = tiny_model("llama")
    layout = model_layout(model)
    assert model_layout(model) is layout
    assert layout.layers == "model.layers" and layout.o_proj[1] == "model.layers.1.self_attn.o_proj"
    assert layout.value_layout == "separate" and layout.facts.n_kv_heads == 2
    assert layout.final_norm == "model.norm" and layout.unembed == "lm_head"
    gpt2 = model_layout(tiny_model("gpt2"))
    assert gpt2.value_layout == "stacked_qkv" and gpt2.v_proj[0] == "transformer.h.0.attn.c_attn"
    assert gpt2.q_proj == (None, None) and gpt2.pre_attention_norm[0] == "transformer.h.0.ln_1"


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_unusual_names_need_a_layout_and_then_give_the_same_scores(tiny_dir, tiny_model, attn):
    model = renamed_llama(tiny_dir, attn)
    with pytest.raises(
        InductionError, match=r"attention in model\.blocks\.0 .*mixer.*set_layout\(model, attention="
    ) as error:
        head_scores(model, probe())
    assert len(str(error.value).splitlines()) == 1
    layout = set_layout(model, layers="model.blocks", attention="mixer", o_proj="out")
    assert layout.o_proj[0] == "model.blocks.0.mixer.out" and layout.v_proj[0] == "model.blocks.0.mixer.v_proj"
    got = head_scores(model, probe())
    expected = head_scores(tiny_model("llama", attn), probe())
    assert got.kinds == expected.kinds
    for kind in expected.kinds:
        assert torch.allclose(got.mean(kind), expected.mean(kind), atol=1e-5, equal_nan=True), kind
    assert torch.allclose(got.loss_by_position, expected.loss_by_position, atol=1e-5)


def test_bad_overrides_are_one_line(tiny_model):
    model = tiny_model("gpt2")
    with pytest.raises(InductionError, match="unknown layout key"):
        set_layout(model, heads="x")
    with pytest.raises(InductionError, match="o_proj"):
        set_layout(model, o_proj="nonexistent")
    with pytest.raises(InductionError, match="layers='transformer.wte' is not a list of 2 blocks"):
        set_layout(model, layers="transformer.wte")
    assert "value_layout" in LAYOUT_KEYS
    assert model_layout(set_layout(model) and model).o_proj[0] == "transformer.h.0.attn.c_proj"
