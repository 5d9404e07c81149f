"""Benchmark models: where their weights live and how each contender loads them.

Every contender of one model reads the same saved weights, so the plain
forward pass, our scan, the tutorial approach and TransformerLens all run the
same numbers. Random-weight models (``gpt2-small``, the tiny ones) are built
from a config with a fixed seed and saved once, with a word-level tokenizer
(``t{id}`` is token ``id``), so no Hub access is needed anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

SMOLLM2 = "smollm2"
GPT2_SMALL = "gpt2-small"
TINY_GPT2 = "tiny-gpt2"
TINY_LLAMA = "tiny-llama"
MODELS = (SMOLLM2, GPT2_SMALL, TINY_GPT2, TINY_LLAMA)


@dataclass(frozen=True)
class TokenRange:
    """Where random tokens are drawn from, and the BOS id."""

    low: int
    high: int
    bos: int


def _config(name: str):
    import transformers as tf

    if name == GPT2_SMALL:  # GPT2Config() defaults: 12 layers, 12 heads, d_model 768, vocab 50257
        return tf.GPT2LMHeadModel, tf.GPT2Config()
    if name == TINY_GPT2:
        return tf.GPT2LMHeadModel, tf.GPT2Config(
            n_embd=32, n_layer=2, n_head=4, n_positions=256, vocab_size=128, bos_token_id=0, eos_token_id=0
        )
    if name == TINY_LLAMA:
        return tf.LlamaForCausalLM, tf.LlamaConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
            vocab_size=128,
            bos_token_id=0,
            eos_token_id=0,
        )
    raise ValueError(f"unknown benchmark model {name!r}; choose from {', '.join(MODELS)}")


def word_level_tokenizer(vocab_size: int, bos: int, path: str = "word-level"):
    """A tokenizer where the string ``"t17 t4"`` is the ids ``[bos, 17, 4]``.

    TransformerLens' ``detect_head`` takes strings, not ids; with this tokenizer
    the strings it re-tokenizes are exactly the benchmark's token rows.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=f"t{bos}",
        eos_token=f"t{bos}",
        unk_token="t0",
        pad_token=f"t{bos}",
        add_bos_token=True,
    )
    tok.init_kwargs["name_or_path"] = path
    tok.init_kwargs["add_bos_token"] = True
    return tok


def bench_cache() -> Path:
    """Where the random-weight models are saved: ``$INDUCTION_NNSIGHT_CACHE/bench``."""
    from induction_nnsight.models.loading import cache_dir

    return cache_dir() / "bench"


def model_dir(name: str) -> Path:
    """A transformers model directory for ``name``, built and saved once."""
    if name == SMOLLM2:
        from induction_nnsight.models.loading import smollm2_dir

        return smollm2_dir(progress=True)
    root = Path(os.environ.get("INDUCTION_BENCH_CACHE", "") or bench_cache())
    path = root / name
    if (path / "config.json").is_file():
        return path
    cls, config = _config(name)
    torch.manual_seed(0)
    model = cls(config).eval()
    tmp = root / f".{name}.partial-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    word_level_tokenizer(config.vocab_size, config.bos_token_id).save_pretrained(tmp)
    os.replace(tmp, path)
    return path


def token_range(name: str, vocab_size: int, bos: int) -> TokenRange:
    """The project's default draw ``[1000, 10000)``, narrowed for tiny vocabularies."""
    if vocab_size > 10000:
        return TokenRange(1000, 10000, bos)
    return TokenRange(1, vocab_size, bos)


def load_hf(path: Path, attn: str):
    """Plain transformers model, ``eval()``, float32."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), attn_implementation=attn, dtype=torch.float32).eval()


def load_nnsight(path: Path, attn: str):
    """The project's nnsight model, loaded the way the CLI loads it."""
    from induction_nnsight import load_model

    return load_model(str(path), attn_implementation=attn, progress=False)


def load_tl(path: Path):
    """A TransformerLens 4 ``TransformerBridge`` around its own copy of the weights.

    The bridge switches the model it wraps to eager attention, so it gets a copy.
    Its tokenizer is the word-level one (see :func:`word_level_tokenizer`).
    """
    from transformer_lens.model_bridge import TransformerBridge

    hf = load_hf(path, "eager")
    config = hf.config
    bos = config.bos_token_id if config.bos_token_id is not None else 0
    tok = word_level_tokenizer(config.vocab_size, bos)
    return TransformerBridge.boot_transformers(path.name, hf_model=hf, tokenizer=tok, device="cpu")
