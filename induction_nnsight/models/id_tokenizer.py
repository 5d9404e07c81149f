"""A word-level tokenizer over bare token ids, for models trained on ids (no text).

Token ``i`` is the word ``t{i}``; the BOS id, when the config has one, is also the BOS,
EOS and unknown token. :func:`~induction_nnsight.models.loading.load_model` attaches one
to a local model directory saved without a tokenizer, so such a checkpoint loads like any
model (the probes are token ids anyway); training saves one beside each checkpoint.
"""

from __future__ import annotations

from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")


def has_tokenizer(directory: str | Path) -> bool:
    """Whether a local model directory holds tokenizer files."""
    return any((Path(directory) / name).is_file() for name in TOKENIZER_FILES)


def id_tokenizer(vocab_size: int, bos_token_id: int | None = None):
    """A ``PreTrainedTokenizerFast`` whose words ``t0 .. t{vocab_size - 1}`` are the ids themselves.

    Example:
        >>> tok = id_tokenizer(8, bos_token_id=0)
        >>> tok("t3 t5 t3", add_special_tokens=False)["input_ids"], tok.bos_token_id, tok.decode([5])
        ([3, 5, 3], 0, 't5')
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    special = f"t{bos_token_id if bos_token_id is not None else 0}"
    backend = Tokenizer(models.WordLevel(vocab, unk_token=special))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    named = {"bos_token": special, "eos_token": special} if bos_token_id is not None else {}
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=special, **named)


def config_id_tokenizer(directory: str | Path):
    """:func:`id_tokenizer` sized by the ``config.json`` of a local model directory (its vocabulary and BOS)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(directory))
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return id_tokenizer(text.vocab_size, getattr(text, "bos_token_id", None))
