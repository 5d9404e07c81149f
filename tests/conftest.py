"""Shared fixtures: tiny random models built from configs (saved once per session)
and the real SmolLM2, loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

TINY_VOCAB = 128
TINY_BOS = 0


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(1, TINY_VOCAB)}
    vocab["<bos>"] = TINY_BOS
    backend = Tokenizer(models.WordLevel(vocab, unk_token="t1"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<bos>", unk_token="t1")


def _tiny_config(arch: str):
    import transformers as tf

    common = dict(vocab_size=TINY_VOCAB, bos_token_id=TINY_BOS, eos_token_id=TINY_BOS, pad_token_id=TINY_BOS)
    llama_like = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **common,
    )
    if arch == "gpt2":
        return tf.GPT2LMHeadModel, tf.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128, **common)
    if arch == "llama":  # grouped-query attention and rotary embeddings
        return tf.LlamaForCausalLM, tf.LlamaConfig(**llama_like)
    if arch == "neox":  # fused, per-head interleaved qkv; partial rotary
        return tf.GPTNeoXForCausalLM, tf.GPTNeoXConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=128,
            rotary_pct=0.5,
            **common,
        )
    if arch == "qwen2":  # attention biases
        return tf.Qwen2ForCausalLM, tf.Qwen2Config(**llama_like)
    if arch == "mistral":  # sliding window on every layer
        return tf.MistralForCausalLM, tf.MistralConfig(**llama_like, sliding_window=8)
    if arch == "gemma2":  # logit soft-capping, sliding and global layers, eager only
        return tf.Gemma2ForCausalLM, tf.Gemma2Config(
            **llama_like,
            head_dim=8,
            sliding_window=8,
            attn_logit_softcapping=5.0,
            query_pre_attn_scalar=8,
        )
    if arch == "gemma3":  # sliding and global layers, sdpa allowed
        return tf.Gemma3ForCausalLM, tf.Gemma3TextConfig(
            **llama_like,
            head_dim=8,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
        )
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=128, **common)
    if arch == "gptj":  # partial rotary on interleaved pairs, parallel attention and MLP
        return tf.GPTJForCausalLM, tf.GPTJConfig(
            n_embd=32, n_layer=2, n_head=4, n_positions=128, rotary_dim=4, **common
        )
    if arch == "mixtral":  # a mixture of experts after Llama's attention
        return tf.MixtralForCausalLM, tf.MixtralConfig(**llama_like, num_local_experts=2, num_experts_per_tok=1)
    if arch == "qwen3":  # q/k norms inside the attention
        return tf.Qwen3ForCausalLM, tf.Qwen3Config(**llama_like, head_dim=8)
    if arch == "olmo":  # non-parametric LayerNorms (no weight, no eps attribute)
        return tf.OlmoForCausalLM, tf.OlmoConfig(**llama_like)
    if arch == "olmo2":  # post-norm: attention output normed before the residual; q/k norms
        return tf.Olmo2ForCausalLM, tf.Olmo2Config(**llama_like)
    if arch == "phi3":  # fused qkv_proj [q; k; v] with grouped-query attention
        return tf.Phi3ForCausalLM, tf.Phi3Config(**llama_like)
    if arch == "opt":  # learned positions, self_attn_layer_norm, biases
        return tf.OPTForCausalLM, tf.OPTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=64,
            max_position_embeddings=128,
            word_embed_proj_dim=32,
            **common,
        )
    if arch == "falcon":  # multi-query attention with ALiBi, its own attention code
        return tf.FalconForCausalLM, tf.FalconConfig(
            **small, multi_query=True, alibi=True, parallel_attn=True, new_decoder_architecture=False, bias=False
        )
    if arch == "falcon-rope":  # multi-query attention with rotary embeddings
        return tf.FalconForCausalLM, tf.FalconConfig(**small, multi_query=True, alibi=False, parallel_attn=True)
    if arch == "falcon-new":  # Falcon's new decoder: grouped key/value heads packed group by group
        return tf.FalconForCausalLM, tf.FalconConfig(
            **small, new_decoder_architecture=True, num_kv_heads=2, alibi=False, bias=False
        )
    if arch == "bloom":  # ALiBi, fused interleaved qkv, its own attention code
        return tf.BloomForCausalLM, tf.BloomConfig(hidden_size=32, n_layer=2, n_head=4, **common)
    if arch in UNUSUAL:  # a Llama whose attention keeps its projections under names no table knows
        config, model = _unusual_llama(arch)
        return model, config(**{**llama_like, "num_key_value_heads": UNUSUAL[arch]})
    raise ValueError(arch)


UNUSUAL = {"llama-nested": 4, "llama-wqkv": 2, "llama-misnamed": 2}
"""Tiny Llamas with unfamiliar attention modules -> their key/value heads: ``llama-nested`` keeps its
projections one level deeper under other names (``self_attn.inner.query``, ``.key``, ``.value``, ``.out``;
as many key/value heads as query heads, so only what they compute tells queries from keys);
``llama-wqkv`` packs q, k and v into one ``self_attn.Wqkv``, key/value group by group as Falcon's new
decoder does, with its output projection ``self_attn.wo``; ``llama-misnamed`` is ``llama-wqkv`` with its
fused projection named ``qkv_proj``, a name that says ``[q; k; v]`` stacked (as Phi-3's), which it is not."""
_UNUSUAL_CLASSES: dict = {}


def _unusual_llama(arch: str):
    """``(config class, model class)`` of ``arch`` (of :data:`UNUSUAL`), registered with transformers' auto
    classes so that ``from_pretrained`` (and ``load_model``) rebuild it from its saved directory."""
    if arch in _UNUSUAL_CLASSES:
        return _UNUSUAL_CLASSES[arch]
    import transformers as tf
    from torch import nn
    from transformers.models.llama import modeling_llama as llama

    class NestedLlamaAttention(llama.LlamaAttention):
        """Llama's attention and forward, its projections moved into ``self.inner`` under other names."""

        q_proj = property(lambda self: self.inner.query)
        k_proj = property(lambda self: self.inner.key)
        v_proj = property(lambda self: self.inner.value)
        o_proj = property(lambda self: self.inner.out)

        def __init__(self, config, layer_idx):
            super().__init__(config, layer_idx)
            self.inner = nn.Module()
            for old, new in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value"), ("o_proj", "out")):
                self.inner.add_module(new, self._modules.pop(old))

    class WqkvLlamaAttention(llama.LlamaAttention):
        """Llama's attention with one fused ``Wqkv`` ``[group][queries of the group; key; value]``."""

        fused, out = "Wqkv", "wo"  # the names of the fused and output projections

        def __init__(self, config, layer_idx):
            super().__init__(config, layer_idx)
            for old in ("q_proj", "k_proj", "v_proj", "o_proj"):
                del self._modules[old]
            n, kv, d = config.num_attention_heads, config.num_key_value_heads, self.head_dim
            self.add_module(self.fused, nn.Linear(config.hidden_size, (n + 2 * kv) * d, bias=False))
            self.add_module(self.out, nn.Linear(n * d, config.hidden_size, bias=False))

        def forward(self, hidden_states, position_embeddings=None, attention_mask=None, cache=None, **kwargs):
            shape, d = hidden_states.shape[:-1], self.head_dim
            kv = self.config.num_key_value_heads
            group = self.config.num_attention_heads // kv
            qkv = getattr(self, self.fused)(hidden_states).view(
                *shape, kv, group + 2, d
            )  # [batch, pos, kv, group + 2, d]
            query_states = qkv[..., :group, :].reshape(*shape, -1, d).transpose(1, 2)  # [batch, head, pos, d]
            key_states = qkv[..., group, :].transpose(1, 2)  # [batch, kv, pos, d]
            value_states = qkv[..., group + 1, :].transpose(1, 2)
            cos, sin = position_embeddings
            query_states, key_states = llama.apply_rotary_pos_emb(query_states, key_states, cos, sin)
            if cache is not None:
                key_states, value_states = cache.update(key_states, value_states, self.layer_idx, kwargs=kwargs)
            attention_interface = llama.ALL_ATTENTION_FUNCTIONS.get_interface(
                self.config._attn_implementation, llama.eager_attention_forward
            )
            attn_output, attn_weights = attention_interface(
                self, query_states, key_states, value_states, attention_mask, scaling=self.scaling, **kwargs
            )
            return getattr(self, self.out)(attn_output.reshape(*shape, -1).contiguous()), attn_weights

    class MisnamedLlamaAttention(WqkvLlamaAttention):
        fused, out = "qkv_proj", "o_proj"

    attention = {
        "llama-nested": NestedLlamaAttention,
        "llama-wqkv": WqkvLlamaAttention,
        "llama-misnamed": MisnamedLlamaAttention,
    }[arch]
    name = attention.__name__.removesuffix("Attention")
    config = type(f"{name}Config", (tf.LlamaConfig,), {"model_type": arch})

    def __init__(self, config):
        tf.LlamaForCausalLM.__init__(self, config)
        for i, layer in enumerate(self.model.layers):
            layer.self_attn = attention(config, i)
        self.post_init()

    model = type(f"{name}ForCausalLM", (tf.LlamaForCausalLM,), {"config_class": config, "__init__": __init__})
    tf.AutoConfig.register(arch, config, exist_ok=True)
    tf.AutoModelForCausalLM.register(config, model, exist_ok=True)
    _UNUSUAL_CLASSES[arch] = config, model
    return config, model


def save_tiny_model(arch: str, path: Path, edit=None) -> Path:
    """Save the seeded random ``arch`` model (after ``edit(model)``, if given) and the tokenizer into ``path``."""
    cls, config = _tiny_config(arch)
    torch.manual_seed(0)
    model = cls(config).eval()
    if edit is not None:
        with torch.no_grad():
            edit(model)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # made lazily inside a test, whose stderr some tests read
    try:
        model.save_pretrained(path)
    finally:
        hf_logging.enable_progress_bar()
    _tiny_tokenizer().save_pretrained(path)
    return path


TINY_ARCHS = ["gpt2", "llama"]
ALL_ARCHS = ["gpt2", "llama", "neox", "qwen2", "mistral", "gemma2", "gemma3"]
SDPA_ARCHS = [arch for arch in ALL_ARCHS if arch != "gemma2"]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """``tiny_dir(arch) -> Path`` of a saved random model with a word-level tokenizer."""
    made: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in made:
            made[arch] = save_tiny_model(arch, tmp_path_factory.mktemp(f"tiny-{arch}"))
        return made[arch]

    return make


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    """``tiny_model(arch, attn_implementation) -> nnsight model``, cached per session."""
    from induction_nnsight import load_model

    loaded = {}

    def get(arch: str, attn_implementation: str = "eager"):
        key = (arch, attn_implementation)
        if key not in loaded:
            loaded[key] = load_model(str(tiny_dir(arch)), attn_implementation=attn_implementation, progress=False)
        return loaded[key]

    return get


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct (sdpa, its default), fetched and converted once."""
    from induction_nnsight import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def default_icl(smollm2):
    """The icl chart producer's run (``run_icl`` with its defaults) on SmolLM2, once a session: the chart
    check and the e2e test read one run (mark both ``xdist_group("default_icl")``)."""
    from tests.docs.helpers import load_export_charts

    return load_export_charts().icl_run(smollm2)


@pytest.fixture(scope="session")
def smollm2_eager():
    from induction_nnsight import load_model

    return load_model("smollm2-135m", attn_implementation="eager")


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


SPREAD = ("test_export_charts.py",)
"""Slow modules whose tests may run in different worker processes (the charts check: one test per producer)."""


def pytest_collection_modifyitems(config, items):
    """Tests under tests/e2e are the slow tier. Under ``--dist loadgroup`` the loopback NDIF tests share
    one worker process (one service per session fixture), and so does each slow module but those in
    :data:`SPREAD` (its module fixtures, a docs build or a benchmark run, are then made once)."""
    for item in items:
        path = str(item.fspath)
        if f"{os.sep}e2e{os.sep}" in path:
            item.add_marker(pytest.mark.slow)
        if f"{os.sep}remote{os.sep}" in path:
            item.add_marker(pytest.mark.xdist_group("ndif"))
        elif item.get_closest_marker("slow") and not (item.get_closest_marker("xdist_group") or path.endswith(SPREAD)):
            item.add_marker(pytest.mark.xdist_group(os.path.basename(path)))


_FAMILY_ENTRIES: list[dict] = []  # what the family matrix's passing tests found, from every worker's reports


def pytest_runtest_logreport(report):
    from tests.families import PROPERTY

    if report.when == "call" and report.passed:
        _FAMILY_ENTRIES.extend(value for key, value in report.user_properties if key == PROPERTY)


def pytest_sessionfinish(session, exitstatus):
    """The controller (not an xdist worker) fails the session when docs/families.json is stale."""
    if hasattr(session.config, "workerinput"):
        return
    from tests.families import stale

    message = stale(_FAMILY_ENTRIES)
    if message:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"FAILED family matrix: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
