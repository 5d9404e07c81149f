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
    raise ValueError(arch)


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
