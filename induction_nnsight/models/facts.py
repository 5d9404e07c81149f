"""Model facts: layers, heads, widths, context, vocabulary, BOS and attention implementation,
read from a loaded model's config (and its tokenizer's BOS).

Read once per model through :func:`~induction_nnsight.models.layout.model_facts`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class ModelFacts:
    """Shape facts of a loaded model, read from its config; each can be given instead through
    :func:`~induction_nnsight.models.validation.set_layout` (e.g. ``set_layout(model, n_heads=12)``).

    Attributes:
        name: The model's name or path.
        architecture: The config's first architecture (the module's class name where it names none).
        n_layers: Blocks.
        n_heads: Query heads per layer.
        n_kv_heads: Key/value heads per layer (fewer under grouped-query attention).
        d_model: Width of the residual stream.
        d_head: Width of one head.
        n_ctx: The longest context (None where the config names none).
        vocab_size: Tokens in the vocabulary.
        bos_token_id: The beginning-of-sequence token (the tokenizer's, else the config's).
        attn_implementation: ``"eager"`` (the attention call returns its probabilities), ``"sdpa"``, ...
    """

    name: str
    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    n_ctx: int | None
    vocab_size: int
    bos_token_id: int | None
    attn_implementation: str


def _config_value(config: Any, *names: str) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def _multi_query(config) -> int | None:
    """1 for a multi-query config (Falcon's ``multi_query`` without its new decoder, GPTBigCode's), else
    Falcon's ``num_kv_heads`` under its new decoder (None where the config names neither)."""
    if getattr(config, "multi_query", False) and not getattr(config, "new_decoder_architecture", False):
        return 1
    return getattr(config, "num_kv_heads", None) if getattr(config, "new_decoder_architecture", False) else None


def read_facts(model, overrides: dict[str, Any] | None = None) -> ModelFacts:
    """Read layers, heads, widths, context and BOS of an nnsight-wrapped HF model from its config.

    Uncached: use :func:`~induction_nnsight.models.layout.model_facts`, which reads them once per model.

    Args:
        model: An nnsight ``TransformersModel``.
        overrides: Facts given instead of read (keys in :data:`FACT_KEYS`).
    """
    config = model.config
    config = getattr(config, "text_config", None) or config
    n_heads = _config_value(config, "num_attention_heads", "n_head")
    d_model = _config_value(config, "hidden_size", "n_embd", "d_model")
    d_head = _config_value(config, "head_dim") or d_model // n_heads
    tokenizer = getattr(model, "tokenizer", None)
    bos = _config_value(config, "bos_token_id")
    if tokenizer is not None and getattr(tokenizer, "bos_token_id", None) is not None:
        bos = tokenizer.bos_token_id
    read = ModelFacts(
        name=str(getattr(config, "_name_or_path", "") or type(model).__name__),
        architecture=(getattr(config, "architectures", None) or [type(model._module).__name__])[0],
        n_layers=_config_value(config, "num_hidden_layers", "n_layer"),
        n_heads=n_heads,
        n_kv_heads=_config_value(config, "num_key_value_heads") or _multi_query(config) or n_heads,
        d_model=d_model,
        d_head=d_head,
        n_ctx=_config_value(config, "max_position_embeddings", "n_positions", "n_ctx"),
        vocab_size=_config_value(config, "vocab_size"),
        bos_token_id=bos,
        attn_implementation=str(getattr(config, "_attn_implementation", None) or "eager"),
    )
    return replace(read, **{k: v for k, v in (overrides or {}).items() if k in FACT_KEYS})


FACT_KEYS = tuple(f.name for f in fields(ModelFacts))
